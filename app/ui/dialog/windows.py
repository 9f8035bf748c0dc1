"""Which window answers which request: :func:`show`, the only way into Tk for the dialog process.

Main thread of the dialog process (Tk must own the thread it runs on).
"""

from __future__ import annotations

import tkinter as tk
from datetime import UTC, datetime
from typing import assert_never

from app.ui.dialog.base import Trace
from app.ui.dialog.confirm import Confirm
from app.ui.dialog.folder import choose_folder
from app.ui.dialog.message import Message
from app.ui.dialog.pick import Picker
from app.ui.dialog.protocol import (
    Answer,
    BrowseRequest,
    ConfirmRequest,
    FolderRequest,
    MessageRequest,
    NoWindow,
    PickRequest,
    RecoveryRequest,
    Request,
    StatusRequest,
)
from app.ui.dialog.recovery import Recovery
from app.ui.dialog.status import StatusRows, StatusWindow


def show(request: Request, trace: Trace) -> Answer | None:
    """Show the window ``request`` asks for and wait for the user: the answer, or None when cancelled.

    Raises NoWindow when Tk cannot open a window (no display).
    """
    try:
        match request:
            case ConfirmRequest():
                return Confirm(request, trace).run()
            case MessageRequest():
                return Message(request, trace).run()
            case PickRequest():
                return Picker(request, trace).run()
            case FolderRequest():
                return choose_folder(request, trace)
            case StatusRequest():
                return StatusWindow(request, trace, service_rows(request)).run()
            case BrowseRequest():
                # imported here: it loads the search engine, which no other window needs
                from app.ui.dialog.browse import Browser  # noqa: PLC0415

                return Browser(request, trace).run()
            case RecoveryRequest():
                return Recovery(request, trace).run()
            case _:
                assert_never(request)
    except tk.TclError as exc:
        raise NoWindow(" ".join(str(exc).split())) from None


def service_rows(request: StatusRequest) -> StatusRows:
    """The status window's rows: the service's status file as the presenter words it, read at each call."""
    # Imported here, not at the top: the presenter loads Pillow for the tray's icons (50 to 70 ms of a
    # dialog's start-up measured with -X importtime), which only the status window needs.
    from app.service.status import read_status  # noqa: PLC0415 - the status window only
    from app.ui.presenter import status_rows  # noqa: PLC0415 - the status window only (Pillow)

    backup = str(request.backup_path) if request.backup_path is not None else None

    def rows() -> list[tuple[str, str]]:
        shown = status_rows(read_status(request.state_dir), datetime.now(UTC), backup)
        return [(r.label, r.value) for r in shown]

    return rows
