"""The folder chooser: the suggested folders first (one button each) and, when the user has rclone remotes,
"An rclone remote…" (one button per remote, and the folder on it to type); then Tk's own directory dialog
over a hidden root, brought to the front once it appears.

Main thread of the dialog process.
"""

from __future__ import annotations

import os
import tkinter as tk
from functools import partial
from pathlib import Path
from tkinter import filedialog, ttk

from app.ui.dialog.base import FIND_DIALOG_EVERY_MS, Trace, Window, front_file_dialog, full_title, new_root
from app.ui.dialog.protocol import Chosen, FolderRequest

OTHER = "Other folder…"
REMOTE = "An rclone remote…"
DEFAULT_REMOTE_FOLDER = "opencode-sessions"


class Suggestions(Window):
    """The suggested folders, one button each, then [An rclone remote…] [Other folder…] [Cancel]."""

    def __init__(self, request: FolderRequest, trace: Trace) -> None:
        super().__init__(request.title, trace)
        self.other = self.remote = False
        buttons = self.button_row()
        self.text_with_icon("question", _question(request))
        column = ttk.Frame(self.body)
        column.pack(side="top", fill="x", pady=(12, 0))
        for path in request.suggestions:
            self.button(column, str(path), partial(self.finish, Chosen(path=path))).pack(fill="x", pady=2)
        self.button(buttons, "Cancel", self.close).pack(side="right")
        self.button(buttons, OTHER, self._other, key="o").pack(side="right", padx=(0, 8))
        if request.remotes:
            self.button(buttons, REMOTE, self._remote, key="r").pack(side="right", padx=(0, 8))
        first = str(request.suggestions[0]) if request.suggestions else REMOTE
        self.first_focus = self.buttons[first]

    def _other(self) -> None:
        self.other = True
        self.finish(None)

    def _remote(self) -> None:
        self.remote = True
        self.finish(None)


def _question(request: FolderRequest) -> str:
    if len(request.suggestions) > 1:
        return (
            "Google Drive is signed in to several accounts on this computer. Back up into one of their "
            "folders, or choose another folder."
        )
    if request.suggestions:
        return "Back up into this Google Drive folder, or choose another folder."
    return (
        "Back up into a folder of this computer, or to one of your rclone remotes (Google Drive, S3, "
        "Backblaze B2, a NAS over SFTP or WebDAV…: 'rclone config' adds one)."
    )


class Remotes(Window):
    """The folder on the remote to back up into (an entry), then one button per remote, and [Cancel]."""

    def __init__(self, request: FolderRequest, trace: Trace) -> None:
        super().__init__(request.title, trace)
        buttons = self.button_row()
        self.text_with_icon(
            "question",
            "Back up to which of your rclone remotes? The backup goes into this folder on it, and a copy "
            "stays on this computer (in this app's cache) to upload from.",
        )
        row = ttk.Frame(self.body)
        row.pack(side="top", fill="x", pady=(12, 0))
        ttk.Label(row, text="Folder on the remote:").pack(side="left")
        self.folder = tk.StringVar(self.root, DEFAULT_REMOTE_FOLDER)
        entry = ttk.Entry(row, textvariable=self.folder, width=32)
        entry.pack(side="left", padx=(8, 0), fill="x", expand=True)
        self.name(entry, "folder")
        column = ttk.Frame(self.body)
        column.pack(side="top", fill="x", pady=(12, 0))
        for name in request.remotes:
            self.button(column, f"{name}:", partial(self._chose, name)).pack(fill="x", pady=2)
        self.button(buttons, "Cancel", self.close).pack(side="right")
        self.first_focus = self.buttons[f"{request.remotes[0]}:"]

    def _chose(self, name: str) -> None:
        self.finish(Chosen(path=None, remote=remote_choice(name, self.folder.get())))


def remote_choice(name: str, typed: str) -> str:
    """``rclone:NAME:FOLDER`` for the folder typed on remote ``name``: a trailing '/' dropped, a leading one
    kept (an absolute path on an sftp server), the default folder when nothing is typed."""
    folder = typed.strip().rstrip("/") or DEFAULT_REMOTE_FOLDER
    return f"rclone:{name}:{folder}"


def choose_folder(request: FolderRequest, trace: Trace) -> Chosen | None:
    """Ask for an existing folder: one of ``request.suggestions`` when there are some, else (or on "Other
    folder…") through Tk's dialog, starting in ``request.initial`` (else the home folder); or one of
    ``request.remotes`` and a folder on it; None when cancelled. Blocks until the dialog is closed."""
    if request.suggestions or request.remotes:
        offer = Suggestions(request, trace)
        answer = offer.run()
        if offer.remote:
            answer = Remotes(request, trace).run()
            return answer if isinstance(answer, Chosen) else None
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
