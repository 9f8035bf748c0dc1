"""A session as it was: the copy ``--at TIME`` or ``--version N`` names, read or made ready to restore.

``show``, ``restore --at`` and the agent's tools go through here; :mod:`.history` says which copies there
are and when each was backed up. Runs on the caller's thread.
"""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

from app.backup import backup_reader as br
from app.backup import lookup
from app.backup.history import Copy, History, Kind, history
from app.backup.restore import RestoreRequest
from app.backup.snapshot_check import SnapshotRef, snapshots
from app.backup.snapshot_sessions import extract, materialize
from app.backup.transcript import Source
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupError, UsageError

FIRST_YEAR, LAST_YEAR = 1970, 9998  # the times --at takes: backups are from after 1970; 9999 overflows in UTC


def parse_time(text: str) -> datetime:
    """A time as ``--at`` takes it: ISO 8601, local time unless it carries an offset (``Z``, ``+01:00``); a
    date alone (``2026-11-30`` or ``20261130``) is the end of that day. Raises UsageError (one line) for
    anything else, and for a time outside the years FIRST_YEAR to LAST_YEAR (which every later step can
    put in local time)."""
    text = text.strip()
    try:
        when = _parsed(text)
        if not FIRST_YEAR <= when.year <= LAST_YEAR:
            raise UsageError(f"{text!r} is out of range: give a time from {FIRST_YEAR} to {LAST_YEAR}")
        local = when.astimezone()  # what every later step does with it: here, where it can fail
        return when if when.tzinfo is not None else local
    except (ValueError, OverflowError, OSError):
        raise UsageError(
            f"not a time: {text!r}; give ISO 8601, e.g. 2026-11-30T14:05 (local time), 2026-11-30T13:05Z, "
            "or 2026-11-30 (the end of that day)"
        ) from None


def _parsed(text: str) -> datetime:
    """``text`` as a datetime, naive unless it carries an offset; a date alone is the end of that day."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return datetime.fromisoformat(text)
    return datetime.combine(day, time.max)


def pick(h: History, *, at: datetime | None = None, version: int | None = None) -> Copy:
    """The copy ``at`` a time or numbered ``version`` (1 = the newest, as ``history`` prints it); the
    newest when neither is given. Raises NoCopyThen."""
    if at is not None and version is not None:
        raise UsageError("give --at or --version, not both")
    if version is not None:
        return h.number(version)
    if at is not None:
        return h.as_of(at)
    return h.copies[0]


def read_copy(h: History, copy: Copy, work_dir: Path) -> br.SessionDoc:
    """The copy's session file, validated (a snapshot's copy is exported from the checked snapshot)."""
    if copy.kind is Kind.SNAPSHOT:
        ref = snapshot_of(h, copy)
        return br.parse_session(extract(ref, h.session_id, work_dir, h.seal), ref.path, h.session_id)
    return br.read_session(h.machine_dir / copy.rel, h.session_id, seal=h.seal)


def restore_file(h: History, copy: Copy, work_dir: Path) -> Path:
    """The file a restore of this copy reads: the kept file itself, or a snapshot's copy written out
    into ``work_dir`` (the app's data folder)."""
    if copy.kind is Kind.SNAPSHOT:
        return materialize(snapshot_of(h, copy), h.session_id, work_dir, h.seal)
    return h.machine_dir / copy.rel


def restore_request(
    where: tuple[Path, str, str | None],
    session: str,
    db: Path,
    work_dir: Path,
    *,
    at: datetime | None = None,
    version: int | None = None,
    seal: Seal = PLAIN,
) -> tuple[RestoreRequest, str]:
    """The restore of one session as it was ``at`` a time or its ``version``: ``where`` is the backup
    folder, this machine's name and the machine folder asked for (None: this one, then the others).
    Returns the request and a line saying which copy it restores."""
    backup_path, machine, from_machine = where
    target = lookup.find_session(backup_path, machine, session, from_machine, seal)
    h = history(target.machine_dir, target.session_id, work_dir, seal=seal)
    copy = pick(h, at=at, version=version)
    req = request_for(h, copy, db, work_dir)
    sid = h.session_id
    then = f" (as it was at {at.astimezone():%Y-%m-%d %H:%M:%S})" if at is not None else ""
    chosen = (
        f"{sid}: version {copy.number} of {len(h.copies)}{then}, backed up {copy.when()}, "
        f"{copy.messages} message(s), from machine folder {h.machine}"
    )
    return req, chosen


def request_for(h: History, copy: Copy, db: Path, work_dir: Path) -> RestoreRequest:
    """The restore of ``copy`` of the session into opencode's database ``db`` (replacing the session
    opencode has, after the plan's confirmation, as any named restore)."""
    sid = h.session_id
    files = ((sid, restore_file(h, copy, work_dir)),)
    return RestoreRequest(
        machine_dir=h.machine_dir, db=db, work_dir=work_dir, ids=(sid,), files=files, seal=h.seal
    )


def source(h: History, copy: Copy) -> Source:
    """How a transcript names the copy it shows."""
    return Source(h.machine, copy.number, copy.when(), copy.rel, copy.backed_up)


def snapshot_of(h: History, copy: Copy) -> SnapshotRef:
    """The snapshot a SNAPSHOT copy is in."""
    name = copy.rel.removeprefix("snapshots/")
    ref = next((r for r in snapshots(h.machine_dir) if r.path.name == name), None)
    if ref is None:
        raise BackupError(f"snapshot {name} is no longer in the backup")
    return ref
