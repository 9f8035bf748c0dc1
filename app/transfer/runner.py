"""Run one external command (rsync, robocopy) so that it can be cancelled cleanly.

On Unix the command runs in a new session (its own process group) with umask 077, so rsync's new files
are 0600 and folders 0700, and on Linux it is killed when this process dies, however it dies. Cancelling
sends the whole group a polite signal, waits ``grace`` seconds, then kills the group. On Windows it runs
without a console window and a cancel ends it at once (see :func:`style_for`). Engines take a ``Runner``
so tests can replay recorded output instead of starting a process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from app import paths

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
        on_stderr: Callable[[str], None] | None = None,
    ) -> RunResult: ...


# --- the platform differences, all here -------------------------------------------------

# A Windows process creation flag (Microsoft Learn, "Process Creation Flags"), named here so that the
# table below can be built and tested on any system.
CREATE_NO_WINDOW = 0x08000000


@dataclass(frozen=True)
class ProcessStyle:
    """How commands are started and stopped on one system; pure data, :func:`style_for` picks it."""

    creationflags: int  # Windows: Popen's creation flags
    new_session: bool  # Unix: a session (process group) of its own, umask 077; a kill reaches the group
    polite_stop: bool  # a stop signal can reach the command, so it gets ``grace`` seconds before the kill
    bind_to_parent: bool  # Linux: the command dies with this process (setpriv --pdeathsig)
    encoding: str  # how its output is decoded

    def popen_options(self) -> dict[str, Any]:
        if self.creationflags:
            return {"creationflags": self.creationflags}
        return {"start_new_session": True, "umask": 0o077} if self.new_session else {}


def style_for(platform: str) -> ProcessStyle:
    """The style for ``platform`` (``sys.platform``'s spelling); pure.

    Windows: a console program started by a process without a console (the windowed tray) gets a new,
    visible console of its own (Microsoft Learn, "Creation of a Console"), so every robocopy run flashed a
    window, thousands on a first sync of the legacy tree: CREATE_NO_WINDOW gives it none. Without a console
    no CTRL_BREAK_EVENT can reach it either (GenerateConsoleCtrlEvent signals only processes that share the
    caller's console), so a cancel ends it at once with TerminateProcess; robocopy writes only into the
    incoming folder and nothing of a cancelled run is moved into place. Its output comes in the OEM code page.
    """
    if platform == "win32":
        return ProcessStyle(
            CREATE_NO_WINDOW, new_session=False, polite_stop=False, bind_to_parent=False, encoding="oem"
        )
    return ProcessStyle(
        0, new_session=True, polite_stop=True, bind_to_parent=platform.startswith("linux"), encoding="utf-8"
    )


def _bound_to_us(argv: Sequence[str], style: ProcessStyle) -> list[str]:
    """``argv``, made to die with this process where the system can do that: on Linux through
    util-linux's ``setpriv --pdeathsig``. An rsync that outlived a killed sync (kill -9, the OOM killer)
    would go on writing into the backup while the next sync runs. Elsewhere ``argv`` unchanged."""
    if style.bind_to_parent and argv and shutil.which(argv[0]):  # a missing one: OSError below
        setpriv = shutil.which("setpriv")
        if setpriv:
            return [setpriv, "--pdeathsig", "KILL", "--", *argv]
    return list(argv)


def _signal_group(pid: int, *, kill: bool) -> None:
    """Signal a child's process group (POSIX; the style never asks it of a Windows child)."""
    killpg = getattr(os, "killpg", None)  # POSIX only
    if killpg is None:
        raise OSError(f"no process group to signal here (pid {pid}, kill {kill})")
    killpg(pid, getattr(signal, "SIGKILL") if kill else signal.SIGTERM)  # noqa: B009 - POSIX only


def _ask_to_stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, OSError):
        _signal_group(proc.pid, kill=False)


def _kill(proc: subprocess.Popen[bytes], style: ProcessStyle) -> None:
    with contextlib.suppress(ProcessLookupError, OSError):
        if style.new_session:
            _signal_group(proc.pid, kill=True)
        else:
            proc.kill()  # Windows: TerminateProcess; robocopy is one process


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
    style: ProcessStyle | None = None,
    on_stderr: Callable[[str], None] | None = None,
) -> RunResult:
    """Run ``argv`` (no shell) and wait for it on the calling thread, watching ``cancel``.

    ``env`` entries are added to this process's environment. ``on_stderr`` is given each whole line the
    command writes to stderr while it runs (rclone's log of a long upload), on the calling thread; the
    result holds all of it too. When ``cancel`` is set or
    ``timeout`` passes, the process group is stopped (signal, ``grace`` seconds, kill; where no signal
    can reach it, kill) and the result says so. ``style``: this system's (tests pass another).
    Raises ``OSError`` when the program cannot be started (not installed).
    """
    style = style_for(paths.current_platform()) if style is None else style
    full_env = {**os.environ, **env} if env is not None else None
    logger.debug("running %s", list(argv))
    with _stdin_for(input) as stdin, _stderr_for(on_stderr) as (stderr, follow):
        proc = subprocess.Popen(
            _bound_to_us(argv, style),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=cwd,
            env=full_env,
            **style.popen_options(),
        )
        out, err, cancelled, timed_out = _wait(
            proc, argv, cancel=cancel, timeout=timeout, grace=grace, style=style, follow=follow
        )
        if follow is not None:
            err = follow.rest()
    return RunResult(
        returncode=proc.returncode,
        stdout=out.decode(style.encoding, "replace"),
        stderr=err.decode(style.encoding, "replace"),
        cancelled=cancelled,
        timed_out=timed_out,
    )


