"""The dialog process: ``python -m app.ui.dialog KIND`` shows one Tk window and answers in JSON.

The tray never runs Tk in its own process (pystray owns the main thread there); it starts this module
through :mod:`app.ui.dialogs` instead. Protocol:

* stdin: ONE JSON object, the request (its fields depend on KIND, see below; unknown fields ignored);
* stdout: ONE JSON object on one line, the answer;
* exit code: 0 = accepted (the answer is on stdout), 1 = cancelled (stdout ``{"cancelled": true}``),
  2 = bad request (unknown KIND, invalid JSON, wrong field types: one line on stderr, no window),
  3 = no window could be opened (no display) or the dialog failed: one line on stderr. (The client
  also treats an exit 1 without the cancel answer, e.g. a traceback, as a failure.)

Kinds, request -> answer:

* ``confirm`` ``{"title", "text", "ok": button label, "strong": bool}`` -> ``{"ok": true}``.
  Cancel is the default button and has the focus, so Enter cancels; Tab moves to the OK button (Enter
  on a focused button presses that button). ``strong`` (for "Replace everything"): OK stays disabled
  until REPLACE is typed in the entry, which then has the focus; Enter there confirms only once the
  word matches.
* ``pick`` ``{"sessions": [{"id", "title", "directory", "time_updated", "in_opencode"}], "allow_replace"}``
  -> ``{"ids": [selected ids, in list order]}`` or ``{"replace_all": true}``. The filter box (focused
  first) narrows the rows to those whose title, directory or id contain every typed word. Selection
  survives filtering: rows hidden by the filter stay selected, are counted, and are restored. "Select
  missing" (Alt+M) adds every visible row opencode no longer has. Clicking the check box column or
  pressing Space toggles one row, Up/Down only move; a plain click (or Shift/Ctrl-click) selects as
  in any list, Ctrl+A selects every visible row. Enter = "Restore selected" (disabled while nothing
  is selected), unless a button has the focus.
* ``folder`` ``{"initial": str | null, "title"}`` -> ``{"path": absolute path}`` (Tk's directory dialog).
* ``message`` ``{"title", "text", "error": bool}`` -> ``{"ok": true}`` (Enter, Escape and closing too).
* ``status`` ``{"state_dir", "backup_path": str | null, "title"}`` -> ``{"ok": true}`` when closed; it
  re-reads the service's status file every second and updates its rows in place.

Every window's title starts with "opencode session backup — ". Setting ``OPENCODE_BACKUP_DIALOG_TRACE``
(to ``1``/``stderr``, or to a file path to append to) makes the process report what it shows as JSON
lines: ``ready`` (buttons' screen boxes, focused widget), ``selection`` (pick), ``ok_enabled``
(strong confirm) and ``rows`` (status) — the desktop tests read them instead of guessing from pixels.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tkinter as tk
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from tkinter import filedialog, ttk
from tkinter import font as tkfont
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.ui.presenter import Row

TITLE_PREFIX = "opencode session backup — "
TRACE_ENV = "OPENCODE_BACKUP_DIALOG_TRACE"
REPLACE_WORD = "REPLACE"
EXIT_OK, EXIT_CANCELLED, EXIT_BAD_REQUEST, EXIT_NO_DISPLAY = 0, 1, 2, 3
TOPMOST_FOR_MS = 300
STATUS_EVERY_MS = 1000
BOX_ON, BOX_OFF = "☑", "☐"

Answer = dict[str, Any]


class BadRequest(Exception):
    """The request cannot be shown; ``str(e)`` is one line."""


# ---------------------------------------------------------------- request fields


def _str(req: dict[str, Any], key: str, default: str | None = None) -> str:
    value = req.get(key, default)
    if not isinstance(value, str):
        raise BadRequest(f"{key!r} must be a string")
    return value


def _opt_str(req: dict[str, Any], key: str) -> str | None:
    value = req.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{key!r} must be a string or null")
    return value


def _bool(req: dict[str, Any], key: str, default: bool) -> bool:
    value = req.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{key!r} must be true or false")
    return value


def full_title(title: str) -> str:
    return title if title.startswith(TITLE_PREFIX) else TITLE_PREFIX + title


def local_minutes(stamp: str) -> str:
    """An ISO-8601 time as local 'YYYY-MM-DD HH:MM' (naive times are UTC); unparseable ones as given."""
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------- trace


class Trace:
    """JSON lines about what the window shows, for tests (off unless ``OPENCODE_BACKUP_DIALOG_TRACE``)."""

    def __init__(self, target: str | None) -> None:
        self.target = target or None

    @staticmethod
    def from_env() -> Trace:
        return Trace(os.environ.get(TRACE_ENV))

    def __bool__(self) -> bool:
        return self.target is not None

    def emit(self, event: str, **data: Any) -> None:
        if self.target is None:
            return
        line = json.dumps({"event": event, **data}) + "\n"
        if self.target in ("1", "stderr"):
            sys.stderr.write(line)
            sys.stderr.flush()
            return
        with open(self.target, "a", encoding="utf-8") as out:
            out.write(line)


# ---------------------------------------------------------------- common window


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


def _box(widget: tk.Misc) -> list[int]:
    """``[x, y, width, height]`` of a widget on the screen."""
    return [widget.winfo_rootx(), widget.winfo_rooty(), widget.winfo_width(), widget.winfo_height()]


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
            self.root.bind(f"<Alt-{key}>", lambda _e: self._press(b))
        self.buttons[text] = b
        self.name(b, text)
        return b

    def button_row(self) -> ttk.Frame:
        """The row of buttons at the bottom (packed first, so a long text never pushes it away)."""
        row = ttk.Frame(self.body)
        row.pack(side="bottom", fill="x", pady=(12, 0))
        self._button_row = row
        return row

    def icon(self, parent: tk.Misc, which: str) -> ttk.Label | None:
        image = f"::tk::icons::{which}"
        if image not in self.root.tk.splitlist(self.root.tk.call("image", "names")):
            return None
        return ttk.Label(parent, image=image)

    @staticmethod
    def _press(b: ttk.Button) -> str:
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
        self.answer = answer
        self.root.destroy()

    def _on_return(self, _event: tk.Event[tk.Misc]) -> str:
        focus = self.root.focus_get()
        if isinstance(focus, ttk.Button):
            return self._press(focus)
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
        self.trace.emit(
            "ready",
            title=self.root.title(),
            window=_box(self.root),
            focus=self._names.get(str(focus), str(focus)) if focus else None,
            buttons={text: _box(b) for text, b in self.buttons.items()},
            **self.ready_extra(),
        )

    def ready_extra(self) -> dict[str, Any]:
        return {}


def bring_to_front(top: tk.Misc) -> None:
    """Raise a toplevel above everything, keep it on top for a moment (so it is not lost behind the
    window that had the focus), then let it behave normally again."""
    top.tk.call("raise", str(top))
    top.tk.call("wm", "attributes", str(top), "-topmost", 1)

    def normal() -> None:
        if top.winfo_exists():
            top.tk.call("wm", "attributes", str(top), "-topmost", 0)

    top.after(TOPMOST_FOR_MS, normal)


# ---------------------------------------------------------------- confirm


class Confirm(Window):
    """A question with [Cancel] [ok]; Cancel is the default. ``strong``: type REPLACE to enable ok."""

    def __init__(self, req: dict[str, Any], trace: Trace) -> None:
        title, text = _str(req, "title", "Confirm"), _str(req, "text")
        ok, self.strong = _str(req, "ok", "OK"), _bool(req, "strong", False)
        super().__init__(title, trace)
        buttons = self.button_row()
        top = ttk.Frame(self.body)
        top.pack(side="top", fill="both", expand=True)
        icon = self.icon(top, "warning" if self.strong else "question")
        if icon is not None:
            icon.pack(side="left", anchor="n", padx=(0, 14))
        ttk.Label(top, text=text, wraplength=460, justify="left").pack(side="left", fill="x", anchor="n")
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
        self.ok = self.button(buttons, ok, lambda: self.finish({"ok": True}))
        self.ok.pack(side="right")
        cancel.pack(side="right", padx=(0, 8))
        if self.strong:
            self.ok.state(["disabled"])
        else:
            self.first_focus = cancel

    def matches(self) -> bool:
        return self.word.get().strip() == REPLACE_WORD

    def _word_changed(self) -> None:
        enabled = self.matches()
        if enabled != self.ok.instate(["!disabled"]):
            self.ok.state(["!disabled"] if enabled else ["disabled"])
            self.trace.emit("ok_enabled", enabled=enabled)

    def _entry_return(self, _event: tk.Event[tk.Misc]) -> str:
        if self.matches():
            self.ok.invoke()
        else:
            self.root.bell()
        return "break"


# ---------------------------------------------------------------- message


class Message(Window):
    """A text and [OK]; every way out answers ok."""

    def __init__(self, req: dict[str, Any], trace: Trace) -> None:
        title, text, error = _str(req, "title", "Message"), _str(req, "text"), _bool(req, "error", False)
        super().__init__(title, trace)
        buttons = self.button_row()
        top = ttk.Frame(self.body)
        top.pack(side="top", fill="both", expand=True)
        icon = self.icon(top, "error" if error else "information")
        if icon is not None:
            icon.pack(side="left", anchor="n", padx=(0, 14))
        ttk.Label(top, text=text, wraplength=460, justify="left").pack(side="left", fill="x", anchor="n")
        ok = self.button(buttons, "OK", self.close, default=True)
        ok.pack(side="right")
        self.first_focus = ok

    def close(self) -> None:
        self.finish({"ok": True})


# ---------------------------------------------------------------- pick


@dataclass(frozen=True)
class Session:
    id: str
    title: str
    directory: str
    updated: str  # as shown: local 'YYYY-MM-DD HH:MM'
    in_opencode: bool

    @property
    def haystack(self) -> str:
        return f"{self.title}\n{self.directory}\n{self.id}".casefold()


def parse_sessions(req: dict[str, Any]) -> list[Session]:
    raw = req.get("sessions")
    if not isinstance(raw, list):
        raise BadRequest("'sessions' must be a list")
    sessions: list[Session] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequest(f"sessions[{i}] must be an object")
        try:
            sid = _str(item, "id")
            session = Session(
                sid,
                _opt_str(item, "title") or "",
                _opt_str(item, "directory") or "",
                local_minutes(_opt_str(item, "time_updated") or ""),
                _bool(item, "in_opencode", True),
            )
        except BadRequest as exc:
            raise BadRequest(f"sessions[{i}]: {exc}") from None
        if sid in seen:
            raise BadRequest(f"sessions[{i}]: duplicate id {sid!r}")
        seen.add(sid)
        sessions.append(session)
    return sessions


class Picker(Window):
    """The restore picker: filter box, a check-list of sessions, and what to do with them."""

    size: tuple[int, int] | None = (940, 540)
    resizable = True

    def __init__(self, req: dict[str, Any], trace: Trace) -> None:
        sessions, allow_replace = parse_sessions(req), _bool(req, "allow_replace", True)
        if not sessions:
            self.size = None
        super().__init__("Restore sessions", trace)
        self.sessions = {f"s{i}": s for i, s in enumerate(sessions)}  # tree item id -> session
        self.selected: set[str] = set()  # tree item ids, hidden ones included
        self.visible: list[str] = list(self.sessions)
        self._marked: set[str] = set()
        self._traced: tuple[list[str], list[str]] | None = None
        buttons = self.button_row()
        if not sessions:
            ttk.Label(self.body, text="No sessions in the backup yet", padding=(4, 8, 40, 8)).pack(side="top")
            cancel = self.button(buttons, "Cancel", self.close, default=True)
            cancel.pack(side="right")
            self.first_focus = cancel
            return
        self._build_filter()
        self._build_tree()
        self.count = ttk.Label(self.body)
        self.count.pack(side="top", anchor="w", pady=(8, 0))
        self.button(buttons, "Select missing", self.select_missing, key="m").pack(side="left")
        if allow_replace:
            self.button(buttons, "Replace everything…", self.replace_all, key="e").pack(
                side="left", padx=(8, 0)
            )
        cancel = self.button(buttons, "Cancel", self.close)
        restore = self.button(buttons, "Restore selected", self.restore, default=True, key="r")
        restore.pack(side="right")
        cancel.pack(side="right", padx=(0, 8))
        self.restore_button = restore
        self.first_focus = self.filter
        self.refresh()

    def _build_filter(self) -> None:
        row = ttk.Frame(self.body)
        row.pack(side="top", fill="x", pady=(0, 8))
        ttk.Label(row, text="Filter:", underline=0).pack(side="left")
        self.query = tk.StringVar(self.root)
        self.filter = ttk.Entry(row, textvariable=self.query)
        self.filter.pack(side="left", fill="x", expand=True, padx=(8, 0))
        self.filter.bind("<Down>", self._into_list)
        self.root.bind("<Alt-f>", lambda _e: self.filter.focus_set())
        self.query.trace_add("write", lambda *_a: self.apply_filter())
        self.name(self.filter, "filter")

    def _build_tree(self) -> None:
        frame = ttk.Frame(self.body)
        frame.pack(side="top", fill="both", expand=True)
        tree = ttk.Treeview(frame, columns=("title", "project", "updated", "present"), selectmode="extended")
        self.tree = tree
        tree.heading("#0", text="")
        tree.column("#0", width=44, minwidth=44, stretch=False, anchor="center")
        for col, text, width, stretch in (
            ("title", "Title", 280, True),
            ("project", "Project", 250, True),
            ("updated", "Last update", 150, False),
            ("present", "In opencode", 125, False),
        ):
            tree.heading(col, text=text, anchor="w")
            tree.column(col, width=width, minwidth=60, stretch=stretch)
        for iid, s in self.sessions.items():
            present = "yes" if s.in_opencode else "missing"
            tree.insert(
                "",
                "end",
                iid=iid,
                text=BOX_OFF,
                values=(s.title or "(untitled)", s.directory, s.updated, present),
            )
        scroll = ttk.Scrollbar(frame, orient="vertical", command=tree.yview)
        tree.configure(yscrollcommand=scroll.set)
        tree.pack(side="left", fill="both", expand=True)
        scroll.pack(side="right", fill="y")
        tree.bind("<<TreeviewSelect>>", lambda _e: self._tree_selected())
        tree.bind("<Button-1>", self._click)
        tree.bind("<space>", self._space)
        tree.bind("<Up>", lambda _e: self._move(-1))  # arrows move, they do not change the checks
        tree.bind("<Down>", lambda _e: self._move(1))
        tree.bind("<Control-a>", self._select_all)
        self.name(tree, "list")

    # -- events

    def _into_list(self, _event: tk.Event[tk.Misc]) -> str:
        if self.visible:
            self.tree.focus_set()
            self.tree.focus(self.visible[0])
            self.tree.see(self.visible[0])
        return "break"

    def _click(self, event: tk.Event[tk.Misc]) -> str | None:
        """A click in the check box column toggles that row without touching the others."""
        if self.tree.identify_region(event.x, event.y) != "tree":
            return None
        iid = self.tree.identify_row(event.y)
        if iid:
            self.tree.focus_set()
            self.tree.focus(iid)
            self.toggle(iid)
        return "break"

    def _move(self, step: int) -> str:
        if self.visible:
            current = self.tree.focus()
            index = self.visible.index(current) + step if current in self.visible else 0
            target = self.visible[max(0, min(index, len(self.visible) - 1))]
            self.tree.focus(target)
            self.tree.see(target)
        return "break"

    def _space(self, _event: tk.Event[tk.Misc]) -> str:
        iid = self.tree.focus()
        if iid:
            self.toggle(iid)
        return "break"

    def _select_all(self, _event: tk.Event[tk.Misc]) -> str:
        self.selected |= set(self.visible)
        self.show_selection()
        return "break"

    def _tree_selected(self) -> None:
        """The list's own selection changed (click, shift-click, keys): take it for the visible rows."""
        visible = set(self.visible)
        chosen = {iid for iid in self.tree.selection() if iid in visible}
        self.selected = {iid for iid in self.selected if iid not in visible} | chosen
        self.refresh()

    # -- state

    def toggle(self, iid: str) -> None:
        self.selected ^= {iid}
        self.show_selection()

    def apply_filter(self) -> None:
        terms = self.query.get().casefold().split()
        self.visible = [iid for iid, s in self.sessions.items() if all(t in s.haystack for t in terms)]
        shown = set(self.visible)
        self.tree.detach(*[iid for iid in self.sessions if iid not in shown])
        for index, iid in enumerate(self.visible):
            self.tree.move(iid, "", index)
        self.show_selection()

    def show_selection(self) -> None:
        """Make the list's selection match ``selected`` (for the rows the filter shows)."""
        self.tree.selection_set([iid for iid in self.visible if iid in self.selected])
        self.refresh()

    def refresh(self) -> None:
        for iid in self.selected ^ self._marked:
            self.tree.item(iid, text=BOX_ON if iid in self.selected else BOX_OFF)
        self._marked = set(self.selected)
        total, hidden = len(self.sessions), len(self.selected - set(self.visible))
        text = f"{len(self.selected)} of {total} session{'' if total == 1 else 's'} selected"
        if hidden:
            text += f" ({hidden} not shown by the filter)"
        if len(self.visible) < total:
            text += f" · showing {len(self.visible)}"
        self.count.configure(text=text)
        self.restore_button.state(["!disabled"] if self.selected else ["disabled"])
        now = (self.ids(), [self.sessions[iid].id for iid in self.visible])
        if self.trace and now != self._traced:
            self._traced = now
            self.trace.emit("selection", ids=now[0], visible=now[1], count=text)

    def ids(self) -> list[str]:
        return [s.id for iid, s in self.sessions.items() if iid in self.selected]

    # -- answers

    def default(self) -> None:
        if self.sessions:
            self._press(self.restore_button)
        else:
            self.close()

    def select_missing(self) -> None:
        self.selected |= {iid for iid in self.visible if not self.sessions[iid].in_opencode}
        self.show_selection()
        self.tree.focus_set()  # not the button (a click focuses it): Enter now means "Restore selected"

    def replace_all(self) -> None:
        self.finish({"replace_all": True})

    def restore(self) -> None:
        if self.selected:
            self.finish({"ids": self.ids()})

    def ready_extra(self) -> dict[str, Any]:
        if not self.sessions:
            return {}
        checks: dict[str, list[int]] = {}
        x0, y0 = self.tree.winfo_rootx(), self.tree.winfo_rooty()
        for iid in self.visible[:50]:
            box = self.tree.bbox(iid, "#0")
            if box:
                x, y, w, h = (int(v) for v in box)
                checks[self.sessions[iid].id] = [x0 + x, y0 + y, w, h]
        return {"checks": checks}


