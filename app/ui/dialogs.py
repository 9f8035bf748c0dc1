"""The tray's side of the dialogs: each dialog is its own ``python -m app.ui.dialog KIND`` process.

Tk must own the main thread of the process it runs in, and pystray owns the tray's, so the tray never
imports tkinter: it writes a JSON request to a child process and reads back its JSON answer (see
:mod:`app.ui.dialog` for the protocol). The blocking calls here are meant for a tray worker thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import app
from app.backup.catalog import SessionRow
from app.errors import BackupError

MODULE = "app.ui.dialog"
_KILL_WAIT = 5.0  # seconds to wait for a killed dialog to go away


class DialogError(BackupError):
    """A dialog could not be shown or gave no usable answer."""


_lock = threading.Lock()
_open: set[subprocess.Popen[bytes]] = set()  # the blocking dialogs being waited for
_closing: set[subprocess.Popen[bytes]] = set()  # ... of which close_all() closed these
_refusing = False  # set by close_all(for_good=True): no new dialog opens after the tray's Quit


def close_all(*, for_good: bool = False) -> None:
    """Close every blocking dialog this process is waiting for (the tray's Quit); their callers get
    None, as if the user had cancelled. Status windows are not included: their owner closes them.
    ``for_good``: later dialogs are cancelled at once too (a flow between two dialogs at Quit)."""
    global _refusing
    with _lock:
        _refusing = _refusing or for_good
        procs = [p for p in _open if p.poll() is None]
        _closing.update(procs)
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.terminate()


def dialog_command(kind: str) -> list[str]:
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


def _spawn(
    kind: str, env: Mapping[str, str] | None, stdout: int, stderr: int | None
) -> subprocess.Popen[bytes]:
    flags = 0
    if sys.platform == "win32":
        flags = subprocess.CREATE_NO_WINDOW  # no console flashing up when the tray runs under python.exe
    try:
        return subprocess.Popen(
            dialog_command(kind),
            env=dialog_env(env),
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            creationflags=flags,
        )
    except OSError as exc:
        raise DialogError(f"could not start the {kind} dialog: {exc}") from exc


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_dialog(
    kind: str, request: dict[str, Any], *, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> dict[str, Any] | None:
    """Show dialog ``kind`` and wait for it: its answer, or None when the user cancelled.

    Raises DialogError (one line) when the dialog rejects the request, crashes, prints no JSON object,
    or is still open after ``timeout`` seconds (it is then killed).
    """
    data = json.dumps(request).encode()
    with _lock:
        if _refusing:
            return None
        proc = _spawn(kind, env, subprocess.PIPE, subprocess.PIPE)
        _open.add(proc)
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=_KILL_WAIT)
        raise DialogError(f"the {kind} dialog got no answer within {timeout:g} s and was closed") from None
    except BaseException:  # e.g. KeyboardInterrupt: never leave the window behind
        proc.kill()
        proc.wait()
        raise
    finally:
        with _lock:
            _open.discard(proc)
            closed = proc in _closing
            _closing.discard(proc)
    if closed:
        return None
    code = proc.returncode
    answer = _parse(out)
    if code == 1 and answer == {"cancelled": True}:
        return None
    if code not in (0, 1):
        why = _last_line(err) or (f"killed by signal {-code}" if code < 0 else "no message")
        raise DialogError(f"the {kind} dialog failed (exit {code}): {why}")
    if answer is None or code == 1:  # exit 1 without the cancel answer: a crash (e.g. a traceback)
        why = _last_line(err) or f"its output was {_last_line(out)[:120]!r}"
        raise DialogError(f"the {kind} dialog gave no answer (exit {code}): {why}")
    return answer


def _parse(out: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(out.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return answer if isinstance(answer, dict) else None


def confirm(
    title: str,
    text: str,
    ok: str,
    strong: bool = False,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> bool:
    """Ask a yes/no question (Cancel is the default); ``strong`` makes the user type REPLACE first."""
    request = {"title": title, "text": text, "ok": ok, "strong": strong}
    answer = run_dialog("confirm", request, env=env, timeout=timeout)
    return answer is not None and answer.get("ok") is True


def pick_sessions(
    rows: Sequence[SessionRow],
    allow_replace: bool = True,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> list[str] | Literal["replace_all"] | None:
    """Let the user choose sessions to restore from ``rows`` (the backup's catalog).

    Returns the chosen ids (in ``rows`` order), "replace_all" for "Replace everything…", or None.
    """
    sessions = [
        {
            "id": row.id,
            "title": row.title,
            "directory": row.directory,
            "time_updated": row.time_updated.isoformat(timespec="seconds"),
            "in_opencode": row.in_opencode,
        }
        for row in rows
    ]
    request = {"sessions": sessions, "allow_replace": allow_replace}
    answer = run_dialog("pick", request, env=env, timeout=timeout)
    if answer is None:
        return None
    if answer.get("replace_all") is True:
        return "replace_all"
    ids = answer.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise DialogError(f"the pick dialog gave an unexpected answer: {answer!r}"[:200])
    return [str(i) for i in ids]


def choose_folder(
    initial: Path | None, title: str, *, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> Path | None:
    """Ask for an existing folder; None when cancelled."""
    request = {"initial": str(initial) if initial else None, "title": title}
    answer = run_dialog("folder", request, env=env, timeout=timeout)
    if answer is None:
        return None
    path = answer.get("path")
    if not isinstance(path, str) or not path:
        raise DialogError(f"the folder dialog gave an unexpected answer: {answer!r}"[:200])
    return Path(path)


def message(
    title: str,
    text: str,
    error: bool = False,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> None:
    """Show a message and wait until it is closed."""
    run_dialog("message", {"title": title, "text": text, "error": error}, env=env, timeout=timeout)


def open_status(
    state_dir: Path, backup_path: Path | None, *, env: Mapping[str, str] | None = None, detach: bool = False
) -> subprocess.Popen[bytes]:
    """Open the live status window without waiting for it.

    The caller owns the returned process: keep it to show one status window at a time (``poll()`` is
    None while it is open), and ``terminate()`` + ``wait()`` it on Quit. Its answer is not read
    (stdout goes to the null device); errors go to this process's stderr, unless ``detach`` (a
    command that exits at once and leaves the window open: nothing may hold its terminal or pipes).
    """
    proc = _spawn("status", env, subprocess.DEVNULL, subprocess.DEVNULL if detach else None)
    request = {"state_dir": str(state_dir), "backup_path": str(backup_path) if backup_path else None}
    if proc.stdin is not None:
        with contextlib.suppress(OSError):  # it died at once: poll() tells the caller
            proc.stdin.write(json.dumps({**request, "title": "Status"}).encode())
        with contextlib.suppress(OSError):
            proc.stdin.close()
    return proc


class DialogHost:
    """The tray's dialogs, as one object it owns (the module functions behind it)."""

    def confirm(self, title: str, text: str, ok: str, strong: bool = False) -> bool:
        return confirm(title, text, ok, strong)

    def pick_sessions(
        self, rows: Sequence[SessionRow], allow_replace: bool = True
    ) -> list[str] | Literal["replace_all"] | None:
        return pick_sessions(rows, allow_replace)

    def choose_folder(self, initial: Path | None, title: str) -> Path | None:
        return choose_folder(initial, title)

    def message(self, title: str, text: str, error: bool = False) -> None:
        message(title, text, error)

    def open_status(
        self, state_dir: Path, backup_path: Path | None, *, detach: bool = False
    ) -> subprocess.Popen[bytes]:
        return open_status(state_dir, backup_path, detach=detach)

    def close_all(self, *, for_good: bool = False) -> None:
        close_all(for_good=for_good)