def start(
    argv: Sequence[str],
    *,
    output: IO[bytes],
    env: Mapping[str, str] | None = None,
    style: ProcessStyle | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` (no shell) to run beside this process (a daemon: rclone's remote control), started
    as :func:`run` starts a command (its own process group and umask 077 on Unix, bound to this process on
    Linux, no console window on Windows); its stdout and stderr go to ``output``. ``env`` entries are added
    to this process's environment (what must not be on a command line). Stop it with :func:`stop`."""
    style = style_for(paths.current_platform()) if style is None else style
    full_env = {**os.environ, **env} if env is not None else None
    logger.debug("starting %s", list(argv))
    return subprocess.Popen(
        _bound_to_us(argv, style),
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        env=full_env,
        **style.popen_options(),
    )


def stop(
    proc: subprocess.Popen[bytes], *, grace: float = GRACE_SECONDS, style: ProcessStyle | None = None
) -> None:
    """Stop a child :func:`start` started and wait for it: a polite signal, ``grace`` seconds, then a kill
    (at once where no signal reaches it). Nothing when it has ended already."""
    if proc.poll() is None:
        _stop(proc, grace, style_for(paths.current_platform()) if style is None else style)
    proc.wait()


def _wait(
    proc: subprocess.Popen[bytes],
    argv: Sequence[str],
    *,
    cancel: threading.Event,
    timeout: float | None,
    grace: float,
    style: ProcessStyle,
    follow: _Follow | None,
) -> tuple[bytes, bytes, bool, bool]:
    """Wait for ``proc`` on the calling thread, stopping it on ``cancel`` or ``timeout``; its output."""
    deadline = None if timeout is None else time.monotonic() + timeout
    cancelled = timed_out = False
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if follow is not None:
                    follow.poll()
                cancelled = cancel.is_set()
                timed_out = not cancelled and deadline is not None and time.monotonic() >= deadline
                if cancelled or timed_out:
                    logger.info("stopping %s (%s)", argv[0], "cancelled" if cancelled else "timed out")
                    out, err = _stop(proc, grace, style)
                    break
    except BaseException:
        _kill(proc, style)
        proc.wait()
        raise
    return out, err or b"", cancelled, timed_out


class _Follow:
    """A command's stderr in an anonymous temp file, read as it grows: each whole line goes to ``tell``.
    A file, not a pipe: the wait loop stays one thread (a pipe needs a reader thread of its own)."""

    def __init__(self, fh: IO[bytes], tell: Callable[[str], None], encoding: str = "utf-8") -> None:
        self._fh, self._tell, self._encoding = fh, tell, encoding
        self._read = 0
        self._partial = b""

    def poll(self) -> None:
        self._fh.seek(self._read)
        data = self._fh.read()
        self._read += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            self._tell(line.decode(self._encoding, "replace"))

    def rest(self) -> bytes:
        """Tell what is left, then return everything the command wrote."""
        self.poll()
        if self._partial:
            self._tell(self._partial.decode(self._encoding, "replace"))
        self._fh.seek(0)
        return self._fh.read()


@contextlib.contextmanager
def _stderr_for(tell: Callable[[str], None] | None) -> Iterator[tuple[IO[bytes] | int, _Follow | None]]:
    if tell is None:
        yield subprocess.PIPE, None
        return
    with tempfile.TemporaryFile() as fh:
        yield fh, _Follow(fh, tell)


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


def _stop(proc: subprocess.Popen[bytes], grace: float, style: ProcessStyle) -> tuple[bytes, bytes]:
    """Signal the group, give it ``grace`` seconds, then kill it; returns the remaining output."""
    if style.polite_stop:
        _ask_to_stop(proc)
        try:
            return proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            logger.warning("%s ignored the stop signal for %.0f s; killing it", proc.args, grace)
    # The leader may have exited while a child still holds the pipes; either way the
    # group still exists, so its id cannot have been reused yet.
    _kill(proc, style)
    return proc.communicate()
