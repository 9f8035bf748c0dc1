"""The runner against real child processes: output, umask, process group, cancel and kill."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from app.transfer.runner import CREATE_NO_WINDOW, RunResult, run, style_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` until true; fails after ``timeout`` (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.02)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


class _Background:
    """Runs ``run`` on a helper thread so the test can cancel it."""

    def __init__(self, argv: list[str], **kwargs: object) -> None:
        self.cancel = threading.Event()
        self.result: RunResult | None = None
        self._thread = threading.Thread(target=self._main, args=(argv, kwargs))
        self._thread.start()

    def _main(self, argv: list[str], kwargs: dict[str, object]) -> None:
        self.result = run(argv, cancel=self.cancel, **kwargs)  # type: ignore[arg-type]

    def join(self) -> RunResult:
        self._thread.join(timeout=20)
        assert not self._thread.is_alive(), "run() did not return"
        assert self.result is not None
        return self.result


def test_returns_exit_code_and_both_streams() -> None:
    result = run(
        _python("import sys; print('to out'); print('to err', file=sys.stderr); sys.exit(3)"),
        cancel=threading.Event(),
    )
    assert (result.returncode, result.stdout, result.stderr) == (3, "to out\n", "to err\n")
    assert not result.cancelled and not result.timed_out
    assert "to out" in result.output and "to err" in result.output


def test_stderr_is_told_line_by_line_while_the_command_runs(tmp_path: Path) -> None:
    """rclone's log of a long upload is read as it comes (its progress), and is still in the result."""
    gate = tmp_path / "go"
    code = f"""
        import os, sys, time
        sys.stderr.write("first line\\n"); sys.stderr.flush()
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.01)
        sys.stderr.write("second line\\nno newline at the end")
        print("out")
    """
    told: list[str] = []

    def tell(line: str) -> None:
        told.append(line)
        if line == "first line":
            gate.touch()  # the command waits for this: the first line came while it ran

    result = run(_python(code), cancel=threading.Event(), timeout=30, on_stderr=tell)
    assert told == ["first line", "second line", "no newline at the end"]
    assert result.stderr == "first line\nsecond line\nno newline at the end"
    assert (result.returncode, result.stdout) == (0, "out\n")


def test_feeds_input_and_adds_environment(tmp_path: Path) -> None:
    code = "import os, sys; print(sys.stdin.read()[::-1], os.environ['OCB_PROBE'], 'PATH' in os.environ)"
    result = run(_python(code), cancel=threading.Event(), input=b"abc", env={"OCB_PROBE": "x"}, cwd=tmp_path)
    assert result.stdout.split() == ["cba", "x", "True"]


def test_bad_bytes_in_output_do_not_raise() -> None:
    result = run(_python("import sys; sys.stdout.buffer.write(b'ok \\xff')"), cancel=threading.Event())
    assert result.stdout == "ok \ufffd"


