"""What the agent's finding tools do: search the backups, read a backed-up session, restore one as it was
at a time. Imported on the first tool call, never at start-up; each function runs on a call thread of
the server, loads the settings afresh and answers a ToolResult (errors a user can act on as one line).

These read every machine folder of the backup (a session from the old laptop is what a model most often
needs to find); they write only into opencode's database, and only a confirmed restore does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from app import paths, wiring
from app.backup import asof, lookup, transcript
from app.backup.history import history
from app.backup.progress import Report, Throttled
from app.backup.search import find
from app.errors import UsageError
from app.mcp import wording
from app.mcp.actions import answer, planned, reachable, settings_of
from app.mcp.calls import CallContext, ToolResult
from app.opencode.locate import restore_target

SHOW_CHARS = 24_000  # of Markdown per answer: a few pages a model can read without losing the thread


def search(flags: Mapping[str, object], query: str, limit: int, ctx: CallContext) -> ToolResult:
    """The sessions holding every word of ``query``, best first (the index is built first if need be)."""
    return answer(lambda: _search(flags, query, limit, ctx))


def show(
    flags: Mapping[str, object], session: str, at: str | None, first: int, ctx: CallContext
) -> ToolResult:
    """``session`` (an id, the start of one, or its exact title) as Markdown, from message ``first``, as
    it was ``at`` a time when given; cut at SHOW_CHARS, saying how to read on."""
    return answer(lambda: _show(flags, session, at, first, ctx))


def restore_at(
    flags: Mapping[str, object], confirm: bool, sessions: Sequence[str], at: str, ctx: CallContext
) -> ToolResult:
    """The plan (or with ``confirm``, the restore) of one session as it was ``at`` a time."""
    return answer(lambda: _restore_at(flags, confirm, sessions, at, ctx))


def _backup(flags: Mapping[str, object]) -> tuple[Path, str, Path, Path | None]:
    settings, backup_path, _machine_dir = settings_of(flags, check=False)
    reachable(settings, backup_path)
    return backup_path, settings.machine_name, settings.source, settings.opencode_db


def _search(flags: Mapping[str, object], query: str, limit: int, ctx: CallContext) -> ToolResult:
    backup_path, machine, source, opencode_db = _backup(flags)
    ctx.progress("searching the backups")
    hits, skipped = find(backup_path, query, limit, (source, opencode_db), _told(ctx), seal=wiring.keys())
    return ToolResult(wording.search_text(hits, machine, skipped))


def _show(
    flags: Mapping[str, object], session: str, at: str | None, first: int, ctx: CallContext
) -> ToolResult:
    backup_path, machine, _source, _db = _backup(flags)
    when = asof.parse_time(at) if at is not None else None
    keys = wiring.keys()
    target = lookup.find_session(backup_path, machine, session, seal=keys)
    work_dir = paths.app_data_dir()
    ctx.progress("reading the backup")
    h = history(target.machine_dir, target.session_id, work_dir, newest_only=when is None, seal=keys)
    copy = asof.pick(h, at=when)
    doc = asof.read_copy(h, copy, work_dir)
    text, next_one, total = transcript.capped(doc, asof.source(h, copy), SHOW_CHARS, first=first)
    if first > max(total, 1):
        raise UsageError(f"{h.session_id} has {total} message(s); from_message {first} is past the end")
    return ToolResult(text + "\n\n" + wording.shown_text(h.session_id, first, next_one, total, at))


def _restore_at(
    flags: Mapping[str, object], confirm: bool, sessions: Sequence[str], at: str, ctx: CallContext
) -> ToolResult:
    if len(sessions) != 1:
        raise UsageError("at restores one session: name exactly one in sessions")
    backup_path, machine, source, opencode_db = _backup(flags)
    work_dir = paths.app_data_dir()
    db = restore_target(source, opencode_db)
    where = (backup_path, machine, None)
    at_time = asof.parse_time(at)
    req, chosen = asof.restore_request(where, sessions[0], db, work_dir, at=at_time, seal=wiring.keys())
    return planned(req, confirm, sessions, ctx, lead=chosen)


def _told(ctx: CallContext) -> Report:
    """Building the index reports its progress as the call's ('indexing the backup for search: 640 of
    1,800'), at most every 2 s."""
    throttled = Throttled(lambda p: ctx.progress(p.words()), every=2.0)
    return throttled.report
