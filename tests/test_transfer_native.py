"""The Python engine on the real file system, and the OSError -> FailureKind table."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import FailureKind
from app.transfer import CANCELLED, NOT_REGULAR, VANISHED, CopyJob
from app.transfer.classify import kind_for_errno, kind_for_oserror, worst
from app.transfer.native import NativeEngine
from tests.files import tree

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and special files")

OLD_MTIME_NS = 1_000_000_000_123_456_789  # 2001-09-09, with a sub-second part


def make_source(root: Path) -> dict[str, bytes]:
    """A small opencode-like tree with 0644 files and 0755 folders; returns path -> content."""
    files = {
        "storage/session/ses_1.json": b'{"id": "ses_1"}',
        "storage/message/ses_1/msg_1.json": b'{"text": "hello"}' * 100,
        "storage/message/ses_1/name with spaces é.json": b"\x00\x01binary\xff",
        "storage/part/msg_1/-leading-dash.json": b"dash",
        "opencode.db": os.urandom(300_000),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)
        os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    (root / "storage/session/unlisted.json").write_bytes(b"not listed")
    for folder in root.rglob("*"):
        if folder.is_dir():
            folder.chmod(0o755)
    return files


@pytest.fixture
def chattr() -> Iterator[list[Path]]:
    """Paths made immutable with ``chattr +i`` (which even root cannot write); undone afterwards."""
    frozen: list[Path] = []
    yield frozen
    for path in frozen:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def freeze(path: Path, frozen: list[Path]) -> None:
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {done.stderr.decode().strip()}")
    frozen.append(path)


def run_copy(src: Path, dst: Path, paths: list[str], cancel: threading.Event | None = None):  # type: ignore[no-untyped-def]
    return NativeEngine().copy(CopyJob(src, dst, tuple(paths)), cancel or threading.Event())


def test_copies_listed_files_byte_for_byte_with_mtimes(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    files = make_source(src)
    result = run_copy(src, dst, list(files))
    assert result.ok and sorted(result.copied) == sorted(files)
    assert tree(dst) == files  # also proves the unlisted file was not copied
    for rel in files:
        assert (dst / rel).stat().st_mtime_ns == OLD_MTIME_NS
    assert not [p for p in dst.rglob("*") if ".tmp-" in p.name]


def test_a_temp_file_a_crashed_copy_left_under_this_pid_is_replaced_not_a_failure(
    roots: tuple[Path, Path],
) -> None:
    src, dst = roots
    files = make_source(src)
    rel = sorted(files)[0]
    leftover = (dst / rel).with_name(f".{Path(rel).name}.tmp-{os.getpid()}")
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half a file from a crash")
    result = run_copy(src, dst, [rel])
    assert result.ok and result.copied == (rel,)
    assert (dst / rel).read_bytes() == files[rel] and not leftover.exists()


@posix_only
def test_new_files_are_0600_and_folders_0700(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    files = make_source(src)
    old_umask = os.umask(0o022)
    try:
        run_copy(src, dst, list(files))
    finally:
        os.umask(old_umask)
    for path in dst.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


def test_replaces_an_existing_file_by_rename_not_in_place(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    (src / "s.json").write_bytes(b"new content")
    (dst / "s.json").write_bytes(b"old content")
    os.link(dst / "s.json", dst / "reader-view")  # what a reader holding the old file sees
    result = run_copy(src, dst, ["s.json"])
    assert result.ok
    assert (dst / "s.json").read_bytes() == b"new content"
    assert (dst / "reader-view").read_bytes() == b"old content"


def test_vanished_source_file_is_reported_but_not_a_failure(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    (src / "here.json").write_bytes(b"x")
    result = run_copy(src, dst, ["gone.json", "here.json", "gone-folder/x.json"])
    assert result.kind is None
    assert result.failed == {"gone.json": VANISHED, "gone-folder/x.json": VANISHED}
    assert result.copied == ("here.json",)
    assert tree(dst) == {"here.json": b"x"}


@posix_only
def test_symlinks_and_fifos_are_not_followed_or_read(roots: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = roots
    secret = tmp_path / "secret"
    secret.write_bytes(b"outside opencode")
    (src / "link.json").symlink_to(secret)
    os.mkfifo(src / "pipe")
    result = run_copy(src, dst, ["link.json", "pipe"])
    assert result.kind is None
    assert result.failed == {"link.json": NOT_REGULAR, "pipe": NOT_REGULAR}
    assert tree(dst) == {}


def test_missing_destination_root_is_dest_missing_and_not_created(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    (src / "a.json").write_bytes(b"a")
    result = run_copy(src, dst / "not-mounted", ["a.json"])
    assert result.kind is FailureKind.DEST_MISSING and result.kind.retryable
    assert result.copied == () and set(result.failed) == {"a.json"}
    assert not (dst / "not-mounted").exists()


def test_missing_source_root_is_source_missing(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    result = run_copy(src / "nope", dst, ["a.json"])
    assert result.kind is FailureKind.SOURCE_MISSING
    assert tree(dst) == {}


@posix_only
def test_unwritable_folder_is_locked_and_other_files_still_copy(
    roots: tuple[Path, Path], chattr: list[Path]
) -> None:
    src, dst = roots
    for rel in ("busy/a.json", "busy/b.json", "free/c.json"):
        (src / rel).parent.mkdir(exist_ok=True)
        (src / rel).write_bytes(rel.encode())
    (dst / "busy").mkdir()
    freeze(dst / "busy", chattr)
    result = run_copy(src, dst, ["busy/a.json", "busy/b.json", "free/c.json"])
    assert result.kind is FailureKind.LOCKED
    assert set(result.failed) == {"busy/a.json", "busy/b.json"}
    assert result.copied == ("free/c.json",)
    assert tree(dst) == {"free/c.json": b"free/c.json"}


def test_cancel_before_start_copies_nothing(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    make_source(src)
    cancel = threading.Event()
    cancel.set()
    result = run_copy(src, dst, ["opencode.db", "storage/session/ses_1.json"], cancel)
    assert (result.kind, result.detail) == (FailureKind.FATAL, CANCELLED)
    assert result.failed == {"opencode.db": CANCELLED, "storage/session/ses_1.json": CANCELLED}
    assert tree(dst) == {}


class _CancelAfter(threading.Event):
    """An event that becomes set after ``checks`` calls of ``is_set`` (no timing involved)."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self._left = checks

    def is_set(self) -> bool:
        self._left -= 1
        return self._left < 0 or super().is_set()