# ---------------------------------------------------------------- status


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
    """The live status: the presenter's rows, refreshed every second in place."""

    resizable = True

    def __init__(self, req: dict[str, Any], trace: Trace) -> None:
        self.state_dir = Path(_str(req, "state_dir"))
        self.backup_path = _opt_str(req, "backup_path")
        super().__init__(_str(req, "title", "Status"), trace)
        bold = tkfont.nametofont("TkDefaultFont", root=self.root).actual()
        bold["weight"] = "bold"
        self.bold = tkfont.Font(self.root, **bold)
        self.background = str(ttk.Style(self.root).lookup("TFrame", "background")) or "#dcdad5"
        buttons = self.button_row()
        close = self.button(buttons, "Close", self.close, default=True)
        close.pack(side="right")
        self.first_focus = close
        self.table = ttk.Frame(self.body)
        self.table.pack(side="top", fill="both", expand=True)
        self.table.columnconfigure(1, weight=1)
        self.cells: list[tuple[ttk.Label, ValueText]] = []
        self._traced: list[list[str]] | None = None
        self.refresh()

    def close(self) -> None:
        self.finish({"ok": True})

    def rows(self) -> list[Row]:
        from app.service.status import read_status  # noqa: PLC0415 - the status window only
        from app.ui.presenter import status_rows  # noqa: PLC0415 - the status window only

        return status_rows(read_status(self.state_dir), datetime.now(UTC), self.backup_path)

    def refresh(self) -> None:
        rows = self.rows()
        if len(rows) != len(self.cells):
            self._rebuild(len(rows))
        for (label, value), row in zip(self.cells, rows, strict=True):
            if label.cget("text") != row.label:
                label.configure(text=row.label)
            value.show(row.value)
        shown = [[row.label, row.value] for row in rows]
        if self.trace and shown != self._traced:
            self._traced = shown
            self.root.update_idletasks()
            self.trace.emit(
                "rows",
                rows=shown,
                widgets=len(self.table.winfo_children()),
                height=self.root.winfo_reqheight(),
            )
        self.root.after(STATUS_EVERY_MS, self.refresh)

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


