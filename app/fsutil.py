"""Small file-system helpers shared by the engine: atomic writes and private permissions."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO, TypeVar

from app.host import HOST

T = TypeVar("T")

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_POSIX = HOST.posix
# macOS fcntl commands: fsync there leaves the data in the drive's own cache, which may write it in any
# order (a laptop whose battery dies is a power cut)
F_FULLFSYNC = 51  # flush the drive's cache: what was written is on the disk
F_BARRIERFSYNC = 85  # writes before it reach the disk before writes after it (macOS 10.15+)


def flush(fd: int, *, commit: bool = False) -> None:
    """fsync ``fd``. On macOS each flush is a barrier (what was written before it reaches the disk
    first: a commit never lands before the data it names) and a ``commit`` flushes the drive's cache;
    where the file system refuses either command, fsync."""
    if HOST.flush == "barrier":
        flush_darwin(fd, commit, importlib.import_module("fcntl").fcntl)  # POSIX only; loaded where used
    else:
        os.fsync(fd)


def flush_darwin(fd: int, commit: bool, fcntl_call: Callable[[int, int], object]) -> None:
    """:func:`flush` on macOS, given ``fcntl.fcntl`` (a parameter so that it is tested everywhere)."""
    try:
        fcntl_call(fd, F_FULLFSYNC if commit else F_BARRIERFSYNC)
    except OSError:  # not supported here (an older macOS, a network or FAT volume)
        os.fsync(fd)


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and missing parents; on Unix the folders it creates are 0700.

    Raises NotADirectoryError when a file stands where a folder must be.
    """
    if path.is_dir():
        return
    if not path.parent.is_dir():
        make_private_dirs(path.parent)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=PRIVATE_DIR)
        if _POSIX:
            os.chmod(path, PRIVATE_DIR)  # mkdir's mode is filtered by the umask
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(path))


@contextlib.contextmanager
def atomic_writer(path: Path, *, fsync: bool = True, commit: bool = False) -> Iterator[BinaryIO]:
    """Write ``path`` through a temp file in the same folder, renamed into place on success.

    A reader never sees half a file; on an exception the temp file is removed. ``commit``: the file is
    a commit point (see :func:`flush`).
    """
    make_private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if fsync:
                flush(fh.fileno(), commit=commit)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True, commit: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically (0600 on Unix)."""
    with atomic_writer(path, fsync=fsync, commit=commit) as fh:
        fh.write(data)


def atomic_create(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data``, or raise FileExistsError when it exists; a reader never sees
    it half written. The data is written and flushed under a temp name (unique to this thread: two
    threads may race here), then hard-linked into place: a link, unlike a rename, refuses to replace.
    Where the file system has no hard links (FAT, some cloud drives), an exclusive create and write."""
    make_private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{threading.get_ident()}")
    try:
        _write_new(tmp, data, os.O_TRUNC)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # no hard links here
            _write_new(path, data, os.O_EXCL)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | mode | getattr(os, "O_BINARY", 0), PRIVATE_FILE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        flush(fh.fileno())


def over_leftover(path: Path, make: Callable[[], T]) -> T:
    """``make()``, which creates ``path`` and refuses one that exists; when a crashed run left one there
    (a temp name of this very pid, a version of a retried sync), it is removed and ``make()`` runs again.
    Looking first cost a system call per file on every sync for a leftover that is nearly never there."""
    try:
        return make()
    except FileExistsError:
        os.unlink(path)
        return make()


def keep_copy(src: Path, target: Path) -> None:
    """Put ``src``'s content at ``target`` without touching ``src``: a hard link (a symlink is linked
    itself, never followed), or a copy through a temp name where the folder cannot link (some cloud
    drives, FAT). A leftover ``target`` of a crashed run is replaced."""
    try:
        over_leftover(target, partial(os.link, src, target, follow_symlinks=False))
        return
    except OSError:
        pass  # no hard links here: copy it
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file. Never call this on opencode's database files (it would drop SQLite's locks)."""
    return _sha256(path)[0]


Signature = tuple[int, int, int, int]
"""A file's :func:`stat_signature`."""


def stat_signature(path: Path) -> Signature:
    """What changes when ``path`` is written or replaced: its device, inode, size and modification time
    (an atomic rewrite of the same size within the clock's tick has a new inode); zeros when it is not
    there. One stat: cheaper than reading the file, for a cache that must notice a change."""
    try:
        st = path.stat()
    except OSError:
        return (0, 0, 0, 0)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


Content = tuple[int, str]
"""A file's size in bytes and hex sha256: what the manifest records for it."""


def content_of(path: Path, size: int | None = None) -> Content | None:
    """``path``'s :data:`Content`, None when there is no regular file there; raises OSError when it cannot
    be read (another process holds it). When its size is not ``size`` the file is not read and the digest
    is left empty: it differs from that content either way."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return info.st_size, sha256_file(path) if size is None or info.st_size == size else ""


def sha256_unless_junk(path: Path, *, junk_json: bool) -> str | None:
    """:func:`sha256_file`, read once; None for a ``junk_json`` file that is empty or only NUL bytes and
    white space (a torn write of a legacy JSON file, seen in the wild)."""
    digest, junk = _sha256(path)
    return None if junk_json and junk else digest


def _sha256(path: Path) -> tuple[str, bool]:
    """(hex sha256, whether every byte is NUL or white space) of a file, in one read."""
    digest = hashlib.sha256()
    junk = True
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            junk = junk and not block.strip(b"\x00 \t\r\n")
    return digest.hexdigest(), junk


def fsync_path(path: Path, *, commit: bool = False) -> None:
    """:func:`flush` a file by its name (never through a symlink); Windows needs it opened for writing."""
    flags = (os.O_RDWR | getattr(os, "O_BINARY", 0)) if HOST.fsync_needs_write else os.O_RDONLY
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))
    try:
        flush(fd, commit=commit)
    finally:
        os.close(fd)


SYNC_ONE_BY_ONE = 64  # files fsynced one by one; more are written back by one syncfs where there is one


def write_back(root: Path, paths: list[Path]) -> None:
    """Make the data of ``paths`` (written without fsync, under ``root``) durable: fsync each, or one
    syncfs of ``root``'s file system for many. A file another program holds on Windows (the cloud
    client) is skipped: the OS writes it back."""
    if len(paths) > SYNC_ONE_BY_ONE and sync_filesystem(root):
        return
    for path in paths:
        try:
            fsync_path(path)
        except PermissionError:
            continue


def sync_filesystem(path: Path) -> bool:
    """Write back every cached change of the file system that holds ``path`` in one call (Linux's
    ``syncfs``): what thousands of fsyncs would do, without a journal commit each. False where there is
    no such call or it failed; then each file must be fsynced."""
    return _syncfs(path) if HOST.syncfs else False


def _syncfs(path: Path) -> bool:
    import ctypes  # noqa: PLC0415 - only for a big copy by an outside engine, on Linux

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return False
    try:
        return bool(ctypes.CDLL(None, use_errno=True).syncfs(fd) == 0)
    finally:
        os.close(fd)
