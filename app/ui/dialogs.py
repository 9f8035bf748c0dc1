"""The tray's side of the dialogs: each dialog is its own ``python -m app.ui.dialog KIND`` process.

Tk must own the main thread of the process it runs in, and pystray owns the tray's, so the tray never
imports tkinter: its :class:`DialogHost` writes a typed request (:mod:`app.ui.dialog.protocol`) to a child
process and reads back the typed answer. The tray owns one host; a command with no tray (``run`` opening
a status window) makes its own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal, TypeVar

import app
from app.backup.catalog import SessionRow
from app.codec import CodecError
from app.errors import BackupError
from app.host import CREATE_NO_WINDOW, HOST
from app.safe_text import clean, clean_lines
from app.transfer.rclone_spec import PREFIX, is_remote
from app.ui.dialog.protocol import (
    Answer,
    Asks,
    Browsed,
    BrowseRequest,
    ConfirmRequest,
    Exit,
    FolderRequest,
    MessageRequest,
    PickRequest,
    PickSession,
    RecoveryRequest,
    StatusRequest,
    decode_answer,
    encode,
    is_cancel,
)

MODULE: Final = "app.ui.dialog"
KILL_WAIT: Final = 5.0  # seconds to wait for a killed dialog to go away

A = TypeVar("A", bound=Answer)


class DialogError(BackupError):
    """A dialog could not be shown or gave no usable answer; ``str(e)`` is one line."""


def dialog_command(kind: str) -> list[str]:
    """The argv that starts dialog ``kind`` (an installed build answers it in app.entry). Pure."""
    return [sys.executable, "-m", MODULE, kind]


def dialog_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus ``env``, with our source tree importable by the child."""
    merged = dict(os.environ)
    merged.update(env or {})
    root = Path(app.__file__).resolve().parent.parent
    if root.name not in ("site-packages", "dist-packages"):  # a source checkout: the child needs it too
        path = merged.get("PYTHONPATH")
        merged["PYTHONPATH"] = str(root) + (os.pathsep + path if path else "")
    return merged


def pick_session(row: SessionRow) -> PickSession:
    """What the picker shows of a catalog row (its title and folder made inert, see app.safe_text). Pure."""
    return PickSession(
        id=row.id,
        title=clean(row.title),
        directory=clean(row.directory),
        time_updated=row.time_updated,
        in_opencode=row.in_opencode,
        versions=row.versions,
    )


