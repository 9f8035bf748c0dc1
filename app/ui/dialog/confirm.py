"""The confirm window: a question with [Cancel] [OK], where Cancel is the default.

Cancel has the focus, so Enter cancels; Tab moves to OK (Enter on a focused button presses it). A strong
confirm ("Replace everything") keeps OK disabled until REPLACE is typed in its entry, which then has the
focus; Enter there confirms only once the word matches. Main thread of the dialog process.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk

from app.ui.dialog.base import Trace, Window
from app.ui.dialog.protocol import REPLACE_WORD, ConfirmRequest, Done


class Confirm(Window):
    """A question with [Cancel] [ok]; Cancel is the default. ``strong``: type REPLACE to enable ok."""

    def __init__(self, request: ConfirmRequest, trace: Trace) -> None:
        super().__init__(request.title, trace)
        self.strong = request.strong
        buttons = self.button_row()
        self.text_with_icon("warning" if self.strong else "question", request.text)
        self.word = tk.StringVar(self.root)
        if self.strong:
            ask = ttk.Frame(self.body)
            ask.pack(side="top", fill="x", pady=(14, 0))
            ttk.Label(ask, text=f"Type {REPLACE_WORD} to confirm:").pack(side="left")
            entry = ttk.Entry(ask, textvariable=self.word, width=16)
            entry.pack(side="left", padx=(8, 0))
            entry.bind("<Return>", self._entry_return)
            entry.bind("<KP_Enter>", self._entry_return)
            self.name(entry, "entry")
            self.word.trace_add("write", lambda *_a: self._word_changed())
            self.first_focus = entry
        cancel = self.button(buttons, "Cancel", self.close, default=True)  # created first: Tab order
        self.ok = self.button(buttons, request.ok, lambda: self.finish(Done(ok=True)))
        self.ok.pack(side="right")
        cancel.pack(side="right", padx=(0, 8))
        if self.strong:
            self.ok.state(["disabled"])
        else:
            self.first_focus = cancel

    def matches(self) -> bool:
        """The confirming word is typed (spaces around it do not count)."""
        return self.word.get().strip() == REPLACE_WORD

    def _word_changed(self) -> None:
        enabled = self.matches()
        if enabled != self.ok.instate(["!disabled"]):
            self.ok.state(["!disabled"] if enabled else ["disabled"])
            self.trace.ok_enabled(enabled)

    def _entry_return(self, _event: tk.Event[tk.Misc]) -> str:
        if self.matches():
            self.ok.invoke()
        else:
            self.root.bell()
        return "break"
