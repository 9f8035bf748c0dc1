"""The recovery key window of Encrypt backups… on a real X server, as the tray starts it: Encrypt stays
disabled until "I have stored the recovery key" is checked, Copy puts the key on the X clipboard, Save…
writes a 0600 file that the standard age tool decrypts with, and all of it works from the keyboard. Also
the status window's "Encryption: Encrypted (age)" row. Driven with xdotool; the tests wait for the
dialog's trace events (tests/test_ui_dialog.py), never for a fixed time.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app.crypt import age
from app.service.status import ServiceState, Status, StatusFile
from app.ui.dialog.protocol import TITLE_PREFIX
from app.ui.dialog.recovery import COPIED, FILE_NAME
from app.ui.flows import RECOVERY_TEXT
from tests.desktop import Desktop, wait_for
from tests.test_ui_dialog import Dialog, InThread, Trace, center

TITLE = "Encrypt backups"
AGE = "/usr/bin/age"  # Debian's age (.ci/tools); not a stand-in of the same name


@pytest.fixture
def key() -> str:
    return age.new_identity()[0]


@pytest.fixture
def recovery(
    desktop: Desktop, tmp_path: Path, key: str, isolated_home: Path
) -> Iterator[Callable[[], Dialog]]:
    """Starts the recovery window; its home folder (where Save… starts) is the test's."""
    started: list[Dialog] = []
    desk = replace(desktop, env={**desktop.env, "HOME": str(isolated_home)})

    def start() -> Dialog:
        started.append(Dialog(desk, tmp_path, "recovery", {"key": key, "text": RECOVERY_TEXT}))
        return started[-1].show(TITLE)

    yield start
    for d in started:
        d.close()


def clipboard(desk: Desktop) -> str:
    """What the X clipboard holds now ("" when nothing), read by another Tk process, as a paste into another
    program would (each test's key is new: an earlier test's cannot match)."""
    code = "import tkinter; r = tkinter.Tk(); r.withdraw(); print(r.clipboard_get(), end='')"
    out = subprocess.run(
        [sys.executable, "-c", code], env=desk.env, capture_output=True, text=True, timeout=20, check=False
    )
    return out.stdout if out.returncode == 0 else ""


def test_encrypt_waits_for_the_box_and_copy_puts_the_key_on_the_clipboard(
    desktop: Desktop, recovery: Callable[[], Dialog], key: str
) -> None:
    d = recovery()
    assert d.ready["focus"] == "Copy"
    assert list(d.ready["buttons"]) == ["Copy", "Save…", "Cancel", "Encrypt"]
    d.click("Encrypt")  # disabled: nothing happens
    d.key("alt+e")  # its accelerator rings the bell instead
    d.key("Return")  # Copy has the focus: Enter presses it
    assert d.trace.wait("said")["text"] == COPIED
    assert clipboard(desktop) == key
    assert d.running() and d.trace.events("ok_enabled") == []  # the click and Alt+E did nothing
    d.key("Tab", "Tab", "space")  # Save…, then the check box: Space checks it
    d.trace.wait("ok_enabled", lambda e: e["enabled"] is True)
    desktop.shot("recovery.png", d.window)
    d.key("space")  # unchecked again: Encrypt is disabled again
    d.trace.wait("ok_enabled", lambda e: e["enabled"] is False)
    d.key("Return")  # on the check box: Enter would press Encrypt, which is disabled
    d.key("alt+h")  # checked from anywhere
    d.trace.wait("ok_enabled", lambda e: e["enabled"] is True and len(d.trace.events("ok_enabled")) == 3)
    assert d.running()
    d.key("Return")
    assert d.result()[:2] == (0, {"ok": True})


