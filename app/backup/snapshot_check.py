"""The snapshots of a machine folder, read as hostile input: listed by name, decompressed into a private
temp file with a cap on their size, and checked by ``PRAGMA integrity_check`` before anything reads them.

Everything that is wrong raises :class:`~app.errors.BackupDamaged` with one line naming the file (or
:class:`NoRoomToCheck` when this computer's disk, not the snapshot, is what stops the check). Runs on the
caller's thread. :mod:`app.backup.backup_reader` offers these names too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.backup.untrusted import opened
from app.backup.untrusted import short as _short
from app.crypt.age import MAGIC, NoKey, is_sealed
from app.crypt.seal import PLAIN, Seal
from app.errors import UNLOCK_HINT, BackupDamaged, CryptError, KeyMissing
from app.fsutil import make_private_dirs
from app.opencode.snapshot import SNAPSHOT_SUFFIX, parse_snapshot_name


@dataclass(frozen=True)
class SnapshotRef:
    """A snapshot file of the machine folder (not yet decompressed or checked)."""

    path: Path
    label: str
    stamp: str


def snapshots(machine_dir: Path) -> list[SnapshotRef]:
    """The machine folder's snapshots, oldest first (by the UTC stamp in their names)."""
    folder = machine_dir / "snapshots"
    if not folder.is_dir():
        return []
    refs = []
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        parsed = parse_snapshot_name(entry.name)
        if parsed is not None and entry.is_file(follow_symlinks=False):
            refs.append(SnapshotRef(Path(entry.path), parsed[0], parsed[1]))
    return sorted(refs, key=lambda r: (r.stamp, r.label))


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
def checked_snapshot(
    ref: SnapshotRef, work_dir: Path, raw_size: int | None = None, seal: Seal = PLAIN
) -> Iterator[Path]:
    """Decompress a snapshot (decrypted first with ``seal`` when it is encrypted) into a private temp
    file, check ``integrity_check``; yield its path.

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
            src = _opened_file(seal, ref.path, Path(tmp) / "snapshot.zst")
            _decompress_capped(zstandard, src, out, cap, why, name=ref.path.name)
            conn = sqlite3.connect(out.as_uri() + "?mode=ro", uri=True)
            try:
                conn.execute("PRAGMA trusted_schema=OFF")
                result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                conn.close()
        except (BackupDamaged, KeyMissing):
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


def _opened_file(seal: Seal, path: Path, plain: Path) -> Path:
    """``path`` itself when it is not encrypted (and may not be), else its content decrypted into
    ``plain`` (a private temp file: age's output is never longer than its input)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    with os.fdopen(os.open(path, flags), "rb") as fh:
        head = fh.read(len(MAGIC))
        if not is_sealed(head):  # read from the fd it is decrypted from (not age.file_is_sealed: no race)
            opened(seal, head, path)  # refused when the folder is wholly encrypted
            return path
        fh.seek(0)
        try:
            with open(plain, "wb") as out:
                seal.open_into(fh, out, path.name)
        except NoKey as exc:
            raise KeyMissing(f"{exc}; {UNLOCK_HINT}") from None
        except CryptError as exc:
            raise BackupDamaged(f"refusing {exc}") from None
    return plain


def _decompress_capped(zstandard: Any, src: Path, out: Path, cap: int, why: str, *, name: str) -> None:
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
                declared = _declared_size(name, chunk)
                if declared < cap:
                    cap, why = declared, "the size its own header declares"
            total += len(chunk)
            if total > cap:
                refused = NoRoomToCheck if why == FREE_SPACE else BackupDamaged
                raise refused(f"refusing snapshot {name}: it expands to more than {cap:,} bytes ({why})")
            dst.write(chunk)
    if declared is None:  # a torn stream yields nothing, and SQLite calls an empty file a sound database
        raise BackupDamaged(f"refusing snapshot {name}: it does not hold an SQLite database")


def _declared_size(name: str, head: bytes) -> int:
    """The database size its header declares (page size x page count); refuses a non-SQLite stream."""
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        raise BackupDamaged(f"refusing snapshot {name}: it does not hold an SQLite database")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid = head[92:96] == head[24:28]  # "version-valid-for" equals the change counter
    return page_size * pages if valid and pages else 1 << 62
