"""What a machine folder holds, each file checked as untrusted input: the inventory a repair indexes.

The folder is walked without following a link. Every session file is read as a restore reads it
(:func:`~app.backup.backup_reader.read_session`: format, ids, rows of its own closure, values) and must
sit where its session's file belongs; every snapshot is decompressed (capped) and passes SQLite's
``integrity_check``, as a restore checks the one it uses; every ``storage/`` file has a plain name and a
real size. What fails is listed to be set aside, with why; so is every symlink or special file anywhere
(a restore refuses a folder that holds one), and the older file of a session found twice. Temp files
(dot names) and files a sync never writes are left alone. Reads only; runs on the caller's thread.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.backup import backup_reader as br
from app.backup import manifest as mf
from app.backup import untrusted as u
from app.backup.aside import DAMAGED
from app.backup.ownership import LEASE, OWNER
from app.backup.progress import Sink, Step, Throttled, nowhere
from app.crypt.age import file_is_sealed
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupDamaged, BackupError
from app.fsutil import sha256_file
from app.opencode.snapshot import parse_snapshot_name
from app.safe_text import clean

MAX_LEGACY_FILE_BYTES = br.MAX_SESSION_BYTES  # what restore --legacy reads at most
Seen = tuple[int, int, int]  # (size, mtime_ns, inode) when it was checked: a repair redoes nothing changed


@dataclass(frozen=True)
class Aside:
    """A file (or link, or folder) to set aside, and why."""

    rel: str
    why: str


@dataclass
class Inventory:
    """The files worth indexing, by kind, with what each was when checked; and what is set aside."""

    sessions: dict[str, mf.SessionEntry] = field(default_factory=dict)
    snapshots: dict[str, mf.FileEntry] = field(default_factory=dict)
    storage: dict[str, dict[str, mf.FileEntry]] = field(default_factory=dict)  # shard -> rel -> entry
    aside: list[Aside] = field(default_factory=list)
    seen: dict[str, Seen] = field(default_factory=dict)
    sealed: int = 0  # files found encrypted

    def encryption(self, seal: Seal) -> mf.Encryption:
        """The record a new index gives the folder: none for plain files written by a plain install;
        else a re-encryption to what this install writes (the next sync converts whatever is not)."""
        if not self.sealed and not seal.on:
            return mf.PLAIN
        return mf.Encryption((), rekey_to=seal.recipients)

    @property
    def storage_files(self) -> int:
        return sum(len(entries) for entries in self.storage.values())

    @property
    def storage_bytes(self) -> int:
        return sum(e.size for entries in self.storage.values() for e in entries.values())


def take_stock(machine_dir: Path, work_dir: Path, progress: Sink = nowhere, seal: Seal = PLAIN) -> Inventory:
    """Walk ``machine_dir`` and check every file a sync writes (see the module's docstring); encrypted
    ones are decrypted with ``seal`` to be checked (KeyMissing, before anything is set aside, when this
    install has no key), and the titles the index lists are sealed with it."""
    found = Inventory()
    files: list[tuple[str, os.stat_result]] = []
    for rel, st in _walk(machine_dir, found):
        if rel.startswith(("sessions/", "snapshots/", "storage/")):
            files.append((rel, st))
    tell = Throttled(progress)
    nbytes = 0
    copies: dict[str, tuple[mf.SessionEntry, str]] = {}  # session id -> (entry, rel) of the newest file
    for done, (rel, st) in enumerate(sorted(files)):
        tell.report(Step.VERIFYING, done, len(files), nbytes)
        nbytes += st.st_size
        found.sealed += file_is_sealed(machine_dir / rel)
        try:
            if rel.startswith("sessions/"):
                entry = _session(machine_dir, rel, seal)
                if entry is None:
                    continue
                _newest(found, copies, entry, rel)
            elif rel.startswith("snapshots/"):
                _snapshot(machine_dir, rel, work_dir, found, seal)
            else:
                _storage(machine_dir, rel, st, found)
        except BackupDamaged as exc:
            found.aside.append(Aside(rel, clean(exc, 300)))
            continue
        found.seen[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
    tell.report(Step.VERIFYING, len(files), len(files), nbytes)
    found.sessions = {sid: entry for sid, (entry, _rel) in copies.items()}
    for aside in found.aside:  # an older copy of a session passed its checks: not indexed all the same
        found.seen.pop(aside.rel, None)
    return found


def _walk(machine_dir: Path, found: Inventory) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file under ``machine_dir`` as (relative path, lstat), ``damaged/`` left out; each
    symlink and special file is listed to be set aside instead (never followed)."""
    stack = [""]
    while stack:
        prefix = stack.pop()
        try:
            with os.scandir(machine_dir / prefix if prefix else machine_dir) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if rel in (OWNER, LEASE):
                continue  # whatever they are, the ownership checks take them over (or refuse them)
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # gone while we look (a sync's temp file)
                continue
            if stat.S_ISLNK(st.st_mode):
                found.aside.append(Aside(rel, "a symbolic link (a backup holds none; a restore refuses one)"))
            elif stat.S_ISDIR(st.st_mode):
                if rel != DAMAGED:
                    stack.append(rel + "/")
            elif stat.S_ISREG(st.st_mode):
                yield rel, st
            else:
                found.aside.append(Aside(rel, "not a regular file (a device, a pipe or a socket)"))


def _session(machine_dir: Path, rel: str, seal: Seal) -> mf.SessionEntry | None:
    """The index entry of a session file (None: not a session file's name); BackupDamaged when it
    fails a restore's checks or cannot be indexed where it is."""
    parts = rel.split("/")
    name = parts[-1]
    if len(parts) != 3 or name.startswith(".") or not name.endswith(".json"):
        return None  # a temp file, or nothing a sync writes
    sid = name.removesuffix(".json")
    if not u.ID.match(sid):
        raise BackupDamaged(f"not a session file's name: {u.short(name)}")
    doc = br.read_session(machine_dir / rel, sid, seal=seal)
    session = doc.session_row
    directory = session.get("directory")
    entry = mf.SessionEntry(
        path=rel,
        project_id=doc.project_id,
        title=seal.seal_text(
            doc.title.replace("\x00", "")[:20_000]
        ),  # a display field: never what keeps it out
        directory=seal.seal_text(directory.replace("\x00", "")[:8192] if isinstance(directory, str) else ""),
        time_updated=doc.time_updated,
        fingerprint=str(doc.time_updated),  # a cold session's; a sync exports a hot one again
        size=doc.size,
        sha256=doc.sha256,
        store=doc.store,
    )
    if rel != mf.session_path(doc.project_id, sid):
        raise BackupDamaged(
            f"holds session {sid} of project {u.short(doc.project_id)}: not where its file belongs"
        )
    if not mf.session_passes_checks(sid, entry):
        raise BackupDamaged(f"session {sid} cannot be indexed (its project id or time)")
    return entry


def _newest(
    found: Inventory, copies: dict[str, tuple[mf.SessionEntry, str]], entry: mf.SessionEntry, rel: str
) -> None:
    """Keep the newest file of each session (two files for one session: one outlived a project move)."""
    sid = rel.rsplit("/", 1)[-1].removesuffix(".json")
    old = copies.get(sid)
    if old is None or (entry.time_updated, rel) > (old[0].time_updated, old[1]):
        copies[sid] = (entry, rel)
        if old is not None:
            found.aside.append(Aside(old[1], f"an older copy of session {sid} (the newer one is {rel})"))
    else:
        found.aside.append(Aside(rel, f"an older copy of session {sid} (the newer one is {old[1]})"))


def _snapshot(machine_dir: Path, rel: str, work_dir: Path, found: Inventory, seal: Seal) -> None:
    name = rel.removeprefix("snapshots/")
    parsed = parse_snapshot_name(name)
    if parsed is None or "/" in name:
        return  # a temp file, or nothing a sync writes
    path = machine_dir / rel
    try:
        with br.checked_snapshot(br.SnapshotRef(path, *parsed), work_dir, seal=seal) as db:
            raw_size = db.stat().st_size
    except br.NoRoomToCheck as exc:  # this computer's disk, not the snapshot, is what stops the check
        raise BackupError(
            f"cannot check snapshot {rel} ({exc}): free some disk space where {work_dir} is and run "
            "repair again; nothing was changed"
        ) from None
    found.snapshots[rel] = mf.FileEntry(path.stat().st_size, sha256_file(path), raw_size=raw_size)


def _storage(machine_dir: Path, rel: str, st: os.stat_result, found: Inventory) -> None:
    u.relpath(rel, "its name", "storage")
    if st.st_size > MAX_LEGACY_FILE_BYTES:
        raise BackupDamaged(f"{st.st_size:,} bytes is larger than any real legacy file")
    shard = mf.shard_of(rel)
    entry = mf.FileEntry(st.st_size, sha256_file(machine_dir / rel), st.st_mtime_ns)
    if not mf.passes_checks(shard, rel, entry):
        raise BackupDamaged("cannot be indexed")
    found.storage.setdefault(shard, {})[rel] = entry
