"""rsync engine: real rsync on the real file system, plus its pure parts on recorded output."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from app.errors import ConfigError, FailureKind
from app.transfer import CANCELLED, CHANGED, NOT_REGULAR, VANISHED, CopyJob, CopyResult, make_engine
from app.transfer.hybrid import SMALL_FILES, SplitEngine
from app.transfer.rsync import RsyncEngine, argv, classify, parse_output, parse_version
from app.transfer.runner import RunResult
from tests.files import tree
from tests.test_transfer_native import OLD_MTIME_NS, chattr, freeze, make_source

__all__ = ["chattr"]  # a fixture used below

needs_rsync = pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")


def rsync_copy(src: Path, dst: Path, paths: Sequence[str], **engine_args: object) -> CopyResult:
    engine = RsyncEngine(**engine_args)  # type: ignore[arg-type]
    return engine.copy(CopyJob(src, dst, tuple(paths)), threading.Event())


# --- recorded `rsync --version` outputs --------------------------------------------------

GNU_3_5_0 = """rsync  version 3.5.0  protocol version 32
Copyright (C) 1996-2026 by Andrew Tridgell, Wayne Davison, and others.
Web site: https://rsync.samba.org/
Capabilities:
    64-bit files, 64-bit inums, 64-bit timestamps, 64-bit long ints,
    socketpairs, symlinks, symtimes, hardlinks, hardlink-specials,
    hardlink-symlinks, IPv6, atimes, batchfiles, inplace, append, ACLs,
    ACL-at, xattrs, optional secluded-args, iconv, prealloc, stop-at,
    no crtimes
"""
GNU_3_2_7 = """rsync  version 3.2.7  protocol version 31
Copyright (C) 1996-2022 by Andrew Tridgell, Wayne Davison, and others.
Web site: https://rsync.samba.org/
Capabilities:
    64-bit files, 64-bit inums, 64-bit timestamps, 64-bit long ints,
    socketpairs, symlinks, symtimes, hardlinks, hardlink-specials,
    hardlink-symlinks, IPv6, atimes, batchfiles, inplace, append, ACLs,
    xattrs, optional protect-args, iconv, no prealloc, stop-at, no crtimes
"""
GNU_3_1_3 = """rsync  version 3.1.3  protocol version 31
Copyright (C) 1996-2018 by Andrew Tridgell, Wayne Davison, and others.
Web site: http://rsync.samba.org/
Capabilities:
    64-bit files, 64-bit inums, 64-bit timestamps, 64-bit long ints,
    socketpairs, hardlinks, symlinks, IPv6, batchfiles, inplace,
    append, ACLs, xattrs, iconv, symtimes, prealloc
"""
APPLE_2_6_9 = """rsync  version 2.6.9  protocol version 29
Copyright (C) 1996-2006 by Andrew Tridgell, Wayne Davison, and others.
<http://rsync.samba.org/>

Capabilities: 64-bit files, socketpairs, hard links, symlinks, batchfiles,
              inplace, IPv6, 64-bit system inums, 64-bit internal inums
