"""Re-encrypting a machine folder in place: after ``encryption enable``, ``disable`` or ``add-recipient``,
every file a sync wrote (session files, snapshots, legacy files), every kept version and everything
repair set aside is rewritten for the recipients this install now encrypts to (none: plain files), and
the manifest's titles and folders with them. Runs inside a sync (its lock and lease), after its commit.

The commit point rules hold. Files are converted in chunks, in one fixed order; for each chunk the new
contents are written under temp names in ``.rekey/`` and made durable, the intent names them (so verify,
and a rekey that starts again, know them), they are renamed over the old files, and one manifest commit
records their new sizes and digests with how far the rekey got (``encryption.rekey.done``). A crash
leaves each file whole, in its old form or its new one, and a manifest that says a rekey is under way:
readers then take both forms (an encrypted file needs the key), and the next sync goes on from the last
commit. When every file is done one commit says the folder is wholly of its new kind; the session
shards are then written whole and the ones they replace removed, so no title is left in clear.
A file too large to convert in memory (a snapshot) is decrypted into ``scratch``, a private folder on
this computer (the sync's staging folder), never into the backup folder, which a cloud client uploads.

A file that does not hold what the manifest records, or that cannot be decrypted, is left as it is and
named; the rest go on. A file that cannot be read now (an OSError: a cloud client holding it) stops the
rekey with that error, for the sync to fail as it would on any busy file and be retried: the chunks
committed so far stay, and the manifest keeps saying a rekey is under way until the next sync finishes it.
Runs on the worker thread (or the command line's).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from app.backup import intent
from app.backup import manifest as mf
from app.backup import untrusted as u
from app.backup.aside import DAMAGED
from app.backup.guard import VERSIONS
from app.backup.progress import Report, Step, unreported
from app.crypt.age import MAGIC, NoKey, WrongKey, file_is_sealed, is_sealed
from app.crypt.seal import Seal, seal_file
from app.errors import BackupDamaged, CryptError, FailureKind, SyncFailed
from app.fsutil import PRIVATE_FILE, make_private_dirs, sha256_file, write_back

logger = logging.getLogger(__name__)

STAMP = "rekey"  # the stamp of a rekey's intent: a sync that finds one finishes the rekey first
WORK = ".rekey"  # the temp files of a chunk, in the machine folder (a rename away from their place)
CHUNK_FILES = 200
CHUNK_BYTES = 64 << 20
IN_MEMORY = 64 << 20  # larger files (snapshots) are converted a chunk at a time through a temp file
MAX_FILE = u.MAX_FILE_BYTES
_UNINDEXED = (f"{DAMAGED}/", f"{VERSIONS}/")  # no index lists these: no intent either


@dataclass(frozen=True)
class Rekeyed:
    """What a rekey did: files rewritten, and those left as they were (with why)."""

    files: int = 0
    left: tuple[str, ...] = ()


@dataclass(frozen=True)
class _New:
    """A file's new form: its size and sha256, and the temp file holding it (None: the file itself
    holds it already, as an interrupted chunk left it)."""

    size: int
    sha256: str
    tmp: Path | None = None


@dataclass(frozen=True)
class _File:
    """One file to convert: its path, what the manifest records for it (None: a version, or set aside)
    and its place in the fixed order (``key``: the manifest's progress mark)."""

    key: str
    rel: str
    want: tuple[int, str] | None
    shard: str = ""  # a legacy file's index shard


def due(man: mf.Manifest, seal: Seal) -> bool:
    """Whether the folder's files are not (all) in the form this install writes."""
    enc = man.encryption
    return enc.rekey_to is not None or enc.recipients != seal.recipients


def rekey(
    machine_dir: Path,
    man: mf.Manifest,
    store: mf.ManifestStore,
    seal: Seal,
    *,
    scratch: Path,
    cancel: threading.Event | None = None,
    report: Report = unreported,
    pending: dict[str, tuple[tuple[int, str], ...]] | None = None,
) -> Rekeyed:
    """Bring every file of ``machine_dir`` to the form ``seal`` writes (see the module's docstring).
    ``scratch``: a private folder outside the backup folder for a large file's decrypted form.
    ``pending``: the writes of the intent an interrupted rekey left (its chunk's files may hold them)."""
    target = seal.recipients
    if not due(man, seal):
        return Rekeyed()
    if man.encryption.rekey_to != target:  # begin (or turn toward a new target): both forms are read
        man.encryption = mf.Encryption(man.encryption.recipients, rekey_to=target)
        store.save(machine_dir, man, ())
    work = machine_dir / WORK
    shutil.rmtree(work, ignore_errors=True)
    make_private_dirs(work)
    shutil.rmtree(scratch, ignore_errors=True)  # a decrypted file a crash left
    make_private_dirs(scratch)
    pending = pending or {}
    todo = [f for f in sorted(_files(machine_dir, man), key=lambda f: f.key) if f.key > man.encryption.done]
    _probe(machine_dir, todo, seal)
    left: list[str] = []
    done = 0
    for chunk in _chunks(todo):
        if cancel is not None and cancel.is_set():
            raise SyncFailed("the sync was cancelled (the next one goes on re-encrypting)", FailureKind.FATAL)
        report(Step.ENCRYPTING, done, len(todo))
        converted = _Chunk(machine_dir, work, seal, pending, left, scratch=scratch).run(chunk)
        _commit(machine_dir, man, store=store, seal=seal, converted=converted, chunk=chunk)
        done += len(chunk)
    report(Step.ENCRYPTING, len(todo), len(todo))
    man.encryption = mf.Encryption(target)
    store.save(machine_dir, man, ())
    _shards_rewritten(machine_dir, man)
    shutil.rmtree(work, ignore_errors=True)
    if left:
        logger.warning("re-encryption left %d file(s) as they were: %s", len(left), "; ".join(left[:5]))
    return Rekeyed(done - len(left), tuple(left))


def _probe(machine_dir: Path, todo: list[_File], seal: Seal, tries: int = 3) -> None:
    """Before any file is rewritten: this install's keys open the folder's encrypted files (the first
    few found); WrongKey (or NoKey) when none of them opens, so nothing is half converted for nothing."""
    failed: CryptError | None = None
    for f in todo:
        try:
            if not file_is_sealed(machine_dir / f.rel):
                continue
            seal.check(machine_dir / f.rel)
            return
        except (NoKey, WrongKey) as exc:
            failed = exc
        except (CryptError, OSError):
            pass  # damaged or gone: that file is named later; another one tells about the keys
        tries -= 1
        if not tries:
            break
    if failed is not None:
        raise failed


def _files(machine_dir: Path, man: mf.Manifest) -> Iterator[_File]:
    """Every file to convert, with its order key: sessions and legacy files by index shard (a chunk
    then changes one or two shards), snapshots, then what no index lists."""
    for entry in man.sessions.values():
        key = f"1/{mf.session_shard_of(_sid(entry.path))}/{entry.path}"
        yield _File(key, entry.path, (entry.size, entry.sha256))
    for rel, fentry in man.files.items():
        yield _File(f"2/{rel}", rel, (fentry.size, fentry.sha256))
    for shard in mf.all_shards():
        for rel, fentry in mf.load_shard(machine_dir, man, shard).items():
            yield _File(f"3/{shard}/{rel}", rel, (fentry.size, fentry.sha256), shard)
    for folder in (DAMAGED, VERSIONS):
        for rel in _walk(machine_dir, folder):
            yield _File(f"4/{rel}", rel, None)


def _sid(rel: str) -> str:
    return rel.rsplit("/", 1)[-1].removesuffix(".json")


def _walk(machine_dir: Path, folder: str) -> Iterator[str]:
    """The regular files under ``folder`` (relative to the machine folder), no link followed."""
    stack = [folder]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(machine_dir / rel) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(f"{rel}/{entry.name}")
            elif entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                yield f"{rel}/{entry.name}"


def _chunks(files: list[_File]) -> Iterator[list[_File]]:
    chunk: list[_File] = []
    size = 0
    for f in files:
        if chunk and (len(chunk) >= CHUNK_FILES or size >= CHUNK_BYTES or f.shard != chunk[-1].shard):
            yield chunk
            chunk, size = [], 0
        chunk.append(f)
        size += f.want[0] if f.want else 0
    if chunk:
        yield chunk


class _Chunk:
    """Converts one chunk: new contents under temp names, the intent, then the renames."""

    def __init__(
        self,
        machine_dir: Path,
        work: Path,
        seal: Seal,
        pending: dict[str, tuple[tuple[int, str], ...]],
        left: list[str],
        *,
        scratch: Path,
    ) -> None:
        self.machine_dir = machine_dir
        self.work = work
        self.scratch = scratch
        self.seal = seal
        self.pending = pending
        self.left = left

    def run(self, chunk: list[_File]) -> dict[str, tuple[int, str]]:
        """rel -> (size, sha256) of each file that holds its new form now."""
        made: dict[str, _New] = {}
        for n, f in enumerate(chunk):
            try:  # an OSError (a file busy now) goes up: the sync fails, to be retried, the rekey pending
                new = self._convert(f, self.work / f"{n}.tmp")
            except (CryptError, BackupDamaged) as exc:
                self.left.append(f"{f.rel}: {exc}")
                continue
            if new is not None:
                made[f.rel] = new
        temps = {rel: new.tmp for rel, new in made.items() if new.tmp is not None}
        write_back(self.machine_dir, list(temps.values()))
        indexed: dict[str, tuple[tuple[int, str], ...]] = {
            rel: ((new.size, new.sha256),) for rel, new in made.items() if not rel.startswith(_UNINDEXED)
        }
        if indexed:  # what the files may hold until the commit
            intent.write(self.machine_dir, intent.Intent(STAMP, indexed))
        for rel, tmp in temps.items():
            os.replace(tmp, self.machine_dir / rel)
        write_back(self.machine_dir, [self.machine_dir / rel for rel in temps])
        return {rel: (new.size, new.sha256) for rel, new in made.items()}

    def _convert(self, f: _File, tmp: Path) -> _New | None:
        """The file's new form (written to ``tmp``); None when it is plain and stays plain. Raises when
        it must be left as it is."""
        path = u.regular_file(self.machine_dir, f.rel)
        if path is None:
            raise BackupDamaged("missing")
        size = path.stat().st_size
        if size > MAX_FILE:
            raise BackupDamaged(f"{size:,} bytes is larger than any file a sync writes")
        if size > IN_MEMORY:
            return self._convert_large(f, path, tmp)
        data = _read(path, size)
        done = self._already(f, (len(data), hashlib.sha256(data).hexdigest()))
        if done is not None:
            return done
        if not is_sealed(data) and not self.seal.on:
            return None  # plain, and to stay plain
        plain = self.seal.open(data, f.rel) if is_sealed(data) else data
        out = self.seal.seal(plain)
        _write(tmp, out)
        return _New(len(out), hashlib.sha256(out).hexdigest(), tmp)

    def _already(self, f: _File, content: tuple[int, str]) -> _New | None:
        """The file's new form when an interrupted chunk left it so; None when it holds what the manifest
        records (or is listed by none); BackupDamaged when it holds anything else."""
        if f.want is None or content == f.want:
            return None
        if content in self.pending.get(f.rel, ()):
            return _New(*content)
        raise BackupDamaged("does not hold what the manifest records (damaged or changed)")

    def _convert_large(self, f: _File, path: Path, tmp: Path) -> _New | None:
        """As :meth:`_convert`, a chunk at a time (a snapshot of a large database)."""
        done = self._already(f, (path.stat().st_size, sha256_file(path)))
        if done is not None:
            return done
        with open(path, "rb") as fh:
            sealed = is_sealed(fh.read(len(MAGIC)))
        if not sealed and not self.seal.on:
            return None
        plain = self.scratch / "large.plain"  # on this computer: the backup folder is uploaded as it is
        try:
            with open(path, "rb") as src, _private(plain) as out:
                self.seal.open_into(src, out, f.rel)
            with _private(tmp) as out:
                size, digest = seal_file(self.seal, plain, out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                plain.unlink()
        return _New(size, digest, tmp)


def _commit(
    machine_dir: Path,
    man: mf.Manifest,
    *,
    store: mf.ManifestStore,
    seal: Seal,
    converted: dict[str, tuple[int, str]],
    chunk: list[_File],
) -> None:
    """One manifest commit for a chunk: the new sizes and digests, the titles resealed, the progress."""
    changed: list[str] = []
    storage: dict[str, dict[str, mf.FileEntry]] = {}
    for f in chunk:
        new = converted.get(f.rel)
        if new is None or f.want is None:
            continue
        root = f.rel.split("/", 1)[0]
        if root == "sessions":
            sid = _sid(f.rel)
            entry = man.sessions[sid]
            man.sessions[sid] = replace(
                entry,
                size=new[0],
                sha256=new[1],
                title=_reseal(seal, entry.title, f"the title of {sid}"),
                directory=_reseal(seal, entry.directory, f"the folder of {sid}"),
            )
            changed.append(sid)
        elif root == "snapshots":
            man.files[f.rel] = replace(man.files[f.rel], size=new[0], sha256=new[1])
        else:
            entries = storage.get(f.shard)
            if entries is None:
                entries = storage[f.shard] = mf.load_shard(machine_dir, man, f.shard)
            old = entries[f.rel]
            entries[f.rel] = mf.FileEntry(new[0], new[1], old.mtime_ns)
            man.storage_bytes += new[0] - old.size
    man.encryption = replace(man.encryption, done=chunk[-1].key)
    store.save(machine_dir, man, changed, storage, checked=storage.keys())
    intent.clear(machine_dir)


def _reseal(seal: Seal, value: str, what: str) -> str:
    try:
        return seal.seal_text(seal.open_text(value, what))
    except CryptError:
        return value  # sealed to keys this install lacks: left as it is


def _shards_rewritten(machine_dir: Path, man: mf.Manifest) -> None:
    """Write every session shard whole (their entries now hold the new titles; until now they may sit in
    the manifest's delta over shards that still hold the old ones), then commit again so the shards
    they replace, named by the manifest before, are removed as well."""
    mf.save(machine_dir, man)
    mf.save(machine_dir, man)


def _read(path: Path, size: int) -> bytes:
    """The bytes of ``path`` (a regular file of ``size`` bytes, no link followed). Unlike
    ``untrusted.read_capped`` an OSError is not called damage: a busy file is read again next time."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(size + 1)
    if len(data) > IN_MEMORY:
        raise BackupDamaged(f"grew past {IN_MEMORY:,} bytes while it was read")
    return data


def _write(path: Path, data: bytes) -> None:
    with _private(path) as fh:
        fh.write(data)


def _private(path: Path) -> contextlib.AbstractContextManager:  # type: ignore[type-arg]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), PRIVATE_FILE)
    return os.fdopen(fd, "wb")
