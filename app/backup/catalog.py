"""The catalog of a machine folder: every backed-up session, and whether opencode still has it.

What ``opencode-backup list`` prints, the tray's restore picker shows and the agent's restore tool
offers. A session deleted in opencode and then synced away lives on in ``versions/``: it is listed too
(``in_backup`` False), because "I deleted it by mistake" is the commonest reason to look.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from app.backup import manifest as mf
from app.backup import restore
from app.backup.history import version_counts
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupError
from app.opencode.locate import locate
from app.opencode.sessions import Reader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionRow:
    """One backed-up session. ``in_opencode``: opencode has it now; ``in_backup``: its file is in
    ``sessions/`` (False: only its last copy in ``versions/`` is left); ``versions``: how many copies of
    it the machine folder holds (the current file and the kept versions: ``history`` lists them)."""

    id: str
    title: str
    project_id: str
    directory: str
    time_updated: datetime
    bytes: int
    in_opencode: bool
    in_backup: bool
    versions: int = 1


def live_session_ids(
    source: Path, opencode_db: Path | None, backed_up: Callable[[str], str | None] | None = None
) -> set[str]:
    """The ids of the sessions opencode shows now, in any of its database(s) and stores (``backed_up``:
    session id -> the store tag the backup holds it from)."""
    live: set[str] = set()
    for db in locate(source, opencode_db).databases:
        with Reader(db) as reader:
            live.update(reader.live(backed_up).marks)
    return live


def session_rows(
    machine_dir: Path, machine: str, source: Path, opencode_db: Path | None, seal: Seal = PLAIN
) -> list[SessionRow]:
    """Every backed-up session of ``machine_dir``, newest first. In an encrypted folder the titles and
    folders are opened with ``seal`` (shown as "(encrypted)" without a key)."""
    man = mf.load(machine_dir, machine)
    live = live_session_ids(source, opencode_db, man.store_of)
    seal = seal.for_folder(man.encryption.sealed)
    rows = [
        SessionRow(
            sid,
            seal.readable_text(e.title, f"the title of {sid}"),
            e.project_id,
            seal.readable_text(e.directory, f"the folder of {sid}"),
            _time(e.time_updated),
            e.size,
            sid in live,
            in_backup=True,
        )
        for sid, e in man.sessions.items()
    ]
    for sid, files in restore.versioned_files(machine_dir).items():
        if sid in man.sessions:
            continue
        try:
            doc = restore.newest_doc(sid, files, seal)
        except BackupError as exc:
            logger.warning("skipping an unreadable old copy of %s: %s", sid, exc)
            continue
        session = doc.session_row
        directory = session.get("directory")
        rows.append(
            SessionRow(
                sid,
                doc.title,
                doc.project_id,
                directory if isinstance(directory, str) else "",
                _time(doc.time_updated),
                doc.size,
                sid in live,
                in_backup=False,
            )
        )
    counts = version_counts(machine_dir)
    rows = [replace(r, versions=counts.get(r.id, 1)) for r in rows]
    rows.sort(key=lambda r: r.time_updated, reverse=True)
    return rows


def _time(ms: int) -> datetime:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).replace(microsecond=0)
    except (OverflowError, OSError, ValueError):
        return datetime.fromtimestamp(0, UTC)