def test_save_writes_a_0600_identity_file_that_age_decrypts_with(
    desktop: Desktop, recovery: Callable[[], Dialog], tmp_path: Path, key: str
) -> None:
    assert shutil.which("age") == AGE, "Debian's age (see .ci/tools)"
    target = tmp_path / "keys" / "recovery.txt"
    target.parent.mkdir()
    d = recovery()
    d.key("alt+s")
    dialog = d.trace.wait("ready", lambda e: e["title"] == TITLE_PREFIX + "Save the recovery key")
    assert dialog["focus"].endswith(".ent")  # the file name entry, holding the suggested name
    window = desktop.wait_window("Save the recovery key$")
    desktop.type(window, str(target))  # replaces the suggested name, which is selected
    desktop.key(window, "Return")
    said = d.trace.wait("said")["text"]
    assert said.startswith(f"Saved to {target} ")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert key in target.read_text().splitlines()

    sealed = tmp_path / "secret.age"
    sealed.write_bytes(age.encrypt(b"a session only the key opens\n", [age.public_of(key)]))
    argv = [AGE, "-d", "-i", str(target), str(sealed)]
    opened = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    assert (opened.returncode, opened.stdout) == (0, b"a session only the key opens\n"), opened.stderr

    before = target.read_bytes()
    wait_for(lambda: not desktop.windows("Save the recovery key$"), what="the save dialog to close")
    d.key("alt+s")  # again, to the same file: refused, the file kept
    wait_for(lambda: len(d.trace.events("ready")) == 3, what="the save dialog again")
    window = desktop.wait_window("Save the recovery key$")
    desktop.type(window, str(target))  # replaces the suggested name, which is selected
    desktop.key(window, "Return")
    refused = d.trace.wait("said", lambda e: e["text"].startswith("Not saved"))["text"]
    assert f"{target} exists" in refused and target.read_bytes() == before
    wait_for(lambda: not desktop.windows("Save the recovery key$"), what="the save dialog to close")
    d.key("Escape")  # Cancel: the answer says nothing was stored
    assert d.result()[:2] == (1, {"cancelled": True})


def test_save_suggests_a_file_in_the_home_folder_and_escape_there_saves_nothing(
    desktop: Desktop, recovery: Callable[[], Dialog], isolated_home: Path, key: str
) -> None:
    d = recovery()
    d.key("shift+Tab", "ctrl+c")  # the key itself is selectable: back to it from Copy, and copy it
    wait_for(lambda: clipboard(desktop) == key, what="the key selected and copied")
    d.click("Save…")
    d.trace.wait("ready", lambda e: e["title"] == TITLE_PREFIX + "Save the recovery key")
    desktop.key(desktop.wait_window("Save the recovery key$"), "Escape")
    wait_for(lambda: not desktop.windows("Save the recovery key$"), what="the save dialog to close")
    assert list(isolated_home.iterdir()) == [] and d.trace.events("said") == []
    d.key("alt+s")
    wait_for(lambda: len(d.trace.events("ready")) == 3, what="the save dialog again")
    desktop.key(desktop.wait_window("Save the recovery key$"), "Return")  # the name it suggests
    assert d.trace.wait("said")["text"].startswith(f"Saved to {isolated_home / FILE_NAME} ")
    assert key in (isolated_home / FILE_NAME).read_text().splitlines()
    wait_for(lambda: not desktop.windows("Save the recovery key$"), what="the save dialog to close")
    d.key("alt+h", "alt+e")  # back in the recovery window, from the keyboard alone
    assert d.result()[:2] == (0, {"ok": True})


def test_the_client_answers_true_only_once_the_box_is_checked(
    desktop: Desktop, tmp_path: Path, key: str
) -> None:
    trace = Trace(tmp_path / "trace.jsonl")
    host = trace.host(desktop, timeout=60)
    call = InThread(lambda: host.keep_recovery_key(RECOVERY_TEXT, key))
    try:
        ready = trace.wait("ready")
        assert ready["title"] == TITLE_PREFIX + TITLE
        desktop.key(desktop.wait_window(TITLE + "$"), "Escape")
    finally:
        assert call.join() is False
    call = InThread(lambda: host.keep_recovery_key(RECOVERY_TEXT, key))
    try:
        ready = trace.wait("ready", lambda e: len(trace.events("ready")) == 2)
        window = desktop.wait_window(TITLE + "$")
        desktop.key(window, "alt+h")
        trace.wait("ok_enabled", lambda e: e["enabled"] is True)
        desktop.click(*center(ready["buttons"]["Encrypt"]))
    finally:
        assert call.join() is True


def test_the_status_window_says_encrypted(desktop: Desktop, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    StatusFile(state_dir)(Status(ServiceState.IDLE, pid=4242, sessions=3, encrypted=True))
    trace = Trace(tmp_path / "trace.jsonl")
    proc = trace.host(desktop).open_status(state_dir, Path("/backups/laptop"))
    try:
        rows: list[Any] = trace.wait("rows")["rows"]
        assert ["Encryption", "Encrypted (age)"] in rows
        trace.wait("ready")
        desktop.key(desktop.wait_window("Status$"), "Escape")
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    assert json.loads((state_dir / "service" / "status.json").read_text())["encrypted"] is True
