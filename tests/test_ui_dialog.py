"""The dialog process (app.ui.dialog) and its client (app.ui.dialogs.DialogHost) on a real X server.

Every dialog runs as its own process, exactly as the tray starts it, and is driven with xdotool:
keys go to the focused window, clicks land on the screen boxes the dialog reports in its trace
(``OPENCODE_BACKUP_DIALOG_TRACE``: one JSON line per ``ready`` / ``selection`` / ``ok_enabled`` /
``rows`` event). The tests wait for those events, never for a fixed time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.backup.catalog import SessionRow
from app.backup.result import Outcome
from app.errors import BackupError, FailureKind
from app.service.status import ServiceState, Status, StatusFile
from app.ui.dialog.protocol import TITLE_PREFIX, TRACE_ENV
from app.ui.dialogs import DialogError, DialogHost, dialog_command
from tests.desktop import Desktop, trace_events, wait_for

ROOT = Path(__file__).resolve().parents[1]

SESSIONS: list[dict[str, Any]] = [
    {"id": "ses_a1", "title": "Fix the login bug", "directory": "/home/u/proj/web",
     "time_updated": "2026-11-29T10:15:00+00:00", "in_opencode": True, "versions": 12},
    {"id": "ses_b2", "title": "Refactor database layer", "directory": "/home/u/proj/api",
     "time_updated": "2026-11-28T09:00:00+00:00", "in_opencode": False},
    {"id": "ses_c3", "title": "Write docs", "directory": "/home/u/proj/web",
     "time_updated": "2026-11-27T08:00:00Z", "in_opencode": False},
    {"id": "ses_d4", "title": "Endpoint tests", "directory": "/home/u/proj/api",
     "time_updated": "2026-11-26T08:00:00+00:00", "in_opencode": True},
    {"id": "ses_e5", "title": "Old API experiment", "directory": "/home/u/scratch",
     "time_updated": "2026-10-01T08:00:00+00:00", "in_opencode": False},
]  # fmt: skip


def center(box: list[int]) -> tuple[int, int]:
    x, y, w, h = box
    return x + w // 2, y + h // 2


def read_events(path: Path) -> list[dict[str, Any]]:
    return trace_events(path)


class Trace:
    """The trace file a dialog (or several, one after another) writes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def env(self, desk: Desktop) -> dict[str, str]:
        return dict(desk.env, **{TRACE_ENV: str(self.path)})

    def host(self, desk: Desktop, timeout: float | None = 20) -> DialogHost:
        """A host (as the tray owns one) whose dialogs show on ``desk`` and write to this trace."""
        return DialogHost(env=self.env(desk), timeout=timeout)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in read_events(self.path) if e["event"] == name]

    def wait(
        self, name: str, pred: Callable[[dict[str, Any]], bool] = lambda _e: True, timeout: float = 15
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((e for e in reversed(self.events(name)) if pred(e)), None)

        event = wait_for(found, timeout, what=f"a matching {name!r} event in {self.path}")
        assert event is not None
        return event


class Dialog:
    """``python -m app.ui.dialog KIND`` with a request on stdin, traced, as the tray starts it."""

    def __init__(self, desk: Desktop, tmp_path: Path, kind: str, request: dict[str, Any]) -> None:
        self.desktop = desk
        self.trace = Trace(tmp_path / f"{kind}.trace.jsonl")
        request_file = tmp_path / f"{kind}.request.json"
        request_file.write_text(json.dumps(request), encoding="utf-8")
        with open(request_file, "rb") as stdin:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.ui.dialog", kind],
                env=self.trace.env(desk),
                cwd=ROOT,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        self.ready: dict[str, Any] = {}
        self.window = ""

    def show(self, title: str) -> Dialog:
        """Wait until the window titled ``TITLE_PREFIX + title`` is shown and has said it is ready."""
        self.ready = self.trace.wait("ready")
        assert self.ready["title"] == TITLE_PREFIX + title
        self.window = self.desktop.wait_window(re.escape(title) + "$")
        return self

    def key(self, *keys: str) -> None:
        self.desktop.key(self.window, *keys)

    def click(self, button: str) -> None:
        self.desktop.click(*center(self.ready["buttons"][button]))

    def running(self) -> bool:
        return self.proc.poll() is None

    def result(self, timeout: float = 10) -> tuple[int, dict[str, Any] | None, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, json.loads(out) if out.strip() else None, err.decode()

    def close(self) -> None:
        if self.running():
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def open_dialog(desktop: Desktop, tmp_path: Path) -> Iterator[Callable[[str, dict[str, Any]], Dialog]]:
    started: list[Dialog] = []

    def start(kind: str, request: dict[str, Any]) -> Dialog:
        started.append(Dialog(desktop, tmp_path, kind, request))
        return started[-1]

    yield start
    for d in started:
        d.close()


class InThread:
    """Run a blocking client call (as the tray does from a worker thread); :meth:`join` gives its result."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.value = call()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, name="dialog-client")
        self.thread.start()

    def join(self, timeout: float = 25) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the dialog client call did not return"
        if self.error is not None:
            raise self.error
        return self.value


# ---------------------------------------------------------------- confirm


CONFIRM = {"title": "Add sessions", "text": "Add 3 sessions back into opencode?", "ok": "Add 3 sessions"}


def test_confirm_enter_cancels(desktop: Desktop, open_dialog: Callable[..., Dialog]) -> None:
    d = open_dialog("confirm", CONFIRM).show("Add sessions")
    assert d.ready["focus"] == "Cancel"  # Cancel is the default and has the focus
    assert list(d.ready["buttons"]) == ["Cancel", "Add 3 sessions"]
    desktop.shot("confirm.png", d.window)
    d.key("Return")
    assert d.result()[:2] == (1, {"cancelled": True})


def test_confirm_tab_to_ok_then_enter(open_dialog: Callable[..., Dialog]) -> None:
    d = open_dialog("confirm", CONFIRM).show("Add sessions")
    d.key("Tab", "Return")  # Enter presses the focused button
    assert d.result()[:2] == (0, {"ok": True})


def test_confirm_click_ok_through_the_client(desktop: Desktop, tmp_path: Path) -> None:
    trace = Trace(tmp_path / "trace.jsonl")
    host = trace.host(desktop)
    call = InThread(lambda: host.confirm("Add sessions", "Add 3?", "Add 3 sessions"))
    try:
        ready = trace.wait("ready")
        assert ready["title"] == TITLE_PREFIX + "Add sessions"
        desktop.click(*center(ready["buttons"]["Add 3 sessions"]))
    finally:
        assert call.join() is True


def test_confirm_escape_through_the_client_is_false(desktop: Desktop, tmp_path: Path) -> None:
    trace = Trace(tmp_path / "trace.jsonl")
    host = trace.host(desktop)
    call = InThread(lambda: host.confirm("Add sessions", "Add 3?", "Add"))
    try:
        trace.wait("ready")
        desktop.key(desktop.wait_window("Add sessions$"), "Escape")
    finally:
        assert call.join() is False


def test_strong_confirm_needs_replace_typed(desktop: Desktop, open_dialog: Callable[..., Dialog]) -> None:
    request = {"title": "Replace everything", "text": "Replace all of opencode's sessions with the backup?",
               "ok": "Replace everything", "strong": True}  # fmt: skip
    d = open_dialog("confirm", request).show("Replace everything")
    assert d.ready["focus"] == "entry"
    d.click("Replace everything")  # disabled: nothing happens
    d.key("Return")  # the word is not typed: nothing happens
    desktop.type(d.window, "REPL")
    d.key("Return")
    assert d.trace.events("ok_enabled") == []
    desktop.type(d.window, "ACE")
    d.trace.wait("ok_enabled", lambda e: e["enabled"] is True)
    # the keys are handled in order: had an earlier Return or the click accepted, it would have exited
    assert d.running()
    desktop.shot("confirm_strong.png", d.window)
    d.key("Return")
    assert d.result()[:2] == (0, {"ok": True})


# ---------------------------------------------------------------- pick


def test_pick_filter_keeps_hidden_selection(desktop: Desktop, open_dialog: Callable[..., Dialog]) -> None:
    """Documented behaviour: rows hidden by the filter stay selected and are restored; "Select
    missing" adds the visible missing rows to the selection; ids come back in list order."""
    d = open_dialog("pick", {"sessions": SESSIONS, "allow_replace": True}).show("Restore sessions")
    assert d.ready["focus"] == "filter"
    assert list(d.ready["buttons"]) == ["Select missing", "Replace everything…", "Cancel", "Restore selected"]
    assert d.ready["cells"]["ses_a1"][3] == "12" and d.ready["cells"]["ses_b2"][3] == "1"  # its versions
    first = d.trace.wait("selection")
    assert first["count"] == "0 of 5 sessions selected"
    assert first["visible"] == [s["id"] for s in SESSIONS]

    desktop.click(*center(d.ready["checks"]["ses_a1"]))  # check one row by its box
    d.trace.wait("selection", lambda e: e["ids"] == ["ses_a1"])

    d.key("alt+f")  # back to the filter box
    desktop.type(d.window, "API")  # matches titles and directories, any case
    sel = d.trace.wait("selection", lambda e: e["visible"] == ["ses_b2", "ses_d4", "ses_e5"])
    assert sel["ids"] == ["ses_a1"]  # hidden by the filter, still selected
    assert sel["count"] == "1 of 5 sessions selected (1 not shown by the filter) · showing 3"

    d.click("Select missing")
    sel = d.trace.wait("selection", lambda e: len(e["ids"]) == 3)
    assert sel["ids"] == ["ses_a1", "ses_b2", "ses_e5"]  # not ses_c3: missing, but filtered out
    assert sel["count"].startswith("3 of 5 sessions selected")
    desktop.shot("picker.png", d.window)
    d.key("Return")
    assert d.result()[:2] == (0, {"ids": ["ses_a1", "ses_b2", "ses_e5"], "replace_all": False})


def test_pick_enter_needs_a_selection_and_escape_cancels(open_dialog: Callable[..., Dialog]) -> None:
    d = open_dialog("pick", {"sessions": SESSIONS, "allow_replace": False}).show("Restore sessions")
    assert "Replace everything…" not in d.ready["buttons"]
    d.key("Return")  # "Restore selected" is disabled: nothing happens
    d.key("w", "e", "b")
    d.trace.wait("selection", lambda e: e["visible"] == ["ses_a1", "ses_c3"])
    assert d.running()
    d.key("Escape")
    assert d.result()[:2] == (1, {"cancelled": True})


def test_pick_replace_everything(open_dialog: Callable[..., Dialog]) -> None:
    d = open_dialog("pick", {"sessions": SESSIONS, "allow_replace": True}).show("Restore sessions")
    d.click("Replace everything…")
    assert d.result()[:2] == (0, {"ids": [], "replace_all": True})


def test_pick_keyboard_through_the_client(desktop: Desktop, tmp_path: Path) -> None:
    trace = Trace(tmp_path / "trace.jsonl")
    rows = [
        SessionRow(
            s["id"], s["title"], "p1", s["directory"], datetime.fromisoformat(s["time_updated"]), 1234,
            s["in_opencode"], in_backup=True,
        )
        for s in SESSIONS
    ]  # fmt: skip
    host = trace.host(desktop)
    call = InThread(lambda: host.pick_sessions(rows))
    try:
        trace.wait("ready")
        window = desktop.wait_window("Restore sessions$")
        desktop.key(window, "Down", "space", "Down", "Down", "space")  # into the list, toggle rows 1 and 3
        trace.wait("selection", lambda e: e["ids"] == ["ses_a1", "ses_c3"])
        desktop.key(window, "Return")
    finally:
        assert call.join() == ["ses_a1", "ses_c3"]


def test_pick_empty_backup(open_dialog: Callable[..., Dialog]) -> None:
    d = open_dialog("pick", {"sessions": [], "allow_replace": True}).show("Restore sessions")
    assert list(d.ready["buttons"]) == ["Cancel"]
    d.key("Return")
    assert d.result()[:2] == (1, {"cancelled": True})


# ---------------------------------------------------------------- message and folder


@pytest.mark.parametrize(("error", "key"), [(False, "Return"), (True, "Escape")])
def test_message(desktop: Desktop, open_dialog: Callable[..., Dialog], error: bool, key: str) -> None:
    d = open_dialog("message", {"title": "Restored", "text": "3 sessions restored.", "error": error})
    d.show("Restored")
    assert d.ready["focus"] == "OK"
    if error:
        desktop.shot("message_error.png", d.window)
    d.key(key)
    assert d.result()[:2] == (0, {"ok": True})


def test_folder_typed_path(desktop: Desktop, open_dialog: Callable[..., Dialog], tmp_path: Path) -> None:
    start, target = tmp_path / "start", tmp_path / "Google Drive" / "backups"
    start.mkdir()
    target.mkdir(parents=True)
    d = open_dialog("folder", {"initial": str(start), "title": "Choose the backup folder"})
    d.show("Choose the backup folder")
    assert d.ready["focus"].endswith(".ent")  # the directory dialog's path entry has the focus
    desktop.shot("folder.png", d.window)
    desktop.type(d.window, str(target))  # replaces the selected start path
    d.key("Return", "Return")  # Tk's dialog: the first Enter opens the folder, the second chooses it
    assert d.result()[:2] == (0, {"path": str(target), "remote": None})


def test_folder_offers_the_google_drive_folders_first(
    desktop: Desktop, open_dialog: Callable[..., Dialog], tmp_path: Path
) -> None:
    """Several Google Drive accounts: each one's folder is a button; "Other folder…" opens the directory
    dialog as before."""
    drives = [
        str(tmp_path / "G" / "My Drive" / "opencode-sessions"),
        str(tmp_path / "H" / "Mi unidad" / "opencode-sessions"),
    ]
    request = {"title": "Choose the backup folder", "initial": str(tmp_path), "suggestions": drives}
    d = open_dialog("folder", request).show("Choose the backup folder")
    assert d.ready["focus"] == drives[0] and {*drives, "Other folder…", "Cancel"} == set(d.ready["buttons"])
    desktop.shot("folder_suggestions.png", d.window)
    d.click(drives[1])
    assert d.result()[:2] == (0, {"path": drives[1], "remote": None})
    d = open_dialog("folder", request).show("Choose the backup folder")
    d.click("Other folder…")
    wait_for(lambda: len(d.trace.events("ready")) == 2, 15, what="the directory dialog")
    d.window = desktop.wait_window("Choose the backup folder$")
    d.key("Escape")
    assert d.result()[:2] == (1, {"cancelled": True})


def test_folder_offers_the_users_rclone_remotes_and_a_folder_on_them(
    desktop: Desktop, open_dialog: Callable[..., Dialog], tmp_path: Path
) -> None:
    """With no Google Drive here but rclone remotes: "An rclone remote…" leads to one button per remote,
    under the folder on it to back up into."""
    request = {"title": "Choose the backup folder", "initial": str(tmp_path), "remotes": ["gdrive", "nas"]}
    d = open_dialog("folder", request).show("Choose the backup folder")
    assert d.ready["focus"] == "An rclone remote…"
    assert {"An rclone remote…", "Other folder…", "Cancel"} == set(d.ready["buttons"])
    d.key("Return")
    wait_for(lambda: len(d.trace.events("ready")) == 2, 15, what="the remotes")
    d.window = desktop.wait_window("Choose the backup folder$")
    remotes = d.trace.events("ready")[-1]
    assert remotes["focus"] == "gdrive:" and {"gdrive:", "nas:", "Cancel"} == set(remotes["buttons"])
    desktop.shot("folder_remotes.png", d.window)
    desktop.key(d.window, "shift+Tab")  # back to the folder entry, its text selected (ttk's traversal)
    desktop.type(d.window, "backups/opencode")
    desktop.key(d.window, "Tab")
    desktop.key(d.window, "Tab")  # the second remote
    d.key("Return")
    assert d.result()[:2] == (0, {"path": None, "remote": "rclone:nas:backups/opencode"})


def test_folder_escape_through_the_client(desktop: Desktop, tmp_path: Path) -> None:
    trace = Trace(tmp_path / "trace.jsonl")
    host = trace.host(desktop, timeout=None)
    call = InThread(lambda: host.choose_folder(tmp_path, "Choose the backup folder"))
    try:
        trace.wait("ready")
        desktop.key(desktop.wait_window("Choose the backup folder$"), "Escape")
    finally:
        assert call.join() is None


# ---------------------------------------------------------------- status


def test_status_window_updates_in_place(desktop: Desktop, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    write = StatusFile(state_dir)
    synced = datetime.now(UTC) - timedelta(hours=3)
    ok = {"last_attempt": synced, "last_backup": synced, "last_outcome": Outcome.OK}
    write(Status(ServiceState.IDLE, pid=4242, sessions=1812, syncs=3, **ok))  # type: ignore[arg-type]
    trace = Trace(tmp_path / "trace.jsonl")
    proc = trace.host(desktop).open_status(state_dir, Path("/backups/opencode"))
    try:
        first = trace.wait("rows")
        rows = dict(map(tuple, first["rows"]))
        assert rows["Backup folder"] == "/backups/opencode"
        assert rows["Sessions backed up"] == "1,812"
        assert rows["Service"] == "running (pid 4242)"
        assert first["widgets"] == 2 * len(first["rows"])
        trace.wait("ready")
        window = desktop.wait_window("Status$")
        desktop.shot("status.png", window)

        write(Status(ServiceState.IDLE, pid=4242, sessions=1900, syncs=4, **ok))  # type: ignore[arg-type]
        second = trace.wait("rows", lambda e: ["Sessions backed up", "1,900"] in e["rows"])
        assert ["Backups this session", "4"] in second["rows"]
        # same rows: the labels were updated in place, nothing added, the window did not grow
        assert (second["widgets"], second["height"]) == (first["widgets"], first["height"])

        retry = datetime.now(UTC) + timedelta(minutes=5)
        failing = Status(
            ServiceState.RETRYING, pid=4242, last_attempt=synced, last_backup=synced,
            last_outcome=Outcome.FAILED, last_kind=FailureKind.LOCKED, sessions=1900, next_retry=retry,
            failing_since=synced, last_error="file busy",
        )  # fmt: skip
        write(failing)
        third = trace.wait("rows", lambda e: ["Last error", "file busy"] in e["rows"])
        assert third["widgets"] == 2 * len(third["rows"]) > first["widgets"]  # rebuilt: more rows

        desktop.key(window, "Escape")
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def test_status_without_a_service(desktop: Desktop, tmp_path: Path) -> None:
    trace = Trace(tmp_path / "trace.jsonl")
    proc = trace.host(desktop).open_status(tmp_path / "nothing", None)
    try:
        rows = trace.wait("rows")["rows"]
        assert rows == [["Backup folder", "not chosen yet"], ["Service", "not running"]]
        trace.wait("ready")
        desktop.key(desktop.wait_window("Status$"), "Return")  # Close is the default
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


# ---------------------------------------------------------------- bad requests and failures


def _no_display_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


@pytest.mark.parametrize(
    ("kind", "stdin", "says"),
    [
        ("nope", b"{}", "usage"),
        ("confirm", b"{not json", "not valid JSON"),
        ("confirm", b"[1, 2]", "must be a JSON object"),
        ("confirm", b'{"title": "t", "ok": "OK"}', "bad confirm request: ConfirmRequest: text is missing"),
        ("confirm", b'{"text": "t", "strong": "yes"}', "ConfirmRequest.strong: expected bool"),
        ("pick", b'{"sessions": {}}', "PickRequest.sessions: expected a list"),
        ("pick", b'{"sessions": [{"id": "a"}, {"id": "a"}]}', "sessions[1]: duplicate id 'a'"),
        ("status", b'{"backup_path": null}', "StatusRequest: state_dir is missing"),
    ],
)
def test_bad_request_exits_2_without_a_window(kind: str, stdin: bytes, says: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "app.ui.dialog", kind],
        input=stdin,
        capture_output=True,
        check=False,
        env=_no_display_env(),  # checked before any window is opened
        cwd=ROOT,
        timeout=20,
    )
    err = r.stderr.decode()
    assert (r.returncode, r.stdout) == (2, b"")
    assert len(err.splitlines()) == 1 and says in err, err


def test_client_raises_dialog_error() -> None:
    refused = DialogHost(command=lambda _kind: dialog_command("nope"), timeout=20)
    with pytest.raises(DialogError, match=r"the message dialog failed \(exit 2\): dialog: usage"):
        refused.message("Refused", "text")
    with pytest.raises(DialogError, match=r"exit 3.*cannot open a window"):
        DialogHost(env={"DISPLAY": ""}, timeout=20).message("No display", "text")
    assert issubclass(DialogError, BackupError)


def _fake_dialog(code: str) -> DialogHost:
    """A host whose every dialog is ``python -c code`` instead of a window."""
    return DialogHost(command=lambda _kind: [sys.executable, "-c", code], timeout=20)


def _answering(answer: str, exit_code: int = 0) -> DialogHost:
    """A host whose every dialog prints ``answer`` and exits with ``exit_code``."""
    return _fake_dialog(f"import sys; print({answer!r}); sys.exit({exit_code})")


@pytest.mark.parametrize(
    ("host", "says"),
    [
        # exit 1 without the cancel answer: not a cancel
        (_fake_dialog("import sys; sys.exit(1)"), r"no answer \(exit 1\)"),
        (_fake_dialog("raise SystemExit('boom')"), r"no answer \(exit 1\): boom"),
        (_answering("{}", exit_code=1), r"no answer \(exit 1\)"),
        (_answering("not json"), r"no usable answer \(exit 0\): not valid JSON.*its output was 'not json'"),
        (_fake_dialog("import os; os.kill(os.getpid(), 9)"), r"exit -9\): killed by signal 9"),
        # an empty or cut-off answer never counts as a yes
        (_answering("{}"), r"no usable answer \(exit 0\): Done: ok is missing"),
        (_answering('{"ok": "yes"}'), r"Done\.ok: expected bool"),
    ],
)
def test_client_treats_a_crash_as_an_error(host: DialogHost, says: str) -> None:
    with pytest.raises(DialogError, match=says):
        host.confirm("Replace everything", "?", "Replace everything", strong=True)


def test_client_reads_the_answers_the_protocol_defines() -> None:
    """The other side of the crash cases above: the same fake dialogs, answering properly."""
    assert _answering('{"ok": true}').confirm("t", "?", "OK") is True
    assert _answering('{"cancelled": true}', exit_code=1).confirm("t", "?", "OK") is False
    assert _answering('{"ids": ["b", "a"], "replace_all": false}').pick_sessions([]) == ["b", "a"]
    everything = _answering('{"ids": [], "replace_all": true}')
    assert everything.pick_sessions([]) == "replace_all"
    with pytest.raises(DialogError, match="did not offer"):
        everything.pick_sessions([], allow_replace=False)
    assert _answering('{"path": "/srv/backups"}').choose_folder(None, "t") == Path("/srv/backups")
    assert _answering('{"path": "/g/x"}').choose_folder(None, "t", [Path("/g/x"), Path("/h/x")]) == Path(
        "/g/x"
    )
    with pytest.raises(DialogError, match="no absolute path"):
        _answering('{"path": "backups"}').choose_folder(None, "t")
    remote = '{"path": null, "remote": "rclone:nas:opencode-sessions"}'
    assert _answering(remote).choose_folder(None, "t", remotes=["nas"]) == "rclone:nas:opencode-sessions"
    with pytest.raises(DialogError, match="a remote not offered"):
        _answering(remote).choose_folder(None, "t", remotes=["gdrive"])


def test_the_request_reaches_the_dialog_on_its_stdin(tmp_path: Path) -> None:
    """The fake dialog copies its stdin to a file: what the host sends is the typed request as JSON."""
    seen = tmp_path / "request.json"
    copy = f"import pathlib, sys; pathlib.Path({str(seen)!r}).write_bytes(sys.stdin.buffer.read())"
    host = _fake_dialog(copy + "; print('{\"ok\": true}')")
    assert host.confirm("Add", "Add 3?", "Add 3 sessions", strong=True) is True
    sent = {"text": "Add 3?", "title": "Add", "ok": "Add 3 sessions", "strong": True}
    assert json.loads(seen.read_text()) == sent


def test_close_all_closes_open_dialogs_as_cancelled(desktop: Desktop, tmp_path: Path) -> None:
    trace = Trace(tmp_path / "trace.jsonl")
    host = trace.host(desktop)
    call = InThread(lambda: host.confirm("Closed on quit", "?", "OK"))
    try:
        trace.wait("ready")
        host.close_all()  # the tray's Quit
    finally:
        assert call.join() is False
    assert desktop.windows("Closed on quit$") == []


def test_close_all_for_good_refuses_later_dialogs_of_that_host_only(tmp_path: Path) -> None:
    started: list[str] = []

    def command(kind: str) -> list[str]:
        started.append(kind)
        return [sys.executable, "-c", "print('{\"ok\": true}')"]

    quitting, other = DialogHost(command=command, timeout=20), DialogHost(command=command, timeout=20)
    quitting.close_all(for_good=True)
    assert quitting.confirm("After quit", "?", "OK") is False  # as if cancelled, and no process started
    assert quitting.pick_sessions([]) is None
    assert started == []
    assert other.confirm("Another host", "?", "OK") is True  # the state is the host's, not the module's
    assert started == ["confirm"]


def test_client_timeout_closes_the_dialog(desktop: Desktop) -> None:
    with pytest.raises(DialogError, match=r"no answer within 1\.5 s"):
        DialogHost(env=desktop.env, timeout=1.5).message("Never answered", "text")
    assert desktop.windows("Never answered$") == []


def test_a_catalog_with_a_session_twice_is_refused_before_any_window() -> None:
    when = datetime(2026, 11, 29, tzinfo=UTC)
    row = SessionRow("ses_a", "t", "p", "/d", when, 1, True, in_backup=True)
    host = _fake_dialog("raise SystemExit('must not start')")
    with pytest.raises(DialogError, match=r"cannot show the picker: .*duplicate id 'ses_a'"):
        host.pick_sessions([row, row])
