"""Read a machine folder of the backup as hostile input: every file is checked before restore uses it.

Nothing here follows a symlink (``lstat``/``scandir`` without following), builds a path from
file contents, or writes anywhere but a private temp folder. Everything that is wrong raises
:class:`~app.errors.BackupDamaged` with one line naming the file; nothing else escapes.
Runs on the caller's thread (the CLI's or the worker's).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.backup import untrusted as u
from app.backup.aside import DAMAGED
from app.errors import BackupDamaged, UsageError
from app.fsutil import make_private_dirs
from app.opencode.schema import SECRET_TABLES
from app.opencode.snapshot import SNAPSHOT_SUFFIX, parse_snapshot_name
from app.opencode.stores import BY_FORMAT, BY_TAG, ROOTS

# No real session comes near this (the largest measured is ~60 MiB); a bigger file is refused unread.
MAX_SESSION_BYTES = 512 << 20
_SQLITE_INT = (-(1 << 63), (1 << 63) - 1)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Columns that tie a row to its session, per table ("*" = any table).
_OWNER_COLUMNS = (
    *((root, "id") for root in sorted(ROOTS)),
    ("*", "session_id"),
    ("event_sequence", "aggregate_id"),
    ("event", "aggregate_id"),
)

Row = dict[str, Any]
_PLAIN = frozenset({str, type(None)})  # values that need no check


@dataclass(frozen=True)
class SessionDoc:
    """A validated session file: its rows (blobs decoded to bytes) and where it came from."""

    session_id: str
    project_id: str
    title: str
    time_updated: int
    rows: dict[str, list[Row]]
    path: Path
    size: int
    sha256: str
    store: str = "v1"  # the opencode store it was backed up from (its format says which)

    @property
    def session_row(self) -> Row:
        """The session's own row (in its store's table: ``session`` or ``session_v2``)."""
        return self.rows[BY_TAG[self.store].root][0]

    @property
    def row_count(self) -> int:
        return sum(len(r) for r in self.rows.values())


@dataclass(frozen=True)
class SnapshotRef:
    """A snapshot file of the machine folder (not yet decompressed or checked)."""

    path: Path
    label: str
    stamp: str


def safe_machine_dir(backup_path: Path, machine: str) -> Path:
    """``backup_path/machine`` after checking the name is one plain folder name and not a symlink."""
    if (
        not machine
        or machine in (".", "..")
        or any(c in machine for c in "/\\:\0")
        or Path(machine).is_absolute()
    ):
        raise UsageError(f"not a machine folder name: {machine!r}")
    machine_dir = backup_path / machine
    try:
        st = machine_dir.lstat()
    except FileNotFoundError:
        raise BackupDamaged(f"no backup for machine {machine!r} in {backup_path}") from None
    if stat.S_ISLNK(st.st_mode):
        raise BackupDamaged(f"refusing the backup: {machine_dir} is a symlink")
    if not stat.S_ISDIR(st.st_mode):
        raise BackupDamaged(f"refusing the backup: {machine_dir} is not a folder")
    return machine_dir


def check_tree(root: Path) -> int:
    """Walk ``root`` without following links; refuse any symlink or special file. Returns files seen.
    ``root/damaged/`` is not looked at: what repair set aside there is never read back."""
    files = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                if folder == root and entry.name == DAMAGED:
                    continue
                if entry.is_symlink():
                    raise BackupDamaged(f"refusing the backup: {entry.path} is a symlink")
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    files += 1
                else:
                    raise BackupDamaged(f"refusing the backup: {entry.path} is not a regular file")
    return files


def session_files(machine_dir: Path) -> dict[str, list[Path]]:
    """Session id -> files ``sessions/<project>/<id>.json`` (temp files ignored). Call check_tree first."""
    found: dict[str, list[Path]] = {}
    root = machine_dir / "sessions"
    if not root.is_dir():
        return found
    for project in _entries(root):
        if project.name.startswith(".") or not project.is_dir(follow_symlinks=False):
            continue
        for entry in _entries(Path(project.path)):
            name = entry.name
            if name.startswith(".") or not name.endswith(".json"):
                continue
            sid = name[: -len(".json")]
            if not _ID.match(sid):
                raise BackupDamaged(f"refusing the backup: unexpected file name {entry.path}")
            found.setdefault(sid, []).append(Path(entry.path))
    return found


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def snapshots(machine_dir: Path) -> list[SnapshotRef]:
    """The machine folder's snapshots, oldest first (by the UTC stamp in their names)."""
    folder = machine_dir / "snapshots"
    if not folder.is_dir():
        return []
    refs = []
    for entry in _entries(folder):
        parsed = parse_snapshot_name(entry.name)
        if parsed is not None and entry.is_file(follow_symlinks=False):
            refs.append(SnapshotRef(Path(entry.path), parsed[0], parsed[1]))
    return sorted(refs, key=lambda r: (r.stamp, r.label))


def read_bytes_capped(path: Path, cap: int) -> bytes:
    """The bytes of a regular file (never through a symlink), refusing files above ``cap`` bytes."""
    return u.read_capped(path, cap, str(path))