def test_cancel_between_files_keeps_what_is_done_and_leaves_no_temp_file(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    (src / "first.json").write_bytes(b"1")
    (src / "big.bin").write_bytes(os.urandom(3 << 20))  # three chunks: cancel lands inside it
    (src / "last.json").write_bytes(b"3")
    result = run_copy(src, dst, ["first.json", "big.bin", "last.json"], _CancelAfter(3))
    assert (result.kind, result.detail) == (FailureKind.FATAL, CANCELLED)
    assert result.copied == ("first.json",)
    assert result.failed == {"big.bin": CANCELLED, "last.json": CANCELLED}
    assert tree(dst) == {"first.json": b"1"}  # no partial big.bin, no temp file


@posix_only
def test_full_disk_is_fatal_and_stops(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "small"
    src.mkdir()
    dst.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(dst)], check=False).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        (src / "big.bin").write_bytes(os.urandom(200_000))
        (src / "after.json").write_bytes(b"x")
        result = run_copy(src, dst, ["big.bin", "after.json"])
        assert result.kind is FailureKind.FATAL and not result.kind.retryable
        assert set(result.failed) == {"big.bin", "after.json"}
        assert list(dst.iterdir()) == []  # the temp file was removed
    finally:
        subprocess.run(["umount", str(dst)], check=True)


# --- classify.py --------------------------------------------------------------------------

_TABLE = [
    ("EBUSY", True, FailureKind.LOCKED),
    ("EACCES", True, FailureKind.LOCKED),
    ("EPERM", True, FailureKind.LOCKED),
    ("EDEADLK", True, FailureKind.LOCKED),
    ("ETXTBSY", True, FailureKind.LOCKED),
    ("EAGAIN", True, FailureKind.LOCKED),
    ("ENOENT", True, FailureKind.DEST_MISSING),
    ("ENOTDIR", True, FailureKind.DEST_MISSING),
    ("ENODEV", True, FailureKind.DEST_MISSING),
    ("ENXIO", True, FailureKind.DEST_MISSING),
    ("ESTALE", True, FailureKind.DEST_MISSING),
    ("ENOTCONN", True, FailureKind.DEST_MISSING),
    ("ENOENT", False, FailureKind.SOURCE_MISSING),
    ("EACCES", False, FailureKind.LOCKED),
    ("ENOSPC", True, FailureKind.FATAL),
    ("EDQUOT", True, FailureKind.FATAL),
    ("EROFS", True, FailureKind.FATAL),
    ("EIO", True, FailureKind.FATAL),
    ("EINVAL", True, FailureKind.FATAL),
]


@pytest.mark.parametrize(("name", "on_destination", "kind"), _TABLE)
def test_oserror_table(name: str, on_destination: bool, kind: FailureKind) -> None:
    code = getattr(errno, name, None)
    if code is None:
        pytest.skip(f"{name} does not exist on this platform")
    exc = OSError(code, os.strerror(code))
    assert kind_for_oserror(exc, on_destination=on_destination) is kind


@pytest.mark.parametrize(
    ("winerror", "kind"),
    [
        (32, FailureKind.LOCKED),
        (33, FailureKind.LOCKED),
        (21, FailureKind.DEST_MISSING),
        (5, FailureKind.LOCKED),
    ],
)
def test_windows_error_codes(winerror: int, kind: FailureKind) -> None:
    # On Windows a sharing violation arrives as PermissionError(EACCES) with winerror 32.
    exc = PermissionError(errno.EACCES, "The process cannot access the file")
    exc.winerror = winerror  # type: ignore[attr-defined]
    assert kind_for_oserror(exc) is kind
    assert kind_for_errno(None, winerror=112) is FailureKind.FATAL


def test_worst_kind_decides() -> None:
    assert worst([]) is None
    assert worst([None, FailureKind.LOCKED]) is FailureKind.LOCKED
    assert worst([FailureKind.LOCKED, FailureKind.DEST_MISSING]) is FailureKind.DEST_MISSING
    assert worst([FailureKind.DEST_MISSING, FailureKind.FATAL, FailureKind.LOCKED]) is FailureKind.FATAL
