"""What the agent tools answer, in plain text that a model can quote and a person can read.

Pure functions of typed values; ``now`` is passed in. The status labels are the ones the original
opencode plugin used (backup path, sessions backed up, size, last backup, last result, syncs this
session, pending changes), so users and models who knew it find the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from app.backup.restore import Action, Plan, RestoreResult
from app.backup.result import Outcome, SyncResult
from app.backup.search_index import Hit
from app.safe_text import clean
from app.status_report import BackupStatus
from app.words import minutes, size, when

FULL_REPLACE_HINT = (
    "Replacing opencode's whole database is not offered here (opencode is running): close opencode and "
    "use the tray app's Restore… or 'opencode-backup restore --all --replace'."
)
START_SERVICE_HINT = "start it with 'opencode-backup run', or back up now with the sync tool"


def status_text(r: BackupStatus, changed: int | None, now: datetime) -> str:
    """The status report; ``changed``: sessions changed since the last backup, counted here when no
    service runs to know it (None: unknown)."""
    held = r.sessions_backed_up or 0
    extra = [f"{r.snapshots} snapshot(s)"]
    if r.storage_files:
        extra.append(f"{r.storage_files:,} legacy file(s)")
    lines = [
        f"Backup path: {r.machine_dir}",
        f"Sessions backed up: {held}",
        f"Size: {size(r.backup_bytes)} ({', '.join(extra)})",
        f"Last backup: {when(r.last_backup, now)}",
        f"Last result: {_last_result(r, now)}",
        f"Encryption: {r.encryption}",
    ]
    if r.remote is not None:
        pending = " (the newest backup is on this computer only so far)" if r.upload_pending else ""
        lines[3:4] = [
            f"Backed up on this computer: {when(r.committed, now)}",
            f"Uploaded to the remote {r.remote}: {when(r.uploaded, now)}{pending}",
        ]
    if r.service_pid:
        lines.append(
            f"Syncs this session: {r.syncs_this_session} "
            f"(backup service running, pid {r.service_pid}, {r.service})"
        )
        waiting = r.pending or 0
        lines.append(f"Pending changes: {waiting}" + (" (backed up within seconds)" if waiting else ""))
        if r.progress is not None:
            lines.append(f"Now: {r.progress.sentence()}")
    else:
        if r.service == "not running":
            lines.append(f"Syncs this session: none (no backup service is running; {START_SERVICE_HINT})")
        else:  # a service for another backup folder, or one that stopped answering
            lines.append(f"Syncs this session: none for this folder (the backup service is {r.service})")
        if changed is None:
            lines.append("Pending changes: unknown")
        else:
            lines.append(f"Pending changes: {changed} session(s) changed since the last backup")
    return "\n".join(lines)


def _last_result(r: BackupStatus, now: datetime) -> str:
    if r.last_result is None:
        return "none yet"
    text = r.last_result.value
    if r.last_attempt is not None and r.last_attempt != r.last_backup:
        text += f", {when(r.last_attempt, now)}"
    if r.last_error:
        text += f": {r.last_error}"
    return text


def sync_text(result: SyncResult, via_service: bool, sessions_backed_up: int | None) -> str:
    """The answer to a sync that did not fail."""
    how = " by the running backup service" if via_service else ""
    if result.outcome is Outcome.NOTHING_YET:
        return f"Nothing to back up yet{how}: {result.summary()}"
    lines = [f"Backup done{how} ({result.outcome.value}): {result.summary()}"]
    if sessions_backed_up is not None:
        lines.append(f"Sessions backed up: {sessions_backed_up}")
    lines += [f"Warning: {w}" for w in result.warnings]
    lines += [f"Not copied (empty or damaged in opencode's storage): {s}" for s in result.skipped]
    return "\n".join(lines)


def plan_text(plan: Plan, safety_dir: Path) -> str:
    """A restore plan, and how to go ahead with it."""
    lines = ["Restore plan (nothing has been changed):"]
    for item in sorted(plan.items, key=lambda i: i.session_id):
        if item.action is Action.FAIL:
            lines.append(f"  cannot restore {item.session_id} {item.title!r}: {item.reason}")
        else:
            what = f"({item.rows} rows, {size(item.bytes)})"
            lines.append(f"  {item.action.value} {item.session_id} {item.title!r} {what}")
    lines += [f"  note: {n}" for n in plan.notes]
    count = len(plan.actionable)
    lines.append(f"{count} session(s) would be restored into opencode's database {plan.db}.")
    if count:
        lines.append(f"First a safety copy of that database would be saved in {safety_dir}.")
        lines.append("To restore, call this tool again with confirm: true once the user agreed.")
    lines.append(FULL_REPLACE_HINT)
    return "\n".join(lines)


def restored_text(result: RestoreResult, titles: dict[str, str]) -> str:
    """What a confirmed restore did."""
    lines = [f"Restored {len(result.restored)} session(s) into opencode:"]
    lines += [f"  {sid} {titles.get(sid, '')!r} ({rows} rows added)" for sid, rows in result.restored]
    lines += [f"  not restored: {sid}: {why}" for sid, why in result.failed]
    lines += [f"  note: {n}" for n in result.notes]
    if result.safety_copy is not None:
        lines.append(f"A safety copy of opencode's database was saved first: {result.safety_copy}")
    if result.restored:
        lines.append("The restored sessions are in opencode's session list now.")
    lines.append(FULL_REPLACE_HINT)
    return "\n".join(lines)


def nothing_missing_text(backed_up: int, asked: Sequence[str]) -> str:
    """The answer when there is nothing to restore."""
    if asked:
        return "Nothing to restore."
    return (
        f"Nothing to restore: opencode has every one of the {backed_up} backed-up session(s). "
        "To bring back an older state of a session, name it in sessions. " + FULL_REPLACE_HINT
    )


def search_text(hits: Sequence[Hit], this_machine: str, skipped: Sequence[tuple[str, str, str]]) -> str:
    """What a search found: per session its id and title, where it is, and a snippet."""
    if not hits:
        lines = ["No backed-up session holds all of these words."]
    else:
        lines = [f"{len(hits)} backed-up session(s) hold these words, best first:"]
    for h in hits:
        machine = f"{clean(h.machine)} ({'this' if h.machine == this_machine else 'another'} computer)"
        updated = minutes(h.time_updated)
        where = "in opencode now" if h.in_opencode else "not in opencode now"
        if not h.in_backup:
            where += "; deleted, its last copy kept in the backup"
        title = clean(h.title or "(untitled)")
        lines.append(f"- {h.session_id} '{title}': backup of {machine}, last update {updated}, {where}")
        lines.append(f"  {h.snippet}")
    if hits:
        lines.append("Read one with the show tool (session: its id); bring one back with the restore tool.")
    if skipped:
        lines.append(f"{len(skipped)} backed-up session file(s) could not be read and were not searched.")
    return "\n".join(lines)


def shown_text(session_id: str, first: int, next_one: int | None, total: int, at: str | None) -> str:
    """The line after a transcript: which messages it holds, and how to read on when it was cut."""
    if next_one is None:
        return f"(messages {first} to {total} of {total}: the whole rest of the session)"
    how = f'session: "{session_id}", from_message: {next_one}' + (f', at: "{at}"' if at else "")
    return (
        f"(cut after message {next_one - 1} of {total}. To read on, call this tool again with {how}; "
        f"the user can read it all with 'opencode-backup show {session_id}')"
    )
