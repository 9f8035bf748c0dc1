"""The recovery key window: the key, shown once, with [Copy] and [Save…]; a check box "I have stored the
recovery key" that enables the OK button ("Encrypt"); Cancel changes nothing.

Keyboard: Copy has the focus (Enter copies); Tab goes to Save…, the check box (Space checks it), Cancel
and Encrypt; Alt+C, Alt+S, Alt+H and Alt+E do the same from anywhere; Enter elsewhere presses Encrypt once
the box is checked; Escape cancels. The key is selectable too (Ctrl+C). Save… writes an age identity file
(0600, never over an existing file), which ``age -d -i FILE`` reads. Main thread of the dialog process.
"""

from __future__ import annotations

import tkinter as tk
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Final

from app.ui.dialog.base import FIND_DIALOG_EVERY_MS, Trace, Window, front_file_dialog, full_title
from app.ui.dialog.protocol import Done, RecoveryRequest

STORED: Final = "I have stored the recovery key"
FILE_NAME: Final = "opencode-backup-recovery-key.txt"
COPIED: Final = "Copied. Paste it where you keep it before you close this window."


class Recovery(Window):
    """The recovery key and what to do with it; answers Done once the box is checked and OK pressed."""

    def __init__(self, request: RecoveryRequest, trace: Trace) -> None:
        super().__init__(request.title, trace)
        self.key = request.key
        buttons = self.button_row()
        self.text_with_icon("warning", request.text)
        field = ttk.Entry(self.body, font="TkFixedFont", width=len(self.key) + 2)
        field.insert(0, self.key)
        field.state(["readonly"])  # selectable and copyable, not editable
        field.pack(side="top", fill="x", pady=(14, 0))
        field.bind("<FocusIn>", lambda _e: field.selection_range(0, "end"), add="+")
        self.name(field, "key")
        actions = ttk.Frame(self.body)
        actions.pack(side="top", fill="x", pady=(8, 0))
        copy = self.button(actions, "Copy", self.copy, key="c")
        copy.pack(side="left")
        self.button(actions, "Save…", self.save, key="s").pack(side="left", padx=(8, 0))
        self.said = ttk.Label(actions, text="", wraplength=380, justify="left")
        self.said.pack(side="left", fill="x", padx=(12, 0))
        self.stored = tk.BooleanVar(self.root, value=False)
        self.check = ttk.Checkbutton(
            self.body, text=STORED, variable=self.stored, command=self._stored_changed, underline=2
        )
        self.check.pack(side="top", anchor="w", pady=(14, 0))
        self.root.bind("<Alt-h>", self._toggle_stored)
        self.name(self.check, "stored")
        cancel = self.button(buttons, "Cancel", self.close)  # created first: Tab order
        self.ok = self.button(buttons, request.ok, lambda: self.finish(Done(ok=True)), key="e")
        self.ok.pack(side="right")
        cancel.pack(side="right", padx=(0, 8))
        self.ok.state(["disabled"])
        self.first_focus = copy

    def default(self) -> None:
        """Enter away from a button: OK once the box is checked (a bell before)."""
        self.press(self.ok)

    def copy(self) -> None:
        self.root.clipboard_clear()
        self.root.clipboard_append(self.key)
        self._say(COPIED)

    def save(self) -> None:
        """Ask where (Tk's save dialog), then write the key there as an age identity file."""
        self.root.after(FIND_DIALOG_EVERY_MS, lambda: front_file_dialog(self.root, self.trace))
        chosen = filedialog.asksaveasfilename(
            parent=self.root,
            title=full_title("Save the recovery key"),
            initialdir=str(Path.home()),
            initialfile=FILE_NAME,
            confirmoverwrite=False,  # an existing file is refused below, in one line
        )
        if not chosen:
            return
        path = Path(chosen).absolute()
        # Imported here: the engine's modules (a quarter of a second) are loaded only for a save.
        from app.encryption import write_recovery  # noqa: PLC0415 - on Save… only
        from app.errors import UsageError  # noqa: PLC0415 - on Save… only

        try:
            write_recovery(path, self.key)
        except UsageError as exc:
            self._say(f"Not saved: {exc}.")
            return
        self._say(f"Saved to {path} (only you can read it). Keep a copy apart from this computer.")

    def _say(self, text: str) -> None:
        self.said.configure(text=text)
        self.trace.said(text)

    def _toggle_stored(self, _event: tk.Event[tk.Misc]) -> str:
        self.check.invoke()
        return "break"

    def _stored_changed(self) -> None:
        on = self.stored.get()
        self.ok.state(["!disabled"] if on else ["disabled"])
        self.trace.ok_enabled(on)