def read_session(path: Path, expected_id: str | None = None, cap: int | None = None) -> SessionDoc:
    """Parse and validate one session file; raises BackupDamaged (one line) for anything wrong."""
    data = read_bytes_capped(path, MAX_SESSION_BYTES if cap is None else cap)
    return parse_session(data, path, expected_id)


def parse_session(data: bytes, path: Path, expected_id: str | None = None) -> SessionDoc:
    """Validate the bytes of a session file (see :func:`read_session`)."""
    try:
        doc = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise BackupDamaged(f"refusing {path.name}: not valid JSON ({_short(exc)})") from None
    if not isinstance(doc, dict):
        raise BackupDamaged(f"refusing {path.name}: not a session file")
    fmt = doc.get("format")
    store = BY_FORMAT.get(fmt) if isinstance(fmt, str) else None
    if store is None:
        raise BackupDamaged(f"refusing {path.name}: unknown format {_short(doc.get('format'))}")
    if doc.get("store", store.tag) != store.tag:
        raise BackupDamaged(f"refusing {path.name}: its store {_short(doc.get('store'))} is not its format's")
    sid = doc.get("session_id")
    if not isinstance(sid, str) or not _ID.match(sid):
        raise BackupDamaged(f"refusing {path.name}: bad session_id")
    if expected_id is not None and sid != expected_id:
        raise BackupDamaged(f"refusing {path.name}: it holds session {sid}, not {expected_id}")
    raw_rows = doc.get("rows")
    if not isinstance(raw_rows, dict):
        raise BackupDamaged(f"refusing {path.name}: no rows")
    rows: dict[str, list[Row]] = {}
    for table, table_rows in raw_rows.items():
        if not isinstance(table, str) or not _IDENT.match(table) or table in SECRET_TABLES:
            raise BackupDamaged(f"refusing {path.name}: unexpected table {_short(table)}")
        if not isinstance(table_rows, list):
            raise BackupDamaged(f"refusing {path.name}: rows of {table} are not a list")
        rows[table] = _rows(path, table, table_rows, sid)
    sessions = rows.get(store.root, [])
    if len(sessions) != 1:
        raise BackupDamaged(f"refusing {path.name}: it must hold exactly one {store.root} row")
    session = sessions[0]
    project_id = session.get("project_id")
    time_updated = session.get("time_updated", 0)
    if not isinstance(project_id, str) or not isinstance(time_updated, int):
        raise BackupDamaged(f"refusing {path.name}: the session row lacks project_id or time_updated")
    for table, table_rows in rows.items():
        if table == "project" and any(r.get("id") != project_id for r in table_rows):
            raise BackupDamaged(f"refusing {path.name}: it holds another session's project")
    title = session.get("title")
    return SessionDoc(
        session_id=sid,
        project_id=project_id,
        title=title if isinstance(title, str) else "",
        time_updated=time_updated,
        rows=rows,
        path=path,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        store=store.tag,
    )


def _rows(path: Path, table: str, raw_rows: list[object], sid: str) -> list[Row]:
    """The rows of one table: plain names and values, none another session's. Each set of names is checked
    once, a text or None no more (300 bench sessions: parsed 0.29 s, checked each by each 0.50 s, so 0.43)."""
    owners = [column for owner_table, column in _OWNER_COLUMNS if owner_table in ("*", table)]
    named: set[tuple[object, ...]] = set()
    out: list[Row] = []
    for raw in raw_rows:
        if not isinstance(raw, dict) or not raw:
            raise BackupDamaged(f"refusing {path.name}: a row of {table} is not an object")
        if (names := tuple(raw)) not in named:
            bad = [c for c in names if not isinstance(c, str) or not _IDENT.match(c)]
            if bad:
                raise BackupDamaged(f"refusing {path.name}: unexpected column {_short(bad[0])} in {table}")
            named.add(names)
        row: Row = {c: v if type(v) in _PLAIN else _value(path, table, c, v) for c, v in raw.items()}
        owned = next((c for c in owners if c in row and row[c] != sid), None)
        if owned is not None:
            who = _short(row[owned])
            raise BackupDamaged(f"refusing {path.name}: a row of {table} belongs to another session ({who})")
        out.append(row)
    return out


def _value(path: Path, table: str, column: str, value: object) -> object:
    if type(value) is int and _SQLITE_INT[0] <= value <= _SQLITE_INT[1]:  # the commonest, after text
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BackupDamaged(f"refusing {path.name}: {table}.{column} is not a finite number")
        return value
    if isinstance(value, bool):
        raise BackupDamaged(f"refusing {path.name}: {table}.{column} holds a boolean")
    if isinstance(value, int):
        raise BackupDamaged(f"refusing {path.name}: {table}.{column} is out of SQLite's range")
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("$blob"), str):
        try:
            return base64.b64decode(value["$blob"], validate=True)
        except (binascii.Error, ValueError):
            raise BackupDamaged(f"refusing {path.name}: {table}.{column} is not valid base64") from None
    raise BackupDamaged(f"refusing {path.name}: {table}.{column} holds {type(value).__name__}, not a value")


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _short(value: object) -> str:
    text = repr(value) if not isinstance(value, BaseException) else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