# ---------------------------------------------------------------- folder


def choose_folder(req: dict[str, Any], trace: Trace) -> Answer | None:
    """Tk's directory dialog over a hidden root, brought to the front once it appears."""
    title, initial = full_title(_str(req, "title", "Choose a folder")), _opt_str(req, "initial")
    start = initial if initial and os.path.isdir(initial) else str(Path.home())
    root = new_root()
    if root.tk.call("tk", "windowingsystem") != "x11":
        root.attributes("-topmost", True)  # native dialogs open above their (topmost) owner
    root.after(50, lambda: _front_dialog(root, trace, 100))
    path = filedialog.askdirectory(parent=root, title=title, initialdir=start, mustexist=True)
    root.destroy()
    if not path:
        return None
    return {"path": os.path.abspath(path)}


def _front_dialog(root: tk.Tk, trace: Trace, tries: int) -> None:
    """Bring Tk's own (X11) directory dialog to the front and focus its entry, once it is mapped."""
    tops = [
        str(w)
        for w in root.tk.splitlist(root.tk.call("winfo", "children", "."))
        if str(root.tk.call("winfo", "toplevel", w)) == str(w) and int(root.tk.call("winfo", "ismapped", w))
    ]
    if not tops:
        if tries > 0:
            root.after(50, lambda: _front_dialog(root, trace, tries - 1))
        return
    top = tops[0]
    root.tk.call("raise", top)
    root.tk.call("wm", "attributes", top, "-topmost", 1)
    root.after(TOPMOST_FOR_MS, lambda: _untop(root, top))
    entry = f"{top}.contents.f2.ent"
    target = entry if int(root.tk.call("winfo", "exists", entry)) else top
    root.tk.call("focus", "-force", target)
    trace.emit("ready", title=str(root.tk.call("wm", "title", top)), focus=target)


