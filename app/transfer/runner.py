"""Run one external command (rsync, robocopy) so that it can be cancelled cleanly.

The command runs in its own process group (a new session on Unix, a new process group on
Windows) with umask 077, so rsync's new files are 0600 and folders 0700; on Linux it is killed
when this process dies, however it dies. Cancelling sends
the whole group a polite signal, waits ``grace`` seconds, then kills the group. Engines take
a ``Runner`` so tests can replay recorded output instead of starting a process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

logger = logging.getLogger(__name__)

GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class RunResult:
    """How a command ended. ``stdout``/``stderr`` are decoded with replacement of bad bytes."""

    returncode: int
    stdout: str
    stderr: str
    cancelled: bool = False
    timed_out: bool = False

    @property
    def output(self) -> str:
        """stdout then stderr: what the command said, for classification."""
        return f"{self.stdout}\n{self.stderr}" if self.stderr else self.stdout


class Runner(Protocol):
    """The signature of ``run``; tests pass a fake that replays recorded output."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cancel: threading.Event,
        cwd: Path | None = None,
        input: bytes | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunResult: ...


# --- the platform differences, all here -------------------------------------------------


def _popen_options() -> dict[str, Any]:
    if sys.platform == "win32":
        options: dict[str, Any] = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    else:
        options = {"start_new_session": True, "umask": 0o077}
    return options


def _bound_to_us(argv: Sequence[str]) -> list[str]:
    """``argv``, made to die with this process where the system can do that: on Linux through
    util-linux's ``setpriv --pdeathsig``. An rsync that outlived a killed sync (kill -9, the OOM killer)
    would go on writing into the backup while the next sync runs. Elsewhere ``argv`` unchanged."""
    if sys.platform.startswith("linux") and argv and shutil.which(argv[0]):  # a missing one: OSError below
        setpriv = shutil.which("setpriv")
        if setpriv:
            return [setpriv, "--pdeathsig", "KILL", "--", *argv]
    return list(argv)


def _output_encoding() -> str:
    # robocopy writes to a pipe in the OEM code page; rsync writes file names as raw bytes.
    return "oem" if sys.platform == "win32" else "utf-8"


def _ask_to_stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, OSError):
        if sys.platform == "win32":
            proc.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            os.killpg(proc.pid, signal.SIGTERM)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, OSError):
        if sys.platform == "win32":
            proc.kill()  # robocopy is one process; TerminateProcess is enough
        else:
            os.killpg(proc.pid, signal.SIGKILL)


# -----------------------------------------------------------------------------------------


def run(
    argv: Sequence[str],
    *,
    cancel: threading.Event,
    cwd: Path | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    grace: float = GRACE_SECONDS,
) -> RunResult:
    """Run ``argv`` (no shell) and wait for it on the calling thread, watching ``cancel``.

    ``env`` entries are added to this process's environment. When ``cancel`` is set or
    ``timeout`` passes, the process group is stopped (signal, ``grace`` seconds, kill) and the
    result says so. Raises ``OSError`` when the program cannot be started (not installed).
    """
    full_env = {**os.environ, **env} if env is not None else None
    logger.debug("running %s", list(argv))
    with _stdin_for(input) as stdin:
        proc = subprocess.Popen(
            _bound_to_us(argv),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=full_env,
            **_popen_options(),
        )
    deadline = None if timeout is None else time.monotonic() + timeout
    cancelled = timed_out = False
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                cancelled = cancel.is_set()
                timed_out = not cancelled and deadline is not None and time.monotonic() >= deadline
                if cancelled or timed_out:
                    logger.info("stopping %s (%s)", argv[0], "cancelled" if cancelled else "timed out")
                    out, err = _stop(proc, grace)
                    break
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    encoding = _output_encoding()
    return RunResult(
        returncode=proc.returncode,
        stdout=out.decode(encoding, "replace"),
        stderr=err.decode(encoding, "replace"),
        cancelled=cancelled,
        timed_out=timed_out,
    )


@contextlib.contextmanager
def _stdin_for(data: bytes | None) -> Iterator[IO[bytes] | int]:
    """The child's stdin: ``data`` in an anonymous temp file, or nothing.

    Not a pipe: ``communicate(timeout=...)`` cannot resume writing a large input after its
    first timeout, and an unlinked temp file leaves nothing behind if we are killed.
    """
    if data is None:
        yield subprocess.DEVNULL
        return
    with tempfile.TemporaryFile() as fh:
        fh.write(data)
        fh.seek(0)
        yield fh


def _stop(proc: subprocess.Popen[bytes], grace: float) -> tuple[bytes, bytes]:
    """Signal the group, give it ``grace`` seconds, then kill it; returns the remaining output."""
    _ask_to_stop(proc)
    try:
        return proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        logger.warning("%s ignored the stop signal for %.0f s; killing it", proc.args, grace)
    # The leader may have exited while a child still holds the pipes; either way the
    # group still exists, so its id cannot have been reused yet.
    _kill_group(proc)
    return proc.communicate()