class DialogHost:
    """Shows dialogs as child processes and closes the open ones when the tray quits.

    The blocking methods (:meth:`confirm`, :meth:`pick_sessions`, :meth:`choose_folder`, :meth:`message`,
    :meth:`browse`, :meth:`keep_recovery_key`, :meth:`ask`) are meant for a tray worker thread, never
    pystray's or the main thread, and may run on several threads at once; :meth:`open_status` and
    :meth:`close_all` return at once, on any thread. They raise DialogError (one line) when a dialog cannot
    be shown or gives no usable answer. ``env`` is added to each child's environment, ``timeout`` (seconds)
    bounds each blocking dialog, and ``command`` builds a dialog's argv (a test may start something else).
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        command: Callable[[str], list[str]] = dialog_command,
    ) -> None:
        self._env = dict(env or {})
        self._timeout = timeout
        self._command = command
        self._lock = threading.Lock()  # guards the three below
        self._open: set[subprocess.Popen[bytes]] = set()  # the blocking dialogs being waited for
        self._closing: set[subprocess.Popen[bytes]] = set()  # ... of which close_all() closed these
        self._refusing = False  # after close_all(for_good=True): no new dialog opens

    # ---------------------------------------------------------------- what the tray asks

    def confirm(self, title: str, text: str, ok: str, strong: bool = False) -> bool:
        """Ask a yes/no question (Cancel is the default); ``strong`` makes the user type REPLACE first.
        True only when the user pressed ``ok``."""
        answer = self.ask(ConfirmRequest(title=clean(title), text=clean_lines(text), ok=ok, strong=strong))
        return answer is not None and answer.ok

    def pick_sessions(
        self, rows: Sequence[SessionRow], allow_replace: bool = True
    ) -> list[str] | Literal["replace_all"] | None:
        """Let the user choose sessions to restore from ``rows`` (the backup's catalog).

        Returns the chosen ids (in ``rows`` order), "replace_all" for "Replace everything…" (offered
        only with ``allow_replace``), or None when cancelled.
        """
        try:
            request = PickRequest(sessions=tuple(pick_session(r) for r in rows), allow_replace=allow_replace)
        except CodecError as exc:  # the same session twice: a broken catalog, not the user's doing
            raise DialogError(f"cannot show the picker: {exc}") from None
        answer = self.ask(request)
        if answer is None:
            return None
        if answer.replace_all:
            if not allow_replace:
                raise DialogError("the pick dialog answered replace everything, which it did not offer")
            return "replace_all"
        return list(answer.ids)

    def choose_folder(
        self, initial: Path | None, title: str, suggestions: Sequence[Path] = (), remotes: Sequence[str] = ()
    ) -> Path | str | None:
        """Ask for a folder, offering ``suggestions`` first, else starting in ``initial``, or one of the
        rclone ``remotes``; its absolute path, ``rclone:REMOTE:PATH``, or None when cancelled."""
        request = FolderRequest(
            title=title, initial=initial, suggestions=tuple(suggestions), remotes=tuple(remotes)
        )
        answer = self.ask(request)
        if answer is None:
            return None
        if answer.remote is not None and answer.path is None:
            if not is_remote(answer.remote) or answer.remote[len(PREFIX) :].partition(":")[0] not in remotes:
                raise DialogError(f"the folder dialog answered a remote not offered: {answer.remote[:120]!r}")
            return answer.remote
        if answer.path is None or answer.remote is not None or not answer.path.is_absolute():
            raise DialogError(f"the folder dialog answered no absolute path: {str(answer.path)[:120]!r}")
        return answer.path

    def keep_recovery_key(self, text: str, key: str) -> bool:
        """Show the recovery key ``key`` below ``text``, with Copy and Save…, until the person checks "I have
        stored the recovery key" and presses Encrypt (True) or cancels (False)."""
        try:
            request = RecoveryRequest(text=clean_lines(text), key=key)
        except CodecError:  # never shown in the error: it is a secret key, or meant to be one
            raise DialogError("cannot show the recovery key: it is not an age secret key") from None
        answer = self.ask(request)
        return answer is not None and answer.ok

    def message(self, title: str, text: str, error: bool = False) -> None:
        """Show a message and wait until it is closed (its words made inert: they may quote the backup)."""
        self.ask(MessageRequest(title=clean(title), text=clean_lines(text), error=error))

    def browse(
        self, backup_path: Path, machine: str, source: Path, opencode_db: Path | None
    ) -> Browsed | None:
        """The Browse backups window over ``backup_path``: the copy the user chose to restore, or None
        when closed (a transcript saved meanwhile is the window's own business)."""
        return self.ask(
            BrowseRequest(backup_path=backup_path, machine=machine, source=source, opencode_db=opencode_db)
        )

    def open_status(
        self, state_dir: Path, backup_path: Path | None, *, detach: bool = False
    ) -> subprocess.Popen[bytes]:
        """Open the live status window without waiting for it.

        The caller owns the returned process: keep it to show one status window at a time (``poll()`` is
        None while it is open), and ``terminate()`` + ``wait()`` it on Quit (:meth:`close_all` leaves it
        alone). Its answer is not read (stdout goes to the null device); errors go to this process's
        stderr, unless ``detach`` (a command that exits at once and leaves the window open: nothing may
        hold its terminal or pipes). Raises DialogError when the process cannot be started.
        """
        request = StatusRequest(state_dir=state_dir, backup_path=backup_path)
        proc = self._spawn(request.kind, subprocess.DEVNULL, subprocess.DEVNULL if detach else None)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):  # it died at once: poll() tells the caller
                proc.stdin.write(encode(request))
            with contextlib.suppress(OSError):
                proc.stdin.close()
        return proc

    def close_all(self, *, for_good: bool = False) -> None:
        """Close every blocking dialog this host is waiting for (the tray's Quit); their callers get
        None, as if the user had cancelled. Status windows are not included: their owner closes them.
        ``for_good``: later dialogs are cancelled at once too (a flow between two dialogs at Quit)."""
        with self._lock:
            self._refusing = self._refusing or for_good
            procs = [p for p in self._open if p.poll() is None]
            self._closing.update(procs)
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.terminate()

    # ---------------------------------------------------------------- any request

    def ask(self, request: Asks[A]) -> A | None:
        """Show the dialog ``request`` asks for and wait for it: its answer, or None when the user
        cancelled (or :meth:`close_all` closed it).

        Raises DialogError (one line) when the dialog rejects the request, crashes, gives no answer of
        the request's answer type, or is still open after the host's ``timeout`` (it is then killed).
        """
        kind = request.kind
        with self._lock:
            if self._refusing:
                return None
            proc = self._spawn(kind, subprocess.PIPE, subprocess.PIPE)
            self._open.add(proc)
        try:
            out, err = proc.communicate(encode(request), timeout=self._timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=KILL_WAIT)
            raise DialogError(
                f"the {kind} dialog got no answer within {self._timeout:g} s and was closed"
            ) from None
        except BaseException:  # e.g. KeyboardInterrupt: never leave the window behind
            proc.kill()
            proc.wait()
            raise
        finally:
            with self._lock:
                self._open.discard(proc)
                closed = proc in self._closing
                self._closing.discard(proc)
        if closed:
            return None
        return _answer(kind, request.answer, proc.returncode, out, err)

    def _spawn(self, kind: str, stdout: int, stderr: int | None) -> subprocess.Popen[bytes]:
        # no console flashing up when the tray runs under python.exe
        flags = CREATE_NO_WINDOW if HOST.windows else 0
        try:
            return subprocess.Popen(
                self._command(kind),
                env=dialog_env(self._env),
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=stderr,
                creationflags=flags,
            )
        except OSError as exc:
            raise DialogError(f"could not start the {kind} dialog: {exc}") from exc


def _answer(kind: str, answer: type[A], code: int, out: bytes, err: bytes) -> A | None:
    """What a finished dialog process said: its answer, None for a cancel, else DialogError. Pure."""
    if code == Exit.CANCELLED and is_cancel(out):
        return None
    if code not in (Exit.OK, Exit.CANCELLED):
        why = _last_line(err) or (f"killed by signal {-code}" if code < 0 else "no message")
        raise DialogError(f"the {kind} dialog failed (exit {code}): {why}")
    if code == Exit.OK:
        try:
            return decode_answer(answer, out)
        except CodecError as exc:
            shown = _last_line(out)[:120]
            why = f"{exc}; its output was {shown!r}"
            raise DialogError(f"the {kind} dialog gave no usable answer (exit 0): {why}") from None
    # exit 1 without the cancel answer: a crash (e.g. a traceback), not a cancel
    why = _last_line(err) or f"its output was {_last_line(out)[:120]!r}"
    raise DialogError(f"the {kind} dialog gave no answer (exit {code}): {why}")


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""