def test_child_runs_with_umask_077_in_its_own_session(tmp_path: Path) -> None:
    code = """
        import json, os
        open('file', 'w').close()
        os.mkdir('folder')
        print(json.dumps(os.getsid(0)))
    """
    result = run(_python(code), cancel=threading.Event(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "file").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o700
    assert json.loads(result.stdout) != os.getsid(0)


_SPAWN_AND_HANG = """
    import os, signal, subprocess, sys, time
    if sys.argv[2] == 'ignore-term':
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(['sleep', '300'])
    with open(sys.argv[1] + '.tmp', 'w') as fh:
        fh.write(f'{os.getpid()} {child.pid}')
    os.replace(sys.argv[1] + '.tmp', sys.argv[1])
    while True:
        time.sleep(1)
"""


@pytest.mark.parametrize("behaviour", ["polite", "ignore-term"])
def test_cancel_stops_the_whole_process_group(tmp_path: Path, behaviour: str) -> None:
    pids_file = tmp_path / "pids"
    job = _Background([*_python(_SPAWN_AND_HANG), str(pids_file), behaviour], grace=0.5)
    _wait_for(pids_file.exists, "the child to start")
    pids = [int(pid) for pid in pids_file.read_text().split()]
    assert all(_alive(pid) for pid in pids)

    job.cancel.set()
    result = job.join()

    assert result.cancelled and not result.timed_out
    assert result.returncode != 0
    _wait_for(lambda: not any(_alive(pid) for pid in pids), "the process group to die", timeout=5)


def test_on_windows_a_command_gets_no_console_window_and_a_cancel_ends_it_at_once() -> None:
    """Microsoft Learn, "Process Creation Flags": CREATE_NO_WINDOW (0x08000000) runs a console application
    without a console window. Without it, a console program started by a process that has no console (the
    windowed tray) is given a new console of its own ("Creation of a Console"): one flashing window per
    robocopy run. CREATE_NEW_PROCESS_GROUP was the only flag before. Without a console no CTRL_BREAK_EVENT
    reaches the command (GenerateConsoleCtrlEvent signals processes that share the caller's console), so a
    cancel is TerminateProcess at once, not a signal and five seconds of waiting."""
    windows = style_for("win32")
    assert windows.popen_options() == {"creationflags": CREATE_NO_WINDOW}
    assert CREATE_NO_WINDOW == 0x08000000 == getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000)
    assert not windows.polite_stop and not windows.new_session and windows.encoding == "oem"
    linux, mac = style_for("linux"), style_for("darwin")
    assert linux.popen_options() == mac.popen_options() == {"start_new_session": True, "umask": 0o077}
    assert linux.polite_stop and mac.polite_stop and linux.bind_to_parent and not mac.bind_to_parent


def test_where_no_signal_reaches_the_command_a_cancel_kills_it_without_waiting(tmp_path: Path) -> None:
    """The Windows stop, played here: a command that would ignore the polite signal is killed at once."""
    pids_file = tmp_path / "pids"
    no_signal = replace(style_for(sys.platform), polite_stop=False)
    job = _Background([*_python(_SPAWN_AND_HANG), str(pids_file), "ignore-term"], grace=60.0, style=no_signal)
    _wait_for(pids_file.exists, "the child to start")
    job.cancel.set()
    result = job.join()  # within 20 s: far less than the 60 s of grace it was not given
    assert result.cancelled and result.returncode == -signal.SIGKILL


def test_timeout_stops_the_process_and_says_so(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    result = run(
        [*_python(_SPAWN_AND_HANG), str(pids_file), "polite"],
        cancel=threading.Event(),
        timeout=1.0,
        grace=1.0,
    )
    assert result.timed_out and not result.cancelled
    pids = [int(pid) for pid in pids_file.read_text().split()]
    _wait_for(lambda: not any(_alive(pid) for pid in pids), "the process group to die", timeout=5)


_RUN_AND_GET_KILLED = """
    import sys, threading
    from app.transfer.runner import run
    run(['sleep', '300'], cancel=threading.Event())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal")
def test_the_command_dies_when_we_are_killed(tmp_path: Path) -> None:
    """A kill -9 of the backup (OOM killer, a user) must not leave rsync writing into the backup."""
    parent = subprocess.Popen(_python(_RUN_AND_GET_KILLED), cwd=Path(__file__).resolve().parent.parent)
    try:
        _wait_for(lambda: bool(_children_named(parent.pid, "sleep")), "the command to start")
        sleeper = _children_named(parent.pid, "sleep")[0]
        parent.kill()
        parent.wait()
        _wait_for(lambda: not _alive(sleeper), "the command to die with its parent", timeout=5)
    finally:
        parent.kill()
        parent.wait()


def _children_named(pid: int, name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if int(fields[1]) == pid and comm == name:
                found.append(int(entry.name))
    return found


def test_missing_program_raises_oserror() -> None:
    with pytest.raises(OSError):
        run(["/nonexistent/opencode-backup-no-such-program"], cancel=threading.Event())


def test_feeds_an_input_larger_than_a_pipe_buffer() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB: more than one communicate() slice can write
    result = run(
        _python("import sys; print(len(sys.stdin.buffer.read()))"), cancel=threading.Event(), input=data
    )
    assert result.stdout.strip() == str(len(data))
