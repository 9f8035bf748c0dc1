"""The folder chooser: the suggested folders first (one button each), then Tk's own directory dialog over a
hidden root, brought to the front once it appears.

Main thread of the dialog process.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from tkinter import filedialog, ttk

from app.ui.dialog.base import FIND_DIALOG_EVERY_MS, Trace, Window, front_file_dialog, full_title, new_root
from app.ui.dialog.protocol import Chosen, FolderRequest

OTHER = "Other folder…"


class Suggestions(Window):
    """The suggested folders, one button each, then [Other folder…] [Cancel]."""

    def __init__(self, request: FolderRequest, trace: Trace) -> None:
        super().__init__(request.title, trace)
        self.other = False
        buttons = self.button_row()
        self.text_with_icon(
            "question",
            "Google Drive is signed in to several accounts on this computer. Back up into one of their "
            "folders, or choose another folder."
            if len(request.suggestions) > 1
            else "Back up into this Google Drive folder, or choose another folder.",
        )
        column = ttk.Frame(self.body)
        column.pack(side="top", fill="x", pady=(12, 0))
        for path in request.suggestions:
            self.button(column, str(path), partial(self.finish, Chosen(path=path))).pack(fill="x", pady=2)
        self.button(buttons, "Cancel", self.close).pack(side="right")
        self.button(buttons, OTHER, self._other, key="o").pack(side="right", padx=(0, 8))
        self.first_focus = self.buttons[str(request.suggestions[0])]

    def _other(self) -> None:
        self.other = True
        self.finish(None)


def choose_folder(request: FolderRequest, trace: Trace) -> Chosen | None:
    """Ask for an existing folder: one of ``request.suggestions`` when there are some, else (or on "Other
    folder…") through Tk's dialog, starting in ``request.initial`` (else the home folder); None when
    cancelled. Blocks until the dialog is closed."""
    if request.suggestions:
        offer = Suggestions(request, trace)
        answer = offer.run()
        if not offer.other:
            return answer if isinstance(answer, Chosen) else None
    initial = request.initial
    start = str(initial) if initial is not None and initial.is_dir() else str(Path.home())
    root = new_root()
    if root.tk.call("tk", "windowingsystem") != "x11":
        root.attributes("-topmost", True)  # native dialogs open above their (topmost) owner
    root.after(FIND_DIALOG_EVERY_MS, lambda: front_file_dialog(root, trace))
    path = filedialog.askdirectory(
        parent=root, title=full_title(request.title), initialdir=start, mustexist=True
    )
    root.destroy()
    if not path:
        return None
    return Chosen(path=Path(os.path.abspath(path)))
