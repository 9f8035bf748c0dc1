"""The Browse backups window: a search box, the sessions it finds, and for the one selected its versions
and the transcript of the version selected; **Restore this version** answers which copy to restore (the
tray asks for confirmation as for any restore), **Save as Markdown…** writes the transcript to a file.

Results come as you type (a search ``DEBOUNCE_MS`` after the last key, the last word matching the start
of a word), from a worker thread (:mod:`.browse_data`); the Tk thread polls its results. Keyboard: the
search box has the focus, Down or Enter moves into the sessions, Tab to the versions, the transcript and
the buttons; Alt+R restores, Alt+S saves, Escape closes. Main thread of the dialog process.
"""

from __future__ import annotations

import os
import tkinter as tk
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any, Final

from app.backup.history import Copy
from app.backup.search_index import Hit
from app.safe_text import clean, clean_text
from app.ui.dialog.base import FIND_DIALOG_EVERY_MS, Trace, Window, front_file_dialog, full_title
from app.ui.dialog.browse_data import Backup, Failed, Fetcher, Note, Searched, Shown, Versions
from app.ui.dialog.protocol import Browsed, BrowseRequest
from app.words import minutes

DEBOUNCE_MS: Final = 300  # after the last key: a search per pause, not per key
POLL_MS: Final = 40


