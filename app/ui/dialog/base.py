"""What every dialog window shares: the Tk root and its look, :class:`Window`, and the test :class:`Trace`.

Everything here runs on the dialog process's main thread, the only thread that touches Tk.
"""

from __future__ import annotations

import json
import os
import sys
import tkinter as tk
from collections.abc import Callable, Mapping, Sequence
from tkinter import font as tkfont
from tkinter import ttk
from typing import Final

from app.ui.dialog.protocol import TITLE_PREFIX, TRACE_ENV, Answer

TOPMOST_FOR_MS: Final = 300
FIND_DIALOG_EVERY_MS: Final = 50
FIND_DIALOG_TRIES: Final = 100  # 5 s: Tk's file dialog is mapped long before that, even on a loaded machine

Box = tuple[int, int, int, int]  # x, y, width, height on the screen


def full_title(title: str) -> str:
    """``title`` with the app's prefix, which every dialog's title starts with."""
    return title if title.startswith(TITLE_PREFIX) else TITLE_PREFIX + title


class Trace:
    """JSON lines about what the window shows, for tests: off unless ``OPENCODE_BACKUP_DIALOG_TRACE`` is
    set (``1``/``stderr``: to stderr; else a file to append to). One method per event."""

    def __init__(self, target: str | None) -> None:
        self.target = target or None

    @staticmethod
    def from_env() -> Trace:
        return Trace(os.environ.get(TRACE_ENV))

    def __bool__(self) -> bool:
        return self.target is not None

    def ready(
        self,
        *,
        title: str,
        focus: str | None,
        window: Box | None = None,
        buttons: Mapping[str, Box] | None = None,
        checks: Mapping[str, Box] | None = None,
        cells: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """The window is shown: its title, the focused widget's name, the boxes of its buttons (by label)
        and, in the picker, of each visible row's check box and the texts of its cells (by session id)."""
        event: dict[str, object] = {"title": title, "focus": focus}
        for name, value in (("window", window), ("buttons", buttons), ("checks", checks), ("cells", cells)):
            if value is not None:
                event[name] = value
        self._emit("ready", event)

    def selection(self, *, ids: Sequence[str], visible: Sequence[str], count: str) -> None:
        """The picker's selection (ids in list order), the rows the filter shows, and the count line."""
        self._emit("selection", {"ids": list(ids), "visible": list(visible), "count": count})

    def ok_enabled(self, enabled: bool) -> None:
        """The strong confirm's OK button was enabled or disabled."""
        self._emit("ok_enabled", {"enabled": enabled})

    def rows(self, *, rows: Sequence[tuple[str, str]], widgets: int, height: int) -> None:
        """The status window's rows as shown, how many widgets show them, and the window's height."""
        self._emit("rows", {"rows": [list(r) for r in rows], "widgets": widgets, "height": height})

    def hits(self, *, query: str, ids: Sequence[str]) -> None:
        """The Browse window shows the sessions ``ids`` found for ``query``."""
        self._emit("hits", {"query": query, "ids": list(ids)})

    def versions(self, *, session: str, numbers: Sequence[int], complete: bool) -> None:
        """The Browse window lists these versions of a session (``complete``: snapshots looked into)."""
        self._emit("versions", {"session": session, "numbers": list(numbers), "complete": complete})

    def shown(self, *, session: str, copy: str, chars: int) -> None:
        """The Browse window shows the transcript of a copy."""
        self._emit("shown", {"session": session, "copy": copy, "chars": chars})

    def saved(self, *, path: str) -> None:
        """The Browse window wrote a transcript to ``path``."""
        self._emit("saved", {"path": path})

    def said(self, text: str) -> None:
        """The recovery window's line under its Copy and Save… buttons changed to ``text``."""
        self._emit("said", {"text": text})

    def _emit(self, event: str, data: Mapping[str, object]) -> None:
        if self.target is None:
            return
        line = json.dumps({"event": event, **data}) + "\n"
        if self.target in ("1", "stderr"):
            sys.stderr.write(line)
            sys.stderr.flush()
            return
        with open(self.target, "a", encoding="utf-8") as out:
            out.write(line)


def new_root() -> tk.Tk:
    """A hidden Tk root with the app's look: clam theme and a readable font on X11."""
    root = tk.Tk(className="OpencodeSessionBackup")
    root.withdraw()
    if root.tk.call("tk", "windowingsystem") == "x11":
        style = ttk.Style(root)
        style.theme_use("clam")
        for name in ("TkDefaultFont", "TkTextFont", "TkHeadingFont", "TkMenuFont", "TkTooltipFont"):
            font = tkfont.nametofont(name, root=root)
            size = int(font.cget("size"))
            if size < 0 or size < 11:
                font.configure(size=11)
        linespace = int(tkfont.nametofont("TkDefaultFont", root=root).metrics("linespace"))
        style.configure("Treeview", rowheight=linespace + 8)
    return root


def box(widget: tk.Misc) -> Box:
    """Where ``widget`` is on the screen."""
    return widget.winfo_rootx(), widget.winfo_rooty(), widget.winfo_width(), widget.winfo_height()


def bring_to_front(top: tk.Misc) -> None:
    """Raise a toplevel above everything, keep it on top for a moment (so it is not lost behind the
    window that had the focus), then let it behave normally again."""
    top.tk.call("raise", str(top))
    top.tk.call("wm", "attributes", str(top), "-topmost", 1)

    def normal() -> None:
        if top.winfo_exists():
            top.tk.call("wm", "attributes", str(top), "-topmost", 0)

    top.after(TOPMOST_FOR_MS, normal)


class Window:
    """One dialog window: front-most when shown, Enter = default action, Escape/close = :meth:`close`."""

    size: tuple[int, int] | None = None  # fixed initial size; None = as big as the content asks
    resizable = False

    def __init__(self, title: str, trace: Trace) -> None:
        self.trace = trace
        self.root = new_root()
        self.root.title(full_title(title))
        self.root.resizable(self.resizable, self.resizable)
        self.root.protocol("WM_DELETE_WINDOW", self.close)
        self.root.bind("<Escape>", lambda _e: self.close())
        self.root.bind("<Return>", self._on_return)
        self.root.bind("<KP_Enter>", self._on_return)
        self.body = ttk.Frame(self.root, padding=14)
        self.body.pack(fill="both", expand=True)
        self.answer: Answer | None = None
        self.first_focus: tk.Misc = self.root
        self.buttons: dict[str, ttk.Button] = {}
        self._names: dict[str, str] = {}
        self._button_row: ttk.Frame | None = None
        self._shown = False

    # -- building blocks

    def name(self, widget: tk.Misc, name: str) -> None:
        """Give ``widget`` a name in the trace (``focus`` of the ready event)."""
        self._names[str(widget)] = name

    def button(
        self, parent: tk.Misc, text: str, command: Callable[[], None], *, default: bool = False, key: str = ""
    ) -> ttk.Button:
        """A button; ``key`` is its Alt+key accelerator (underlined in the label)."""
        underline = text.lower().find(key) if key else -1
        b = ttk.Button(
            parent, text=text, command=command, default="active" if default else "normal", underline=underline
        )
        if key:
            self.root.bind(f"<Alt-{key}>", lambda _e: self.press(b))
        self.buttons[text] = b
        self.name(b, text)
        return b

    def button_row(self) -> ttk.Frame:
        """The row of buttons at the bottom (packed first, so a long text never pushes it away)."""
        row = ttk.Frame(self.body)
        row.pack(side="bottom", fill="x", pady=(12, 0))
        self._button_row = row
        return row

    def text_with_icon(self, icon: str, text: str) -> None:
        """Tk's ``icon`` (question, warning, error, information) left of a wrapped ``text``, at the top."""
        top = ttk.Frame(self.body)
        top.pack(side="top", fill="both", expand=True)
        image = f"::tk::icons::{icon}"
        if image in self.root.tk.splitlist(self.root.tk.call("image", "names")):
            ttk.Label(top, image=image).pack(side="left", anchor="n", padx=(0, 14))
        ttk.Label(top, text=text, wraplength=460, justify="left").pack(side="left", fill="x", anchor="n")

    @staticmethod
    def press(b: ttk.Button) -> str:
        """Press ``b`` as a click would, or ring the bell when it is disabled."""
        if b.instate(["!disabled"]):
            b.invoke()
        else:
            b.bell()
        return "break"

    # -- actions

    def default(self) -> None:
        """What Enter does when no button has the focus."""
        self.close()

    def close(self) -> None:
        """Escape or the window's close box: cancel unless a subclass says otherwise."""
        self.finish(None)

    def finish(self, answer: Answer | None) -> None:
        """Answer (None: cancelled) and close the window, which ends :meth:`run`."""
        self.answer = answer
        self.root.destroy()

    def _on_return(self, _event: tk.Event[tk.Misc]) -> str:
        focus = self.root.focus_get()
        if isinstance(focus, ttk.Button):
            return self.press(focus)
        self.default()
        return "break"

    # -- showing

    def run(self) -> Answer | None:
        """Show the window (centred, in front, focused) and wait until it is answered."""
        root = self.root
        if self._button_row is not None:
            self._button_row.lift()  # Tab reaches the buttons after the content above them
        root.update_idletasks()
        if self.size is not None:
            width, height = self.size
            width, height = (
                min(width, root.winfo_screenwidth() - 40),
                min(height, root.winfo_screenheight() - 80),
            )
        else:
            width, height = root.winfo_reqwidth(), root.winfo_reqheight()
        if self.resizable:
            root.minsize(min(width, 480), min(height, 240))
        x = max(0, (root.winfo_screenwidth() - width) // 2)
        y = max(0, (root.winfo_screenheight() - height) // 3)
        root.geometry(f"{width}x{height}+{x}+{y}" if self.size else f"+{x}+{y}")
        root.bind("<Map>", self._on_map, add="+")
        root.deiconify()
        root.mainloop()
        return self.answer

    def _on_map(self, event: tk.Event[tk.Misc]) -> None:
        if str(event.widget) != str(self.root) or self._shown:
            return
        self._shown = True
        bring_to_front(self.root)
        self.first_focus.focus_force()
        if self.trace:
            self.root.after(150, self._ready)

    def _ready(self) -> None:
        focus = self.root.focus_get()
        self.trace.ready(
            title=self.root.title(),
            focus=self._names.get(str(focus), str(focus)) if focus else None,
            window=box(self.root),
            buttons={text: box(b) for text, b in self.buttons.items()},
            checks=self.checks(),
            cells=self.shown_cells(),
        )

    def checks(self) -> dict[str, Box] | None:
        """The screen boxes of the check boxes shown, by session id (the picker's ready event)."""
        return None

    def shown_cells(self) -> dict[str, list[str]] | None:
        """The texts of the rows shown, by session id (the picker's ready event)."""
        return None


def front_file_dialog(root: tk.Tk, trace: Trace, tries: int = FIND_DIALOG_TRIES) -> None:
    """Bring Tk's own (X11) file or directory dialog over ``root`` to the front and focus its entry, once it
    is mapped (call it with ``root.after`` just before opening the dialog, which blocks)."""
    tops = [
        str(w)
        for w in root.tk.splitlist(root.tk.call("winfo", "children", "."))
        if str(root.tk.call("winfo", "toplevel", w)) == str(w) and int(root.tk.call("winfo", "ismapped", w))
    ]
    if not tops:
        if tries > 0:
            root.after(FIND_DIALOG_EVERY_MS, lambda: front_file_dialog(root, trace, tries - 1))
        return
    top = tops[0]
    root.tk.call("raise", top)
    root.tk.call("wm", "attributes", top, "-topmost", 1)
    root.after(TOPMOST_FOR_MS, lambda: _untop(root, top))
    entry = f"{top}.contents.f2.ent"
    target = entry if int(root.tk.call("winfo", "exists", entry)) else top
    root.tk.call("focus", "-force", target)
    trace.ready(title=str(root.tk.call("wm", "title", top)), focus=target)


def _untop(root: tk.Tk, top: str) -> None:
    if int(root.tk.call("winfo", "exists", top)):
        root.tk.call("wm", "attributes", top, "-topmost", 0)
