"""robocopy engine: recorded robocopy output replayed through a fake runner on real folders."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PureWindowsPath

import pytest

from app.errors import FailureKind
from app.transfer import CANCELLED, CHANGED, VANISHED, CopyJob, CopyResult, robocopy
from app.transfer.robocopy import (
    FLAGS,
    INCOMING_PREFIX,
    MAX_COMMAND_CHARS,
    RobocopyEngine,
    argv,
    batches,
    classify,
    parse_errors,
)
from app.transfer.runner import RunResult
from tests.files import tree

FIXTURES = Path(__file__).parent / "fixtures" / "robocopy"


def recorded(name: str, encoding: str = "cp437") -> str:
    """A recorded robocopy output, decoded the way the runner decodes it (the OEM code page: 437 for US
    English, 850 for German and Spanish Windows; CRLF kept)."""
    return (FIXTURES / name).read_bytes().decode(encoding)


class FakeRobocopy:
    """Plays robocopy: copies the named files except ``fail`` into the destination folder
    (creating it, as robocopy does), then returns a recorded output and exit code."""

    def __init__(
        self,
        fixture: str,
        returncode: int,
        fail: Sequence[str] = (),
        cancelled: bool = False,
        encoding: str = "cp437",
    ) -> None:
        self.output = recorded(fixture, encoding)
        self.returncode, self.fail, self.cancelled = returncode, set(fail), cancelled
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
        assert argv[-len(FLAGS) :] == list(FLAGS)
        src, dst, names = Path(argv[1]), Path(argv[2]), argv[3 : -len(FLAGS)]
        assert INCOMING_PREFIX in dst.as_posix(), "robocopy must write into the incoming folder"
        for name in names:
            if name not in self.fail and (src / name).is_file():
                dst.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / name, dst / name)
        return RunResult(self.returncode, self.output, "", cancelled=self.cancelled)


def make_files(src: Path, rels: Sequence[str]) -> dict[str, bytes]:
    files = {rel: f"content of {rel}".encode() for rel in rels}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    return files


def copy(
    roots: tuple[Path, Path], paths: Sequence[str], fake: FakeRobocopy, cancel: bool = False
) -> CopyResult:
    event = threading.Event()
    if cancel:
        event.set()
    return RobocopyEngine(runner=fake).copy(CopyJob(roots[0], roots[1], tuple(paths)), event)


FOLDER = "storage/message/ses_01J9Z"
ABC = [f"{FOLDER}/a.json", f"{FOLDER}/b.json", f"{FOLDER}/c.json"]


# --- the command ---------------------------------------------------------------------------


def test_argv_names_the_folders_then_the_files_then_the_flags() -> None:
    command = argv(Path("C:/src"), Path("G:/dst"), ["a.json", "b c.json"])
    assert command[:5] == ["robocopy", str(Path("C:/src")), str(Path("G:/dst")), "a.json", "b c.json"]
    assert {"/R:2", "/W:2", "/FFT", "/XJ", "/NP", "/NJH", "/NJS", "/NDL", "/BYTES"} <= set(command)
    assert not {"/MIR", "/PURGE", "/MOV", "/MOVE", "/Z", "/S", "/E"} & set(command)


def test_batches_keep_every_command_line_under_the_windows_limit() -> None:
    src = Path("C:/Users/dev/.local/share/opencode/storage/message/" + "s" * 200)
    dst = Path("G:/My Drive/opencode-backup/.incoming-4242/storage/message/" + "s" * 200)
    names = [f"msg_{i:05d} with space {'x' * 40}.json" for i in range(3000)]
    groups = batches(src, dst, names)
    assert len(groups) > 1
    assert [name for group in groups for name in group] == names
    for group in groups:
        assert len(subprocess.list2cmdline(argv(src, dst, group))) <= MAX_COMMAND_CHARS < 32_767


# --- output and exit codes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "returncode", "kind"),
    [
        ("success_3_files.txt", 1, None),
        ("success_3_files.txt", 3, None),  # 1 copied + 2 extra files: still fine
        ("error32_then_success.txt", 1, None),
        ("error32_retry_limit.txt", 8, FailureKind.LOCKED),
        ("error33_lock_violation_partial.txt", 9, FailureKind.LOCKED),
        ("error5_access_denied.txt", 8, FailureKind.LOCKED),
        ("error3_destination_not_found.txt", 16, FailureKind.DEST_MISSING),
        ("error112_disk_full.txt", 8, FailureKind.FATAL),
        ("error2_source_vanished.txt", 9, None),
        ("exit16_invalid_parameter.txt", 16, FailureKind.FATAL),
    ],
)
def test_classify_recorded_outputs(fixture: str, returncode: int, kind: FailureKind | None) -> None:
    assert classify(returncode, recorded(fixture)) is kind


def test_parse_errors_keeps_only_the_last_report_per_file() -> None:
    errors = parse_errors(recorded("error32_retry_limit.txt"))
    assert len(errors) == 1
    (error,) = errors
    assert (error.code, error.action, error.final, error.kind) == (
        32,
        "Copying File",
        True,
        FailureKind.LOCKED,
    )
    assert error.path.endswith("\\b.json") and "being used by another process" in error.message
    (retried,) = parse_errors(recorded("error32_then_success.txt"))
    assert not retried.final  # robocopy retried, and the retry worked


# --- the engine ------------------------------------------------------------------------------


def test_copies_through_the_incoming_folder_and_renames_into_place(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    files = make_files(src, [*ABC, "top.json"])
    (src / f"{FOLDER}/unlisted.json").write_bytes(b"no")
    fake = FakeRobocopy("success_3_files.txt", 1)
    result = copy(roots, ABC, fake)
    assert result.ok and result.copied == tuple(ABC)
    assert tree(dst) == {rel: files[rel] for rel in ABC}  # no unlisted file, no incoming folder left
    assert len(fake.calls) == 1 and fake.calls[0][3:6] == ["a.json", "b.json", "c.json"]


def test_replaces_an_existing_file_atomically(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    make_files(src, ["s.json"])
    (dst / "s.json").write_bytes(b"old")
    (dst / "reader-view").hardlink_to(dst / "s.json")
    assert copy(roots, ["s.json"], FakeRobocopy("success_3_files.txt", 1)).ok
    assert (dst / "s.json").read_bytes() == b"content of s.json"
    assert (dst / "reader-view").read_bytes() == b"old"  # os.replace, not a write into the old file


@pytest.mark.parametrize(
    ("fixture", "returncode", "failing"),
    [
        ("error32_retry_limit.txt", 9, "b.json"),
        ("error33_lock_violation_partial.txt", 9, "b.json"),
        ("error5_access_denied.txt", 9, "a.json"),
    ],
)
def test_a_locked_file_is_reported_and_the_others_land(
    roots: tuple[Path, Path], fixture: str, returncode: int, failing: str
) -> None:
    src, dst = roots
    files = make_files(src, ABC)
    result = copy(roots, ABC, FakeRobocopy(fixture, returncode, fail=[failing]))
    assert result.kind is FailureKind.LOCKED
    assert list(result.failed) == [f"{FOLDER}/{failing}"]
    assert result.failed[f"{FOLDER}/{failing}"].startswith("locked: ERROR")
    assert set(result.copied) == set(ABC) - {f"{FOLDER}/{failing}"}
    assert tree(dst) == {rel: files[rel] for rel in result.copied}


def test_a_retry_that_worked_is_a_success(roots: tuple[Path, Path]) -> None:
    make_files(roots[0], ABC)
    assert copy(roots, ABC, FakeRobocopy("error32_then_success.txt", 1)).ok


def test_a_partial_copy_robocopy_gave_up_on_is_not_moved_into_place(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    make_files(src, ABC)

    class Truncating(FakeRobocopy):
        def __call__(self, argv: Sequence[str], **kwargs: object) -> RunResult:
            result = super().__call__(argv, **kwargs)  # type: ignore[arg-type]
            (Path(argv[2]) / "a.json").write_bytes(b"cut")  # robocopy died mid-file, no error line
            return result

    # The recorded output only names b.json: a.json's short copy must be caught by its size.
    result = copy(roots, ABC, Truncating("error32_retry_limit.txt", 9, fail=["a.json", "b.json"]))
    assert result.failed[f"{FOLDER}/a.json"] == "not copied (robocopy exit 9)"
    assert result.kind is FailureKind.LOCKED and result.copied == (f"{FOLDER}/c.json",)
    assert tree(dst) == {f"{FOLDER}/c.json": b"content of " + FOLDER.encode() + b"/c.json"}


def test_missing_destination_path_is_dest_missing_and_stops(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    make_files(src, [*ABC, "other/x.json"])
    fake = FakeRobocopy("error3_destination_not_found.txt", 16, fail=["a.json", "b.json", "c.json"])
    result = copy(roots, [*ABC, "other/x.json"], fake)
    assert result.kind is FailureKind.DEST_MISSING
    assert result.copied == () and set(result.failed) == {*ABC, "other/x.json"}
    assert len(fake.calls) == 1  # the second folder was not attempted
    assert tree(dst) == {}


def test_missing_destination_root_is_dest_missing_without_running(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    make_files(src, ABC)
    fake = FakeRobocopy("success_3_files.txt", 1)
    result = RobocopyEngine(runner=fake).copy(CopyJob(src, dst / "gone", tuple(ABC)), threading.Event())
    assert result.kind is FailureKind.DEST_MISSING and fake.calls == []
    assert not (dst / "gone").exists()


def test_invalid_parameter_is_fatal(roots: tuple[Path, Path]) -> None:
    make_files(roots[0], ABC)
    result = copy(
        roots, ABC, FakeRobocopy("exit16_invalid_parameter.txt", 16, fail=["a.json", "b.json", "c.json"])
    )
    assert result.kind is FailureKind.FATAL and not result.kind.retryable
    assert set(result.failed) == set(ABC)


def test_disk_full_is_fatal(roots: tuple[Path, Path]) -> None:
    make_files(roots[0], ABC)
    result = copy(roots, ABC, FakeRobocopy("error112_disk_full.txt", 9, fail=["a.json"]))
    assert result.kind is FailureKind.FATAL
    assert "ERROR 112" in result.failed[f"{FOLDER}/a.json"]


def test_a_source_file_that_vanished_is_skipped(roots: tuple[Path, Path]) -> None:
    make_files(roots[0], ABC[:2])
    result = copy(roots, ABC, FakeRobocopy("success_3_files.txt", 1))
    assert result.kind is None and result.failed == {ABC[2]: VANISHED}


def test_cancel(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    make_files(src, [*ABC, "other/x.json"])
    fake = FakeRobocopy("success_3_files.txt", 1, cancelled=True)
    result = copy(roots, [*ABC, "other/x.json"], fake)
    assert (result.kind, result.detail) == (FailureKind.FATAL, CANCELLED)
    # the cancelled run's copies are not moved, whole or not (see the mid-file test below)
    assert result.failed == dict.fromkeys([*ABC, "other/x.json"], CANCELLED) and len(fake.calls) == 1
    assert tree(dst) == {}
    assert copy(roots, ABC, fake, cancel=True).failed == dict.fromkeys(ABC, CANCELLED)
    assert len(fake.calls) == 1  # not started again once cancelled
    assert not any(p.name.startswith(INCOMING_PREFIX) for p in dst.iterdir())


def test_many_files_in_one_folder_are_split_into_several_runs(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    rels = [f"{FOLDER}/{i:03d}{'m' * 200}.json" for i in range(160)]  # 160 x 210 chars > 30,000
    files = make_files(src, rels)
    fake = FakeRobocopy("success_3_files.txt", 1)
    result = copy(roots, rels, fake)
    assert result.ok and len(fake.calls) == 2
    assert all(len(subprocess.list2cmdline(call)) <= MAX_COMMAND_CHARS for call in fake.calls)
    assert tree(dst) == files


def test_a_source_file_that_vanished_during_the_copy_is_skipped(roots: tuple[Path, Path]) -> None:
    src, dst = roots
    rels = [*ABC, "other/x.json"]
    files = make_files(src, rels)
    result = copy(roots, rels, FakeRobocopy("error2_source_vanished.txt", 9, fail=["b.json"]))
    assert result.kind is None and result.failed == {f"{FOLDER}/b.json": VANISHED}
    assert tree(dst) == {rel: files[rel] for rel in (ABC[0], ABC[2], "other/x.json")}  # the run went on


# --- a stop in the middle of a file: a cancelled copy places nothing -----------------------------------


@pytest.fixture
def fake_robocopy(tmp_path: Path) -> str:
    """An executable standing in for robocopy.exe: tests/fixtures/robocopy/fake_robocopy.py as a real child
    process of the real runner, so it can be stopped in the middle of a file."""
    launcher = tmp_path / "robocopy"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FIXTURES / "fake_robocopy.py"}" "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX stand-in for robocopy.exe")
def test_a_copy_cancelled_in_the_middle_of_a_file_places_nothing(
    roots: tuple[Path, Path], fake_robocopy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quit or Pause during a first sync stops robocopy mid-file. On Windows ``Popen.kill()`` is
    ``TerminateProcess(handle, 1)`` (CPython's subprocess module; Microsoft Learn, "TerminateProcess
    function": the process ends with the exit code given), and exit code 1 is robocopy's "one or more files
    were copied successfully" (Microsoft Learn, "robocopy", exit codes). The half-written file sits in the
    incoming folder. Nothing of a cancelled run may be moved into the backup, not even its whole files."""
    src, dst = roots
    rels = [f"{FOLDER}/a.json", f"{FOLDER}/big.bin", f"{FOLDER}/c.json"]
    make_files(src, rels)
    (src / FOLDER / "big.bin").write_bytes(os.urandom(1 << 20))
    monkeypatch.setenv("FAKE_ROBOCOPY_STALL", "big.bin")
    partial = dst / f"{INCOMING_PREFIX}{os.getpid()}" / FOLDER / "big.bin"
    cancel = threading.Event()
    results: list[CopyResult] = []
    engine = RobocopyEngine(binary=fake_robocopy)
    worker = threading.Thread(
        target=lambda: results.append(engine.copy(CopyJob(src, dst, tuple(rels)), cancel))
    )
    worker.start()
    deadline = time.monotonic() + 20
    while not (partial.is_file() and partial.stat().st_size > 0):
        assert time.monotonic() < deadline and worker.is_alive(), "the fake robocopy never started big.bin"
        time.sleep(0.02)
    assert (dst / f"{INCOMING_PREFIX}{os.getpid()}" / FOLDER / "a.json").is_file()  # a.json was whole
    cancel.set()
    worker.join(timeout=20)
    assert not worker.is_alive()
    (result,) = results
    assert (result.kind, result.detail) == (FailureKind.FATAL, CANCELLED)
    assert result.copied == () and result.failed == dict.fromkeys(rels, CANCELLED)
    assert tree(dst) == {}  # no half file, no whole one, no incoming folder