class Browser(Window):
    """The Browse backups window; answers :class:`Browsed` or None (closed)."""

    size: tuple[int, int] | None = (1040, 700)
    resizable = True

    def __init__(self, request: BrowseRequest, trace: Trace) -> None:
        super().__init__(request.title, trace)
        self.backup = Backup(request)
        self.fetch = Fetcher()
        self.hits: dict[str, Hit] = {}  # tree item id -> hit
        self.versions: Versions | None = None
        self.shown: Shown | None = None
        self._pending: str | None = None  # the debounce timer
        self._waiting: dict[int, str] = {}  # job number -> what it is
        buttons = self.button_row()
        self._build_search()
        panes = ttk.PanedWindow(self.body, orient="vertical")
        panes.pack(side="top", fill="both", expand=True, pady=(8, 0))
        hit_columns = (
            ("title", "Session", 230),
            ("found", "Found", 330),
            ("machine", "Machine", 110),
            ("updated", "Last update", 150),
            ("present", "In opencode", 110),
        )
        self.hit_list = self._tree(panes, hit_columns, "sessions", weight=1)
        self.hit_list.bind("<<TreeviewSelect>>", lambda _e: self._hit_selected())
        lower = ttk.PanedWindow(panes, orient="horizontal")
        panes.add(lower, weight=2)
        version_columns = (("number", "#", 34), ("when", "Backed up", 290), ("messages", "Messages", 86))
        self.version_list = self._tree(lower, version_columns, "versions", weight=1)
        self.version_list.bind("<<TreeviewSelect>>", lambda _e: self._version_selected())
        self.text = self._transcript(lower)
        self.status = ttk.Label(self.body, anchor="w")
        self.status.pack(side="top", fill="x", pady=(6, 0))
        self.save_button = self.button(buttons, "Save as Markdown…", self.save, key="s")
        self.save_button.pack(side="left")
        close = self.button(buttons, "Close", self.close)
        self.restore_button = self.button(buttons, "Restore this version", self.restore, key="r")
        close.pack(side="right")
        self.restore_button.pack(side="right", padx=(0, 8))
        self.first_focus = self.entry
        self._enable()
        self._search_now()
        self.root.after(POLL_MS, self._poll)

    # -- building blocks

    def _build_search(self) -> None:
        row = ttk.Frame(self.body)
        row.pack(side="top", fill="x")
        ttk.Label(row, text="Search:", underline=0).pack(side="left")
        self.query = tk.StringVar(self.root)
        self.entry = ttk.Entry(row, textvariable=self.query)
        self.entry.pack(side="left", fill="x", expand=True, padx=(8, 0))
        self.query.trace_add("write", lambda *_a: self._typed())
        for key in ("<Down>", "<Return>", "<KP_Enter>"):
            self.entry.bind(key, self._into_hits)
        self.root.bind("<Alt-s>", lambda _e: self.press(self.save_button))
        self.root.bind("<Control-f>", lambda _e: self.entry.focus_set())
        self.name(self.entry, "search")

    def _tree(
        self, parent: ttk.PanedWindow, columns: tuple[tuple[str, str, int], ...], name: str, weight: int
    ) -> ttk.Treeview:
        frame = ttk.Frame(parent)
        tree = ttk.Treeview(
            frame, columns=[c for c, _t, _w in columns], show="headings", selectmode="browse", height=7
        )
        for col, text, width in columns:
            tree.heading(col, text=text, anchor="w")
            tree.column(col, width=width, minwidth=36, stretch=col in ("found", "when"))
        scroll = ttk.Scrollbar(frame, orient="vertical", command=tree.yview)
        tree.configure(yscrollcommand=scroll.set)
        tree.pack(side="left", fill="both", expand=True)
        scroll.pack(side="right", fill="y")
        parent.add(frame, weight=weight)
        self.name(tree, name)
        return tree

    def _transcript(self, parent: ttk.PanedWindow) -> tk.Text:
        frame = ttk.Frame(parent)
        text = tk.Text(frame, wrap="word", width=60, height=12, takefocus=1, font="TkTextFont")
        scroll = ttk.Scrollbar(frame, orient="vertical", command=text.yview)
        text.configure(yscrollcommand=scroll.set, state="disabled")
        text.pack(side="left", fill="both", expand=True)
        scroll.pack(side="right", fill="y")
        text.bind("<Button-1>", lambda _e: text.focus_set(), add="+")
        parent.add(frame, weight=3)
        self.name(text, "transcript")
        return text

    # -- events (Tk thread)

    def _typed(self) -> None:
        if self._pending is not None:
            self.root.after_cancel(self._pending)
        self._pending = self.root.after(DEBOUNCE_MS, self._search_now)

    def _search_now(self) -> None:
        self._pending = None
        query = self.query.get()
        self.status.configure(text="Searching…" if query.strip() else "Loading the sessions…")
        number = self.fetch.ask("search", "search", lambda: self.backup.search(query, self.fetch.note))
        self._waiting[number] = "search"

    def _into_hits(self, _event: tk.Event[tk.Misc]) -> str:
        if self._pending is not None:  # Enter: search at once
            self.root.after_cancel(self._pending)
            self._search_now()
        children = self.hit_list.get_children()
        if children:
            self.hit_list.focus_set()
            self.hit_list.focus(children[0])
            self.hit_list.selection_set(children[0])
        return "break"

    def _hit_selected(self) -> None:
        hit = self._selected_hit()
        if hit is None:
            return
        self.versions, self.shown = None, None
        self.version_list.delete(*self.version_list.get_children())
        self._show_text("Loading…")
        self._enable()
        for complete in (False, True):  # the files first, then the snapshots too (slower the first time)
            job = lambda c=complete: self.backup.versions(hit, complete=c)  # noqa: E731
            self._waiting[self.fetch.ask(f"versions {complete}", "read the versions", job)] = "versions"

    def _version_selected(self) -> None:
        copy = self._selected_copy()
        if copy is None or self.versions is None or (self.shown and self.shown.copy == copy.rel):
            self._enable()
            return
        h = self.versions.history
        job = lambda: self.backup.transcript(h, copy.rel)  # noqa: E731
        self._waiting[self.fetch.ask("transcript", "read this version", job)] = "transcript"
        self.shown = None
        self._enable()

    def _poll(self) -> None:
        for number, value in self.fetch.results():
            if isinstance(value, Note):
                self.status.configure(text=clean(value.text, 300))
            elif self._waiting.pop(number, None) is not None:
                self._took(value)
        self.root.after(POLL_MS, self._poll)

    def _took(self, value: Any) -> None:
        if isinstance(value, Failed):
            self.status.configure(text=clean(f"Cannot {value.what}: {value.why}", 300))
            if value.what == "read this version":
                self._show_text("")
        elif isinstance(value, Searched):
            self._show_hits(value)
        elif isinstance(value, Versions):
            self._show_versions(value)
        elif isinstance(value, Shown):
            self.shown = value
            self._show_text(value.text)
            self._enable()
            if self.trace:
                self.trace.shown(session=value.session_id, copy=value.copy, chars=len(value.text))

    # -- showing

    def _show_hits(self, found: Searched) -> None:
        if found.query != self.query.get():
            return  # typed on meanwhile: a newer search is coming
        self.hit_list.delete(*self.hit_list.get_children())
        self.hits = {}
        for i, hit in enumerate(found.hits):
            iid = f"h{i}"
            self.hits[iid] = hit
            updated = minutes(hit.time_updated, "")
            present = "yes" if hit.in_opencode else ("deleted" if not hit.in_backup else "missing")
            values = (
                clean(hit.title or "(untitled)"),
                _near(hit.snippet),
                clean(hit.machine),
                updated,
                present,
            )
            self.hit_list.insert("", "end", iid=iid, values=values)
        self.status.configure(text=found.note)
        if self.trace:
            self.trace.hits(query=found.query, ids=[h.session_id for h in found.hits])

    def _show_versions(self, got: Versions) -> None:
        hit = self._selected_hit()
        if hit is None or (hit.machine, hit.session_id) != (got.hit.machine, got.hit.session_id):
            return
        keep = self._selected_copy()
        self.versions = got
        self.version_list.delete(*self.version_list.get_children())
        for copy in got.history.copies:
            self.version_list.insert(
                "", "end", iid=copy.rel, values=(copy.number, copy.when(), copy.messages)
            )
        target = keep.rel if keep is not None and keep.rel in self.version_list.get_children() else None
        target = target or got.history.copies[0].rel
        self.version_list.selection_set(target)
        self.version_list.focus(target)
        if self.trace:
            numbers = [c.number for c in got.history.copies]
            self.trace.versions(session=got.hit.session_id, numbers=numbers, complete=got.complete)

    def _show_text(self, text: str) -> None:
        self.text.configure(state="normal")
        self.text.delete("1.0", "end")
        self.text.insert("1.0", clean_text(text))
        self.text.configure(state="disabled")

    def _enable(self) -> None:
        ready = self.shown is not None and self._selected_copy() is not None
        for b in (self.save_button, self.restore_button):
            b.state(["!disabled"] if ready else ["disabled"])

    def _selected_hit(self) -> Hit | None:
        chosen = self.hit_list.selection()
        return self.hits.get(chosen[0]) if chosen else None

    def _selected_copy(self) -> Copy | None:
        chosen = self.version_list.selection()
        if not chosen or self.versions is None:
            return None
        return next((c for c in self.versions.history.copies if c.rel == chosen[0]), None)

    # -- answers

    def default(self) -> None:
        """Enter outside the search box and the buttons: from a session on to its versions."""
        if self.root.focus_get() is self.hit_list and self.version_list.get_children():
            self.version_list.focus_set()

    def restore(self) -> None:
        copy, shown = self._selected_copy(), self.shown
        if copy is not None and shown is not None and self.versions is not None:
            self.finish(
                Browsed(session_id=shown.session_id, machine=self.versions.hit.machine, copy=copy.rel)
            )

    def save(self) -> None:
        copy, shown, versions = self._selected_copy(), self.shown, self.versions
        if copy is None or shown is None or versions is None:
            return
        name = "".join(c if c.isalnum() or c in " -_." else "_" for c in versions.history.title)[:80].strip()
        self.root.after(FIND_DIALOG_EVERY_MS, lambda: front_file_dialog(self.root, self.trace))
        chosen = filedialog.asksaveasfilename(
            parent=self.root,
            title=full_title("Save as Markdown"),
            initialfile=f"{name or versions.history.session_id}.md",
            defaultextension=".md",
            filetypes=(("Markdown", "*.md"), ("All files", "*")),
        )
        if not chosen:
            return
        target = Path(os.path.abspath(chosen))
        try:
            self.backup.save(versions.history, copy.rel, target)
        except Exception as exc:  # the file's folder is not writable, the copy went away: say so, go on
            self.status.configure(text=clean(f"Not saved: {exc}", 300))
            return
        self.status.configure(text=clean(f"Saved to {target}", 300))
        if self.trace:
            self.trace.saved(path=str(target))

    def finish(self, answer: Any) -> None:
        self.fetch.stop()
        super().finish(answer)


def _near(snippet: str, before: int = 24) -> str:
    """A snippet from shortly before its first word found (a column shows less than a terminal line)."""
    first = snippet.find("**")
    return snippet if first <= before else "…" + snippet[first - before :].split(" ", 1)[-1]