def _untop(root: tk.Tk, top: str) -> None:
    if int(root.tk.call("winfo", "exists", top)):
        root.tk.call("wm", "attributes", top, "-topmost", 0)


# ---------------------------------------------------------------- main


def _window(
    make: Callable[[dict[str, Any], Trace], Window],
) -> Callable[[dict[str, Any], Trace], Answer | None]:
    return lambda req, trace: make(req, trace).run()


KINDS: dict[str, Callable[[dict[str, Any], Trace], Answer | None]] = {
    "confirm": _window(Confirm),
    "pick": _window(Picker),
    "folder": choose_folder,
    "message": _window(Message),
    "status": _window(StatusWindow),
}


def _say(stream: IO[str], text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or argv[0] not in KINDS:
        _say(sys.stderr, f"dialog: usage: python -m app.ui.dialog {{{'|'.join(KINDS)}}} < request.json")
        return EXIT_BAD_REQUEST
    kind = argv[0]
    try:
        request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        _say(sys.stderr, f"dialog: the {kind} request is not valid JSON: {exc}")
        return EXIT_BAD_REQUEST
    if not isinstance(request, dict):
        _say(sys.stderr, f"dialog: the {kind} request must be a JSON object")
        return EXIT_BAD_REQUEST
    try:
        answer = KINDS[kind](request, Trace.from_env())
    except BadRequest as exc:
        _say(sys.stderr, f"dialog: bad {kind} request: {exc}")
        return EXIT_BAD_REQUEST
    except tk.TclError as exc:
        _say(sys.stderr, "dialog: cannot open a window: " + " ".join(str(exc).split()))
        return EXIT_NO_DISPLAY
    except Exception as exc:  # never exit 1 (= cancelled) by accident
        _say(
            sys.stderr,
            f"dialog: the {kind} dialog failed: {type(exc).__name__}: " + " ".join(str(exc).split()),
        )
        return EXIT_NO_DISPLAY
    if answer is None:
        _say(sys.stdout, json.dumps({"cancelled": True}))
        return EXIT_CANCELLED
    _say(sys.stdout, json.dumps(answer))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