class Cut(FakeRobocopy):
    """robocopy ended from outside (Task Manager, a log-off) in the middle of ``victim``: exit code 1 and
    no error line, since TerminateProcess gives it no chance to print one. ``keep_length``: the cut copy
    already has its full length, its end never written."""

    def __init__(self, victim: str, *, keep_length: bool) -> None:
        super().__init__("success_3_files.txt", 1)
        self.victim, self.keep_length = victim, keep_length

    def __call__(self, argv: Sequence[str], **kwargs: object) -> RunResult:
        result = super().__call__(argv, **kwargs)  # type: ignore[arg-type]
        copy = Path(argv[2]) / self.victim
        data = copy.read_bytes()
        copy.write_bytes(data[:5] + b"\0" * (len(data) - 5) if self.keep_length else data[:5])
        return result


@pytest.mark.parametrize("keep_length", [False, True])
def test_a_copy_cut_short_without_a_word_is_not_placed(roots: tuple[Path, Path], keep_length: bool) -> None:
    """Exit code 1 promises nothing about a file: every copy is checked against its source's size and
    sha256 (or the plan's, below) before it counts."""
    src, dst = roots
    files = make_files(src, ABC)
    result = copy(roots, ABC, Cut("b.json", keep_length=keep_length))
    assert result.copied == (ABC[0], ABC[2])
    assert result.failed == {ABC[1]: "not copied (robocopy exit 1)"} and result.kind is FailureKind.FATAL
    assert tree(dst) == {rel: files[rel] for rel in (ABC[0], ABC[2])}