# A real snapshot (VACUUMed: no free pages) compresses 4-10x with zstd; allow far more, never a bomb.
MAX_RATIO = 100
SMALL_SNAPSHOT_CAP = 64 << 20  # tiny databases compress better; letting any expand this far is harmless
FREE_MARGIN = 1 << 30  # never fill the disk opencode's database lives on: keep this much free
_SQLITE_MAGIC = b"SQLite format 3\x00"
FREE_SPACE = "the free disk space, less 1 GiB kept free for opencode"


class NoRoomToCheck(BackupDamaged):
    """A snapshot expands past the free disk space this computer has to check it: maybe sound."""


def snapshot_cap(compressed: int, recorded_raw: int | None, free: int) -> tuple[int, str]:
    """How many bytes a snapshot may decompress to, and why (for the refusal). Pure.

    The least of: what the manifest recorded when the snapshot was taken, ``MAX_RATIO`` times its
    compressed size (at least ``SMALL_SNAPSHOT_CAP``), and the free space minus a margin."""
    caps = [
        (
            max(SMALL_SNAPSHOT_CAP, compressed * MAX_RATIO),
            f"{MAX_RATIO}x its size, which no real snapshot reaches",
        )
    ]
    if recorded_raw:
        caps.append((recorded_raw, "the size the manifest recorded"))
    caps.append((max(0, free - FREE_MARGIN), FREE_SPACE))
    return min(caps)


@contextlib.contextmanager
def checked_snapshot(ref: SnapshotRef, work_dir: Path, raw_size: int | None = None) -> Iterator[Path]:
    """Decompress a snapshot into a private temp file, check ``integrity_check``; yield its path.

    The temp file is removed on exit. ``raw_size`` is what the manifest recorded (0/None: unknown).
    Raises BackupDamaged for a damaged, oversized or hostile snapshot, within seconds: decompression stops
    at :func:`snapshot_cap` and at the size the database's own header declares.
    """
    if not ref.path.name.endswith(SNAPSHOT_SUFFIX):
        raise BackupDamaged(f"refusing {ref.path.name}: not a snapshot")
    import zstandard  # noqa: PLC0415 - loaded only to read a snapshot (start-up time)

    make_private_dirs(work_dir)
    compressed = read_capped_size(ref.path)
    cap, why = snapshot_cap(compressed, raw_size, shutil.disk_usage(work_dir).free)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        out = Path(tmp) / "snapshot.db"
        try:
            _decompress_capped(zstandard, ref.path, out, cap, why)
            conn = sqlite3.connect(out.as_uri() + "?mode=ro", uri=True)
            try:
                conn.execute("PRAGMA trusted_schema=OFF")
                result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                conn.close()
        except BackupDamaged:
            raise
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise NoRoomToCheck(
                    f"not enough free space in {work_dir} to check snapshot {ref.path.name}"
                ) from None
            raise BackupDamaged(
                f"refusing snapshot {ref.path.name}: cannot be read ({_short(exc)})"
            ) from None
        except Exception as exc:  # any decoder or SQLite error: the snapshot is unusable
            raise BackupDamaged(
                f"refusing snapshot {ref.path.name}: cannot be read ({_short(exc)})"
            ) from None
        if result != "ok":
            raise BackupDamaged(
                f"refusing snapshot {ref.path.name}: integrity_check failed ({_short(result)})"
            )
        yield out


def read_capped_size(path: Path) -> int:
    """The size of a regular file (not through a symlink)."""
    st = path.lstat()
    if not stat.S_ISREG(st.st_mode):
        raise BackupDamaged(f"refusing {path.name}: not a regular file")
    return st.st_size


def _decompress_capped(zstandard: Any, src: Path, out: Path, cap: int, why: str) -> None:
    total = 0
    declared: int | None = None
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(src, flags)
    with (
        os.fdopen(fd, "rb") as fh,
        zstandard.ZstdDecompressor().stream_reader(fh) as reader,
        open(out, "wb") as dst,
    ):
        while chunk := reader.read(1 << 20):
            if declared is None:
                declared = _declared_size(src, chunk)
                if declared < cap:
                    cap, why = declared, "the size its own header declares"
            total += len(chunk)
            if total > cap:
                refused = NoRoomToCheck if why == FREE_SPACE else BackupDamaged
                raise refused(f"refusing snapshot {src.name}: it expands to more than {cap:,} bytes ({why})")
            dst.write(chunk)
    if declared is None:  # a torn stream yields nothing, and SQLite calls an empty file a sound database
        raise BackupDamaged(f"refusing snapshot {src.name}: it does not hold an SQLite database")


def _declared_size(src: Path, head: bytes) -> int:
    """The database size its header declares (page size x page count); refuses a non-SQLite stream."""
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        raise BackupDamaged(f"refusing snapshot {src.name}: it does not hold an SQLite database")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid = head[92:96] == head[24:28]  # "version-valid-for" equals the change counter
    return page_size * pages if valid and pages else 1 << 62
