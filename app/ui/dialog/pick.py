"""The restore picker: a filter box, a check-list of the backed-up sessions, and what to do with them.

The filter box (focused first) narrows the rows to those whose title, directory or id contain every typed
word. Selection survives filtering: rows hidden by the filter stay selected, are counted, and are
answered. "Select missing" (Alt+M) adds every visible row opencode no longer has. Clicking the check box
column or pressing Space toggles one row, Up/Down only move; a plain click (or Shift/Ctrl-click) selects as
in any list, Ctrl+A selects every visible row. Enter = "Restore selected" (disabled while nothing is
selected), unless a button has the focus. Main thread of the dialog process.
"""

from __future__ import annotations

import tkinter as tk
from dataclasses import dataclass
from tkinter import ttk
from typing import Final

from app.ui.dialog.base import Box, Trace, Window
from app.ui.dialog.protocol import Picked, PickRequest, PickSession
from app.words import minutes

BOX_ON: Final = "☑"
BOX_OFF: Final = "☐"
MAX_TRACED_CHECKS: Final = 50  # the ready event's check boxes: the first rows are all a test clicks


@dataclass(frozen=True)
class Row:
    """A session as the picker shows and filters it."""

    session: PickSession
    updated: str  # local 'YYYY-MM-DD HH:MM'
    haystack: str  # what the filter searches, casefolded

    @staticmethod
    def of(session: PickSession) -> Row:
        text = f"{session.title}\n{session.directory}\n{session.id}".casefold()
        return Row(session, minutes(session.time_updated, ""), text)


class Picker(Window):
    """The restore picker; answers :class:`Picked` or None (cancelled)."""

    size: tuple[int, int] | None = (940, 540)
    resizable = True

    def __init__(self, request: PickRequest, trace: Trace) -> None:
        if not request.sessions:
            self.size = None
        super().__init__("Restore sessions", trace)
        self.rows = {f"s{i}": Row.of(s) for i, s in enumerate(request.sessions)}  # tree item id -> row
        self.selected: set[str] = set()  # tree item ids, hidden ones included
        self.visible: list[str] = list(self.rows)
        self._marked: set[str] = set()
        self._traced: tuple[list[str], list[str]] | None = None
        buttons = self.button_row()
        if not self.rows:
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
        if request.allow_replace:
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
        columns = ("title", "project", "updated", "versions", "present")
        tree = ttk.Treeview(frame, columns=columns, selectmode="extended")
        self.tree = tree
        tree.heading("#0", text="")
        tree.column("#0", width=44, minwidth=44, stretch=False, anchor="center")
        for col, text, width, stretch in (
            ("title", "Title", 250, True),
            ("project", "Project", 220, True),
            ("updated", "Last update", 150, False),
            ("versions", "Versions", 90, False),
            ("present", "In opencode", 115, False),
        ):
            tree.heading(col, text=text, anchor="w")
            tree.column(col, width=width, minwidth=60, stretch=stretch)
        for iid, row in self.rows.items():
            s = row.session
            present = "yes" if s.in_opencode else "missing"
            values = (s.title or "(untitled)", s.directory, row.updated, str(s.versions), present)
            tree.insert("", "end", iid=iid, text=BOX_OFF, values=values)
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
        """Show only the rows that contain every word of the filter box."""
        terms = self.query.get().casefold().split()
        self.visible = [iid for iid, row in self.rows.items() if all(t in row.haystack for t in terms)]
        shown = set(self.visible)
        self.tree.detach(*[iid for iid in self.rows if iid not in shown])
        for index, iid in enumerate(self.visible):
            self.tree.move(iid, "", index)
        self.show_selection()

    def show_selection(self) -> None:
        """Make the list's selection match ``selected`` (for the rows the filter shows)."""
        self.tree.selection_set([iid for iid in self.visible if iid in self.selected])
        self.refresh()

    def refresh(self) -> None:
        """Redraw the check boxes that changed, the count line and the Restore button's state."""
        for iid in self.selected ^ self._marked:
            self.tree.item(iid, text=BOX_ON if iid in self.selected else BOX_OFF)
        self._marked = set(self.selected)
        total, hidden = len(self.rows), len(self.selected - set(self.visible))
        text = f"{len(self.selected)} of {total} session{'' if total == 1 else 's'} selected"
        if hidden:
            text += f" ({hidden} not shown by the filter)"
        if len(self.visible) < total:
            text += f" · showing {len(self.visible)}"
        self.count.configure(text=text)
        self.restore_button.state(["!disabled"] if self.selected else ["disabled"])
        now = (self.ids(), [self.rows[iid].session.id for iid in self.visible])
        if self.trace and now != self._traced:
            self._traced = now
            self.trace.selection(ids=now[0], visible=now[1], count=text)

    def ids(self) -> list[str]:
        """The selected sessions' ids, in list order."""
        return [row.session.id for iid, row in self.rows.items() if iid in self.selected]

    # -- answers

    def default(self) -> None:
        if self.rows:
            self.press(self.restore_button)
        else:
            self.close()

    def select_missing(self) -> None:
        self.selected |= {iid for iid in self.visible if not self.rows[iid].session.in_opencode}
        self.show_selection()
        self.tree.focus_set()  # not the button (a click focuses it): Enter now means "Restore selected"

    def replace_all(self) -> None:
        self.finish(Picked(ids=(), replace_all=True))

    def restore(self) -> None:
        if self.selected:
            self.finish(Picked(ids=tuple(self.ids()), replace_all=False))

    def checks(self) -> dict[str, Box] | None:
        if not self.rows:
            return None
        checks: dict[str, Box] = {}
        x0, y0 = self.tree.winfo_rootx(), self.tree.winfo_rooty()
        for iid in self.visible[:MAX_TRACED_CHECKS]:
            bbox = self.tree.bbox(iid, "#0")
            if bbox:
                x, y, w, h = (int(v) for v in bbox)
                checks[self.rows[iid].session.id] = (x0 + x, y0 + y, w, h)
        return checks

    def shown_cells(self) -> dict[str, list[str]] | None:
        if not self.rows:
            return None
        return {
            self.rows[i].session.id: [str(v) for v in self.tree.item(i, "values")]
            for i in self.visible[:MAX_TRACED_CHECKS]
        }
