"""The live status window: label and value rows, refreshed every second in place, and [Close].

Its rows come from a function the caller passes (app.ui.dialog.windows reads the service's status file
through the presenter), so this module knows nothing of the service. Main thread of the dialog process.
"""

from __future__ import annotations

import math
import tkinter as tk
from collections.abc import Callable, Sequence
from tkinter import font as tkfont
from tkinter import ttk
from typing import Final

from app.ui.dialog.base import Trace, Window
from app.ui.dialog.protocol import Done, StatusRequest

REFRESH_EVERY_MS: Final = 1000
FALLBACK_BACKGROUND: Final = "#dcdad5"  # clam's frame colour, for a theme that names none

StatusRows = Callable[[], Sequence[tuple[str, str]]]  # (label, value), in order


class ValueText(tk.Text):
    """A read-only value that wraps and can be selected and copied; as tall as its text."""

    def __init__(self, parent: tk.Misc, background: str) -> None:
        super().__init__(
            parent,
            width=52,
            height=1,
            wrap="word",
            borderwidth=0,
            highlightthickness=0,
            padx=0,
            pady=0,
            background=background,
            font="TkDefaultFont",
            cursor="xterm",
            takefocus=0,
        )
        self.value = ""
        self.configure(state="disabled")
        self.bind("<Configure>", lambda _e: self._fit())
        self.bind("<Button-1>", lambda _e: self.focus_set(), add="+")  # so Ctrl+C copies the selection

    def show(self, value: str) -> None:
        """Show ``value`` (nothing is redrawn when it is the one shown)."""
        if value == self.value:
            return
        self.value = value
        self.configure(state="normal")
        self.delete("1.0", "end")
        self.insert("1.0", value)
        self.configure(state="disabled")
        self._fit()

    def _fit(self) -> None:
        if self.winfo_width() > 1:  # laid out: count the wrapped lines
            lines = int(self.tk.call(str(self), "count", "-update", "-displaylines", "1.0", "end-1c")) + 1
        else:  # not shown yet: a guess, corrected by the first <Configure>
            lines = max(1, math.ceil(len(self.value) / int(self.cget("width"))))
        if int(self.cget("height")) != lines:
            self.configure(height=lines)


class StatusWindow(Window):
    """The live status: ``rows()`` shown as a table, refreshed every second in place; answers Done."""

    resizable = True

    def __init__(self, request: StatusRequest, trace: Trace, rows: StatusRows) -> None:
        super().__init__(request.title, trace)
        self.rows = rows
        bold = tkfont.nametofont("TkDefaultFont", root=self.root).actual()
        bold["weight"] = "bold"
        self.bold = tkfont.Font(self.root, **bold)
        self.background = str(ttk.Style(self.root).lookup("TFrame", "background")) or FALLBACK_BACKGROUND
        buttons = self.button_row()
        close = self.button(buttons, "Close", self.close, default=True)
        close.pack(side="right")
        self.first_focus = close
        self.table = ttk.Frame(self.body)
        self.table.pack(side="top", fill="both", expand=True)
        self.table.columnconfigure(1, weight=1)
        self.cells: list[tuple[ttk.Label, ValueText]] = []
        self._traced: list[tuple[str, str]] | None = None
        self.refresh()

    def close(self) -> None:
        self.finish(Done(ok=True))

    def refresh(self) -> None:
        """Show the rows as they are now (in the same widgets while as many), and again in a second."""
        rows = list(self.rows())
        if len(rows) != len(self.cells):
            self._rebuild(len(rows))
        for (label, value), (text, shown) in zip(self.cells, rows, strict=True):
            if label.cget("text") != text:
                label.configure(text=text)
            value.show(shown)
        if self.trace and rows != self._traced:
            self._traced = rows
            self.root.update_idletasks()
            self.trace.rows(
                rows=rows, widgets=len(self.table.winfo_children()), height=self.root.winfo_reqheight()
            )
        self.root.after(REFRESH_EVERY_MS, self.refresh)

    def _rebuild(self, count: int) -> None:
        for child in self.table.winfo_children():
            child.destroy()
        self.cells = []
        for i in range(count):
            label = ttk.Label(self.table, font=self.bold, anchor="ne")
            label.grid(row=i, column=0, sticky="ne", padx=(0, 14), pady=3)
            value = ValueText(self.table, self.background)
            value.grid(row=i, column=1, sticky="new", pady=3)
            self.cells.append((label, value))
