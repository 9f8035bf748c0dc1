"""Where the session files of a backup folder are: every machine folder, each one's
``sessions/<project>/<id>.json``, its kept versions (``versions/<stamp>/sessions/<project>/<id>.json``) and
the last copy there of a session deleted since; for the search index and ``history``.

Only names and ``lstat`` results are read here, never through a symlink; a name that is not a plain
id, a link or anything but a folder or a regular file is passed over (the index says which files it could
not read; these are not session files). Runs on the caller's thread.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from app.backup import untrusted as u
from app.backup.aside import DAMAGED
from app.backup.guard import VERSIONS, parse_stamp

logger = logging.getLogger(__name__)

SESSIONS = "sessions"


@dataclass(frozen=True)
class Found:
    """A session file: ``rel`` to its machine folder, its size and mtime (a replaced file has new ones),
    and whether it is in ``sessions/`` (False: the last copy, in ``versions/``, of a deleted session)."""

    session_id: str
    rel: str
    size: int
    mtime_ns: int
    in_backup: bool = True
    ino: int = 0  # its inode number (our syncs never rewrite a file in place: a new copy has a new one)


def machine_folders(backup_path: Path) -> list[str]:
    """The machine folders of a backup folder, by name: plain folders holding ``sessions/``."""
    names = []
    for entry in _entries(backup_path):
        if entry.name.startswith(".") or entry.name == DAMAGED or not _is_dir(entry):
            continue
        if _is_dir_path(Path(entry.path) / SESSIONS):
            names.append(entry.name)
    return sorted(names)


def project_dirs(machine_dir: Path) -> dict[str, int]:
    """``sessions/<project>`` -> its mtime (ns): renaming a file in or out changes it."""
    out = {}
    for entry in _entries(machine_dir / SESSIONS):
        if not entry.name.startswith(".") and _is_dir(entry):
            try:
                out[f"{SESSIONS}/{entry.name}"] = entry.stat(follow_symlinks=False).st_mtime_ns
            except OSError:
                continue
    return out


def files_in(
    machine_dir: Path, rel_dir: str, same: Callable[[str, int], Found | None] | None = None
) -> list[Found]:
    """The session files of one ``sessions/<project>`` folder. ``same(rel, inode)``: the file as known
    already when it is still that inode (it is taken so, without a ``stat``: a folder only our syncs write,
    which put every new copy in place by a rename or a link)."""
    out = []
    for entry in _entries(machine_dir / rel_dir):
        rel = f"{rel_dir}/{entry.name}"
        known = same(rel, entry.inode()) if same is not None else None
        found = known or _session_file(entry, rel, in_backup=True)
        if found is not None:
            out.append(found)
    return out


def version_stamps(machine_dir: Path) -> list[str]:
    """The ``versions/<stamp>`` folders, oldest first (by their UTC stamps)."""
    found = (e.name for e in _entries(machine_dir / VERSIONS) if _is_dir(e) and parse_stamp(e.name))
    return sorted(found)


def copies_in(machine_dir: Path, rel_base: str, session_id: str | None) -> list[Found]:
    """The session files in the project folders of ``rel_base`` (``sessions`` or
    ``versions/<stamp>/sessions``); only ``session_id``'s when given (one ``lstat`` per project)."""
    in_backup = rel_base == SESSIONS
    out: list[Found] = []
    for project in _entries(machine_dir / rel_base):
        if project.name.startswith(".") or not _is_dir(project):
            continue
        rel_dir = f"{rel_base}/{project.name}"
        if session_id is None:
            out += (
                f
                for e in _entries(Path(project.path))
                if (f := _session_file(e, f"{rel_dir}/{e.name}", in_backup=in_backup))
            )
            continue
        name = f"{session_id}.json"
        try:
            st = (Path(project.path) / name).lstat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and u.ID.match(session_id):
            out.append(Found(session_id, f"{rel_dir}/{name}", st.st_size, st.st_mtime_ns, in_backup))
    return out


def last_copies(machine_dir: Path, wanted: Iterable[str] | None = None) -> dict[str, Found]:
    """Session id -> its newest copy in ``versions/``, for the ids ``wanted`` (None: every session that
    has one). Stamps are looked at newest first; with ``wanted``, only until each was found (a session
    deleted by the last sync is in the newest stamp)."""
    left = None if wanted is None else set(wanted)
    out: dict[str, Found] = {}
    for stamp in reversed(version_stamps(machine_dir)):
        if left is not None and not left:
            break
        for found in copies_in(machine_dir, f"{VERSIONS}/{stamp}/{SESSIONS}", None):
            if found.session_id not in out and (left is None or found.session_id in left):
                out[found.session_id] = found
                if left is not None:
                    left.discard(found.session_id)
    return out


def _session_file(entry: os.DirEntry[str], rel: str, *, in_backup: bool) -> Found | None:
    name = entry.name
    if name.startswith(".") or not name.endswith(".json") or not u.ID.match(name[: -len(".json")]):
        return None
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Found(name[: -len(".json")], rel, st.st_size, st.st_mtime_ns, in_backup, st.st_ino)


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        logger.warning("cannot look into %s: %s", folder, exc)
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _is_dir_path(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False