"""
OPENRSYNC_MACOS = """openrsync: protocol version 29
rsync version 2.6.9 compatible
"""


@pytest.mark.parametrize(
    ("text", "name", "info", "files_from"),
    [
        (GNU_3_5_0, "rsync", True, True),
        (GNU_3_2_7, "rsync", True, True),
        (GNU_3_1_3, "rsync", True, True),
        ("rsync  version v3.2.3  protocol version 31\n", "rsync", True, True),
        (APPLE_2_6_9, "rsync", False, True),
        (OPENRSYNC_MACOS, "openrsync", False, False),
        ("bash: rsync: command not found\n", "unknown", False, False),
    ],
)
def test_parse_version(text: str, name: str, info: bool, files_from: bool) -> None:
    flavor = parse_version(text)
    assert (flavor.name, flavor.has_info, flavor.has_files_from, flavor.from0) == (
        name,
        info,
        files_from,
        files_from,
    )


# --- the command ---------------------------------------------------------------------------

GNU = parse_version(GNU_3_2_7)


def test_argv_copies_only_listed_files_atomically_without_permissions(tmp_path: Path) -> None:
    job = CopyJob(tmp_path / "src", tmp_path / "dst", ("a",))
    command = argv(job, tmp_path / "list", GNU)
    assert command[0] == "rsync"
    assert {"-t", "--ignore-times", "--from0", "--timeout=120", f"--files-from={tmp_path / 'list'}"} <= set(
        command
    )
    forbidden = {"-a", "-r", "-p", "-R", "--inplace", "--partial", "--append", "--delete", "-l", "-L"}
    assert not forbidden & set(command)
    assert command[-3:] == ["--", f"{tmp_path}/src/", f"{tmp_path}/dst/"]


def test_argv_leaves_out_what_an_old_rsync_lacks(tmp_path: Path) -> None:
    job = CopyJob(tmp_path, tmp_path, ())
    assert not any(arg.startswith("--info") for arg in argv(job, tmp_path / "l", parse_version(APPLE_2_6_9)))
    with pytest.raises(ValueError, match="files-from"):
        argv(job, tmp_path / "l", parse_version(OPENRSYNC_MACOS))


# --- exit codes and messages (recorded from rsync 3.5.0, 3.2.7 and 3.1.3) ---------------------

_EPERM = "Operation not permitted (1)"
_ENOENT = "No such file or directory (2)"
_CLASSIFY = [
    (0, "", None),
    (23, f'rsync: [receiver] mkstemp "/d/a/.f.json.W5HuQs" failed: {_EPERM}', "LOCKED"),
    (
        23,
        'rsync: [generator] recv_generator: mkdir "/d/a/b" failed: Permission denied (13)\n*** Skipping',
        "LOCKED",
    ),
    (23, 'rsync: [receiver] rename "/d/.f.json.hb1ibv" -> "f.json": Device or resource busy (16)', "LOCKED"),
    (23, 'rsync: mkstemp "/d/.x.json.Ab12Cd" failed: Text file busy (26)', "LOCKED"),
    (23, 'rsync: [receiver] open "/d/x" failed: Resource temporarily unavailable (11)', "LOCKED"),
    (23, 'rsync: [sender] send_files failed to open "/s/x": Permission denied (13)', "LOCKED"),
    (
        23,
        'rsync: [receiver] mkstemp "/g/.a.Qx12ab" failed: Transport endpoint is not connected (107)',
        "DEST_MISSING",
    ),
    (23, f'rsync: [receiver] mkstemp "/d/.a.json.Qx12ab" failed: {_ENOENT}', "DEST_MISSING"),
    (23, f'rsync: [sender] link_stat "/s/gone.json" failed: {_ENOENT}', None),
    (23, f'rsync: link_stat "/s/gone.json" failed: {_ENOENT}', None),  # 3.1: no [role] tags
    (23, 'rsync: [receiver] mkstemp "/ro/.big.bin.TXrb2a" failed: Read-only file system (30)', "FATAL"),
    (23, 'rsync: [receiver] close failed on "/d/.a.Xy12ab": Disk quota exceeded (122)', "FATAL"),
    (23, "rsync error: some files/attrs were not transferred (see previous errors) (code 23)", "FATAL"),
    (
        24,
        'file has vanished: "/s/x.json"\nrsync warning: some files vanished (code 24) at main.c(1865)',
        None,
    ),
    (11, 'rsync: [receiver] write failed on "/small/big.bin": No space left on device (28)', "FATAL"),
    (11, f'rsync: [Receiver] mkdir "/mnt/nope/dst" failed: {_ENOENT}', "DEST_MISSING"),
    (3, f'rsync: [Receiver] change_dir#3 "/media/gdrive/backup" failed: {_ENOENT}', "DEST_MISSING"),
    (
        12,
        f'rsync: [receiver] mkstemp "/g/.a.json.Qx12ab" failed: {_ENOENT}\n'
        "rsync: [sender] write error: Broken pipe (32)\n"
        "rsync error: error in rsync protocol data stream (code 12) at io.c(232) [sender=3.2.7]",
        "DEST_MISSING",  # the broken pipe is only the consequence
    ),
    (12, "rsync: connection unexpectedly closed (0 bytes received so far) [sender]", "FATAL"),
    (30, "[receiver] io timeout after 120 seconds -- exiting\nrsync error: timeout (code 30)", "LOCKED"),
    (35, "rsync error: timeout waiting for daemon connection (code 35)", "LOCKED"),
    (20, "rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20) at rsync.c(713)", "FATAL"),
    (1, "rsync: --info=name1: unknown option", "FATAL"),
    (127, "", "FATAL"),
]


@pytest.mark.parametrize(("returncode", "output", "kind"), _CLASSIFY)
def test_classify_table(returncode: int, output: str, kind: str | None) -> None:
    assert classify(returncode, output) is (FailureKind[kind] if kind else None)


def test_messages_are_tied_to_the_listed_paths() -> None:
    job = CopyJob(Path("/b/src"), Path("/b/dst"), ("a/b/f.json", "a/b/g.json", "a/c.json", "é ü.json", "x"))
    output = "\n".join(
        [
            'rsync: [receiver] mkstemp "/b/dst/.\\#303\\#251 \\#303\\#274.json.3xqKaP" failed: '
            "Operation not permitted (1)",
            'rsync: [generator] recv_generator: mkdir "/b/dst/a/b" failed: Operation not permitted (1)',
            'rsync: [sender] link_stat "/b/src/a/c.json" failed: No such file or directory (2)',
            'skipping non-regular file "x"',
            'rsync: [Receiver] change_dir#3 "/b/dst" failed: No such file or directory (2)',
        ]
    )
    issues = parse_output(output, job)
    assert [(issue.paths, issue.kind) for issue in issues] == [
        (("é ü.json",), FailureKind.LOCKED),
        (("a/b/f.json", "a/b/g.json"), FailureKind.LOCKED),
        (("a/c.json",), None),
        (("x",), None),
        (tuple(sorted(job.paths)), FailureKind.DEST_MISSING),  # the root itself: every path
    ]
    assert [issue.reason for issue in issues[2:4]] == [VANISHED, NOT_REGULAR]


# --- the engine with a fake runner replaying recorded output -----------------------------------


class FakeRsync:
    """Replays ``output``/``returncode`` after copying the listed files except ``fail``."""

    def __init__(
        self, returncode: int, output: str, fail: Sequence[str] = (), version: str = GNU_3_2_7
    ) -> None:
        self.returncode, self.output, self.fail, self.version = returncode, output, set(fail), version
        self.calls: list[list[str]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cancel: threading.Event,
        cwd: Path | None = None,
        input: bytes | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunResult:
        self.calls.append(list(argv))
        if argv[-1] == "--version":
            return RunResult(0, self.version, "")
        assert "--files-from=-" in argv and input is not None  # the list comes on stdin
        listed = input
        src, dst = Path(argv[-2]), Path(argv[-1])
        for line in filter(None, listed.decode().split("\0")):
            rel = line.removeprefix("./")
            if rel not in self.fail and (src / rel).is_file():
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, dst / rel)
        return RunResult(self.returncode, "", self.output)


def test_engine_reports_a_busy_file_as_locked_and_the_rest_as_copied(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    for name in ("a.json", "b.json", "c.json"):
        (src / name).write_text(name)
    line = f'rsync: [receiver] rename "{dst}/.b.json.hb1ibv" -> "b.json": Device or resource busy (16)'
    fake = FakeRsync(23, line, fail=["b.json"])
    result = rsync_copy(src, dst, ["a.json", "b.json", "c.json"], runner=fake)
    assert result.kind is FailureKind.LOCKED
    assert result.copied == ("a.json", "c.json")
    assert list(result.failed) == ["b.json"] and "Device or resource busy" in result.failed["b.json"]
    assert fake.calls[0][-1] == "--version"  # the flavor is detected on first use


def test_engine_treats_exit_24_as_vanished_not_failed(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    (src / "a.json").write_text("a")
    fake = FakeRsync(24, f'file has vanished: "{src}/b.json"', fail=["b.json"])
    result = rsync_copy(src, dst, ["a.json", "b.json"], runner=fake, flavor=GNU)
    assert (result.kind, result.copied, result.failed) == (None, ("a.json",), {"b.json": VANISHED})


def test_engine_never_claims_a_file_rsync_did_not_write(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    (src / "a.json").write_text("a")
    (src / "b.json").write_text("b")
    fake = FakeRsync(
        12, "rsync: connection unexpectedly closed (0 bytes received so far) [sender]", fail=["b.json"]
    )
    result = rsync_copy(src, dst, ["a.json", "b.json"], runner=fake, flavor=GNU)
    assert result.kind is FailureKind.FATAL
    assert result.copied == ("a.json",)
    assert result.failed == {"b.json": "not copied (rsync exit 12)"}
    assert "connection unexpectedly closed" in result.detail


def test_engine_reports_a_missing_rsync_as_fatal(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    (src / "a.json").write_text("a")
    result = rsync_copy(src, dst, ["a.json"], flavor=GNU, binary="/nonexistent/rsync")
    assert result.kind is FailureKind.FATAL and "could not run rsync" in result.detail


# --- the factory ---------------------------------------------------------------------------------


@needs_rsync
def test_factory_picks_rsync_here_and_native_for_openrsync(tmp_path: Path) -> None:
    auto = make_engine()
    assert auto.name == "rsync+native"
    assert isinstance(auto, SplitEngine)
    (tmp_path / "big").write_bytes(b"x" * 100)
    (tmp_path / "small").write_bytes(b"x" * 10)
    many = CopyJob(tmp_path, tmp_path, tuple(f"f{i}" for i in range(SMALL_FILES + 1)))
    assert auto.pick(many).name == "rsync"  # a first sync or reconcile: rsync earns its start-up
    assert auto.pick(CopyJob(tmp_path, tmp_path, ("small",))).name == "native"  # one session file
    small_split = SplitEngine(auto.big, auto.small, max_bytes=50)
    assert small_split.pick(CopyJob(tmp_path, tmp_path, ("small", "big"))).name == "rsync"
    assert make_engine("rsync").name == "rsync"
    assert make_engine(runner=FakeRsync(0, "", version=OPENRSYNC_MACOS)).name == "native"
    assert make_engine("rsync", runner=FakeRsync(0, "", version=APPLE_2_6_9)).name == "rsync"
    assert make_engine("native").name == "native"


def test_factory_rejects_unknown_and_unavailable_engines() -> None:
    with pytest.raises(ValueError, match="unknown transfer engine"):
        make_engine("scp")
    with pytest.raises(ConfigError, match="robocopy"):
        make_engine("robocopy")


# --- real rsync on the real file system --------------------------------------------------------


@needs_rsync
def test_copies_listed_files_byte_for_byte_with_mtimes(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    files = make_source(src)
    odd = {"line\nbreak.json": b"newline in name", "#hash;semi.json": b"comment-like"}
    for rel, data in odd.items():
        (src / rel).write_bytes(data)
    result = rsync_copy(src, dst, [*files, *odd])
    assert result.ok, result
    assert sorted(result.copied) == sorted([*files, *odd])
    assert tree(dst) == {**files, **odd}  # also proves the unlisted file was not copied
    for rel in files:
        assert (dst / rel).stat().st_mtime_ns == OLD_MTIME_NS


@needs_rsync
def test_new_files_are_0600_and_folders_0700(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    files = make_source(src)
    old_umask = os.umask(0o022)
    try:
        assert rsync_copy(src, dst, list(files)).ok
    finally:
        os.umask(old_umask)
    for path in dst.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


@needs_rsync
def test_copies_an_unchanged_looking_file_by_rename(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    (src / "s.json").write_bytes(b"new content")
    (dst / "s.json").write_bytes(b"old content")  # same size and mtime: only --ignore-times copies it
    for path in (src / "s.json", dst / "s.json"):
        os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    os.link(dst / "s.json", dst / "reader-view")
    assert rsync_copy(src, dst, ["s.json"]).ok
    assert (dst / "s.json").read_bytes() == b"new content"
    assert (dst / "reader-view").read_bytes() == b"old content"  # replaced by rename, not in place


@needs_rsync
def test_vanished_and_non_regular_sources_are_skipped(roots: tuple[Path, Path], tmp_path: Path) -> None:
    src, dst = roots
    (src / "here.json").write_bytes(b"x")
    (tmp_path / "secret").write_bytes(b"outside")
    (src / "link.json").symlink_to(tmp_path / "secret")
    result = rsync_copy(src, dst, ["here.json", "gone.json", "link.json"])
    assert result.kind is None
    assert result.failed == {"gone.json": VANISHED, "link.json": NOT_REGULAR}
    assert tree(dst) == {"here.json": b"x"}


@needs_rsync
def test_missing_destination_root_is_dest_missing_and_not_created(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    (src / "a.json").write_bytes(b"a")
    result = rsync_copy(src, dst / "not-mounted", ["a.json"])
    assert result.kind is FailureKind.DEST_MISSING
    assert set(result.failed) == {"a.json"}
    assert not (dst / "not-mounted").exists()


@needs_rsync
def test_unwritable_folder_and_file_are_locked(roots: tuple[Path, Path], chattr: list[Path]) -> None:
    src, dst = roots
    names = ["busy/é ü.json", "busy/b.json", "pinned.json", "free.json"]
    for rel in names:
        (src / rel).parent.mkdir(exist_ok=True)
        (src / rel).write_bytes(b"new")
    (dst / "busy").mkdir()
    (dst / "pinned.json").write_bytes(b"old")
    freeze(dst / "busy", chattr)
    freeze(dst / "pinned.json", chattr)
    result = rsync_copy(src, dst, names)
    assert result.kind is FailureKind.LOCKED
    assert set(result.failed) == {"busy/é ü.json", "busy/b.json", "pinned.json"}
    assert result.copied == ("free.json",)
    assert tree(dst) == {"free.json": b"new", "pinned.json": b"old"}


@needs_rsync
def test_full_disk_is_fatal(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "small"
    src.mkdir()
    dst.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(dst)], check=False).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        (src / "big.bin").write_bytes(os.urandom(200_000))
        result = rsync_copy(src, dst, ["big.bin"])
        assert result.kind is FailureKind.FATAL and "No space left" in result.failed["big.bin"]
        assert list(dst.iterdir()) == []
    finally:
        subprocess.run(["umount", str(dst)], check=True)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.02)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@needs_rsync
def test_cancel_stops_a_long_copy_and_leaves_no_partial_file(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    with open(src / "big.bin", "wb") as fh:
        fh.truncate(64 << 20)  # at 100 KiB/s this would take ten minutes
    engine = RsyncEngine(extra_args=("--bwlimit=100",))
    cancel = threading.Event()
    results: list[CopyResult] = []
    worker = threading.Thread(
        target=lambda: results.append(engine.copy(CopyJob(src, dst, ("big.bin",)), cancel))
    )
    worker.start()
    try:
        _wait_for(
            lambda: any(p.name.startswith(".big.bin.") for p in dst.iterdir()), "rsync to write a temp file"
        )
    finally:
        cancel.set()  # also when the wait failed: never leave a ten-minute copy running
        worker.join(timeout=10)

    assert not worker.is_alive(), "cancel did not stop rsync"
    assert (results[0].kind, results[0].detail) == (FailureKind.FATAL, CANCELLED)
    assert results[0].failed == {"big.bin": CANCELLED}
    assert not (dst / "big.bin").exists()
    assert all(p.name.startswith(".big.bin.") for p in dst.iterdir())  # at most rsync's own temp
    _wait_for(lambda: not _processes_mentioning(str(dst)), "rsync processes to exit", timeout=5)


def test_engine_refuses_an_rsync_without_files_from(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    (src / "a.json").write_text("a")
    fake = FakeRsync(0, "", version=OPENRSYNC_MACOS)
    result = rsync_copy(src, dst, ["a.json"], runner=fake)
    assert result.kind is FailureKind.FATAL and "cannot copy a file list" in result.detail
    assert len(fake.calls) == 1  # only --version ran


@needs_rsync
def test_a_long_list_goes_through_stdin(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    rels = [f"storage/part/msg_{i // 100:03d}/prt_{i:05d}_{'p' * 40}.json" for i in range(3000)]  # ~200 KB
    for rel in rels:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(rel.encode())
    result = rsync_copy(src, dst, rels)
    assert result.ok and len(result.copied) == 3000
    assert tree(dst) == {rel: rel.encode() for rel in rels}


@needs_rsync
@pytest.mark.parametrize("name", ["rsync", "native"])
def test_a_source_rewritten_since_the_plan_is_not_counted_under_the_planned_digest(
    roots: tuple[Path, Path], name: str
) -> None:
    """The sync hands each engine the size and sha256 it planned (what the manifest will record). Every
    engine checks its copies against them: rsync after its run (it verifies each transfer against the
    source, not against the plan), the native engine as it writes. A file opencode rewrote since the plan is
    a harmless skip, never counted under the old digest; the next scan plans it again."""
    src, dst = roots
    files = make_source(src)
    planned = {rel: (len(data), hashlib.sha256(data).hexdigest()) for rel, data in files.items()}
    rewritten = "storage/session/ses_1.json"
    (src / rewritten).write_bytes(b'{"id": "ses_1", "title": "renamed"}')
    (dst / "storage/session").mkdir(parents=True)
    (dst / rewritten).write_bytes(b"the backup's copy")
    result = make_engine(name).copy(CopyJob(src, dst, tuple(files), expect=planned), threading.Event())
    assert result.failed == {rewritten: CHANGED} and result.kind is None
    assert sorted(result.copied) == sorted(set(files) - {rewritten})
    if name == "native":  # it checks before the rename; rsync has renamed its copy by then
        assert (dst / rewritten).read_bytes() == b"the backup's copy"