def test_a_copy_is_checked_against_the_plan(roots: tuple[Path, Path]) -> None:
    """The sync hands the engine each file's planned size and sha256 (what the manifest will record). A
    source that changed since it was planned (opencode rewrote a legacy file) is not placed under the
    plan's name and digest: a harmless skip, since the next scan sees the change."""
    src, dst = roots
    files = make_files(src, ABC)
    planned = {rel: (len(data), hashlib.sha256(data).hexdigest()) for rel, data in files.items()}
    (src / ABC[1]).write_bytes(b"rewritten by opencode after the plan")
    job = CopyJob(src, dst, tuple(ABC), expect=planned)
    result = RobocopyEngine(runner=FakeRobocopy("success_3_files.txt", 1)).copy(job, threading.Event())
    assert result.copied == (ABC[0], ABC[2]) and result.failed == {ABC[1]: CHANGED}
    assert result.kind is None
    assert tree(dst) == {rel: files[rel] for rel in (ABC[0], ABC[2])}
    # a copy that matches neither the plan nor its unchanged source is the engine's failure
    result = RobocopyEngine(runner=Cut("a.json", keep_length=True)).copy(
        CopyJob(src, dst, (ABC[0],), expect=planned), threading.Event()
    )
    assert result.failed == {ABC[0]: "not copied (robocopy exit 1)"} and result.kind is FailureKind.FATAL


