"""The dialog process's main: KIND from argv, the request from stdin, the answer to stdout, an exit code.

No tkinter here: a bad request is refused (exit 2) before Tk is loaded, and the tray, which imports the
protocol from this package, never loads Tk. Runs on the dialog process's main thread.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO

from app.ui.dialog.protocol import (
    Answer,
    BadRequest,
    Cancelled,
    Exit,
    Kind,
    NoWindow,
    Request,
    decode_request,
    encode,
)

USAGE = f"usage: python -m app.ui.dialog {{{'|'.join(Kind)}}} < request.json"


def main(argv: Sequence[str]) -> int:
    """Show the dialog ``argv`` names with the request on stdin; returns the exit code (see the protocol).

    Writes one line to stdout (the answer, or the cancel answer) or one line to stderr (why not).
    """
    kind = Kind.named(argv[0]) if len(argv) == 1 else None
    if kind is None:
        _say(sys.stderr, f"dialog: {USAGE}")
        return Exit.BAD_REQUEST
    try:
        request = decode_request(kind, sys.stdin.buffer.read())
    except BadRequest as exc:
        _say(sys.stderr, f"dialog: {exc}")
        return Exit.BAD_REQUEST
    try:
        answer = _show(request)
    except NoWindow as exc:
        _say(sys.stderr, f"dialog: cannot open a window: {exc}")
        return Exit.NO_WINDOW
    except Exception as exc:  # never exit 1 (= cancelled) by accident
        _say(sys.stderr, f"dialog: the {kind} dialog failed: {type(exc).__name__}: {exc}")
        return Exit.NO_WINDOW
    _answer(encode(Cancelled(cancelled=True) if answer is None else answer))
    return Exit.CANCELLED if answer is None else Exit.OK


def _show(request: Request) -> Answer | None:
    try:
        # Imported here: Tk is loaded only once a window is due (never by the tray, nor for a bad request).
        from app.ui.dialog import windows  # noqa: PLC0415 - Tk, once a window is due
        from app.ui.dialog.base import Trace  # noqa: PLC0415 - Tk, once a window is due
    except ImportError as exc:  # a Python built without Tk
        raise NoWindow(f"this Python has no Tk ({exc})") from None
    return windows.show(request, Trace.from_env())


def _answer(data: bytes) -> None:
    """Write the answer's JSON (one line: JSON text has no raw line break) as UTF-8, whatever the locale."""
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.buffer.flush()


def _say(stream: IO[str], text: str) -> None:
    """Write ``text`` as exactly one line (any line breaks inside it become spaces)."""
    stream.write(" ".join(text.split()) + "\n")
    stream.flush()