def test_a_copy_held_while_it_is_checked_is_locked_not_lost(
    roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The incoming folder is inside the Google Drive folder, and Drive (or a virus scanner) may open a
    new file there before it is checked. On Windows reading it then fails (ERROR_SHARING_VIOLATION, which
    Python raises as PermissionError): a lock to retry, like a failed rename, never a copy counted unread.
    Played here by the file reader, since nothing can refuse root a read on Linux."""
    src, dst = roots
    files = make_files(src, ABC)
    real = robocopy.content_of

    def held(path: Path, size: int | None = None) -> tuple[int, str] | None:
        if INCOMING_PREFIX in str(path) and path.name == "b.json":
            raise PermissionError(13, "The process cannot access the file because it is being used")
        return real(path, size)

    monkeypatch.setattr(robocopy, "content_of", held)
    result = copy(roots, ABC, FakeRobocopy("success_3_files.txt", 1))
    assert result.kind is FailureKind.LOCKED and result.failed[ABC[1]].startswith("locked:")
    assert tree(dst) == {rel: files[rel] for rel in (ABC[0], ABC[2])}


# --- robocopy in another language: decided without its words ------------------------------------------
#
# robocopy's own words (FEHLER, "Datei wird kopiert", "Wartezeit ... Wiederholung") come from its .mui
# resources and the messages after each error from the system (FormatMessage), both in the display
# language. The de_/es_ fixtures keep robocopy's format -- timestamp, decimal error number, the same
# number in hex "(0x%08X)", the path; file lines of tab-separated class, size and name -- with the words
# translated by us. Only the numbers, the paths and the file system may decide.


@pytest.mark.parametrize(
    ("fixture", "returncode", "kind", "english"),
    [
        ("de_error32_retry_limit.txt", 8, FailureKind.LOCKED, "error32_retry_limit.txt"),
        ("es_error2_source_vanished.txt", 9, None, "error2_source_vanished.txt"),
        (
            "es_error3_destination_not_found.txt",
            16,
            FailureKind.DEST_MISSING,
            "error3_destination_not_found.txt",
        ),
        ("es_error32_then_success.txt", 1, None, "error32_then_success.txt"),
    ],
)
def test_a_localized_robocopy_is_read_like_the_english_one(
    fixture: str, returncode: int, kind: FailureKind | None, english: str
) -> None:
    output = recorded(fixture, "cp850")
    assert classify(returncode, output) is kind is classify(returncode, recorded(english))
    localized, reference = parse_errors(output), parse_errors(recorded(english))
    assert [(e.code, PureWindowsPath(e.path).name, e.final, e.kind) for e in localized] == [
        (e.code, PureWindowsPath(e.path).name, e.final, e.kind) for e in reference
    ]


def test_a_source_folder_that_vanished_is_told_by_its_path_not_by_words() -> None:
    """German "Zugriff auf Quellverzeichnis" (accessing source directory), ERROR 3: the path is the source
    folder the run was given, so it vanished; the same error on another folder is the destination's."""
    output = recorded("de_error3_source_folder_gone.txt", "cp850")
    source = r"C:\Users\dev\.local\share\opencode\storage\message\ses_01J9Z"
    assert classify(16, output, source=source) is None
    assert classify(16, output, source=r"C:\Users\dev\elsewhere") is FailureKind.DEST_MISSING


def test_the_error_number_is_read_from_its_hex_form_and_checked() -> None:
    """A line whose decimal and hex numbers disagree is not one of robocopy's error lines."""
    line = r"2026/11/29 10:00:00 HATA 32 (0x00000020) Dosya kopyalanıyor C:\src\b.json"
    (error,) = parse_errors(line + "\r\nmessage\r\n")
    assert (error.code, error.path, error.message, error.kind) == (
        32,
        r"C:\src\b.json",
        "message",
        FailureKind.LOCKED,
    )
    assert parse_errors(line.replace("0x00000020", "0x00000021")) == []


@pytest.mark.parametrize(
    ("fixture", "returncode", "failing", "kind"),
    [
        ("es_error32_then_success.txt", 1, {}, None),  # the retry worked
        ("de_error32_retry_limit.txt", 9, {"b.json": "locked"}, FailureKind.LOCKED),
        ("es_error2_source_vanished.txt", 9, {"b.json": VANISHED}, None),
    ],
)
def test_the_engine_reads_a_localized_robocopy(
    roots: tuple[Path, Path], fixture: str, returncode: int, failing: dict[str, str], kind: FailureKind | None
) -> None:
    """``failing``: the files robocopy did not copy, and the start of the reason each is reported with."""
    files = make_files(roots[0], ABC)
    result = copy(roots, ABC, FakeRobocopy(fixture, returncode, fail=list(failing), encoding="cp850"))
    copied = [rel for rel in ABC if rel.rpartition("/")[2] not in failing]
    assert result.copied == tuple(copied) and result.kind is kind
    assert {rel.rpartition("/")[2]: why.split(":")[0] for rel, why in result.failed.items()} == failing
    assert tree(roots[1]) == {rel: files[rel] for rel in copied}
