"""The entry point every command and installed build starts in: dialogs reach the dialog code, everything
else the CLI, and an installed build's children start with the user's environment.

The ``opencode-backup`` console script stands in for a frozen executable here: like one, it is a program
whose own command line has no ``-m``, and it runs the same entry point. tests/test_dist.py repeats the
dialog checks with the real Linux build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from app import __version__, entry
from app.ui import dialogs

SCRIPT = Path(sys.executable).with_name("opencode-backup")
BUNDLE = "/opt/opencode-backup/_internal"


def run_script(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run(
        [str(SCRIPT), *args],
        input=stdin,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_the_tray_sends_reaches_the_dialog_code() -> None:
    """Exactly the argv after the executable that dialog_command builds: an unknown kind is the dialog's
    usage error (2), not the CLI's "invalid choice"."""
    argv = dialogs.dialog_command("no-such-kind")[1:]
    done = run_script(*argv)
    assert done.returncode == 2
    assert done.stderr.startswith("dialog: usage:"), done.stderr
    assert "invalid choice" not in done.stderr


def test_a_dialog_without_a_display_says_so_in_one_line() -> None:
    request = json.dumps({"title": "opencode session backup", "text": "hello"})
    done = run_script(*dialogs.dialog_command("message")[1:], stdin=request)
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("dialog: cannot open a window") and done.stderr.count("\n") == 1
    assert done.stdout == ""


def test_everything_else_is_the_command_line() -> None:
    assert run_script("--version").stdout.strip() == f"opencode-backup {__version__}"
    other = run_script("-m", "json.tool")  # only the dialog module is answered: no other code runs this way
    assert other.returncode == 2 and "opencode-backup" in other.stderr


def test_a_build_started_with_a_user_library_path_gives_it_back_to_its_children() -> None:
    env = {"LD_LIBRARY_PATH": f"{BUNDLE}:/home/u/lib", "LD_LIBRARY_PATH_ORIG": "/home/u/lib"}
    assert entry.frozen_environment(env, BUNDLE) == {
        "LD_LIBRARY_PATH": "/home/u/lib",
        "LD_LIBRARY_PATH_ORIG": None,
        "PYINSTALLER_RESET_ENVIRONMENT": "1",
    }


def test_a_build_started_without_one_removes_the_bootloaders() -> None:
    changes = entry.frozen_environment({"LD_LIBRARY_PATH": BUNDLE}, BUNDLE)
    assert changes["LD_LIBRARY_PATH"] is None and changes["LD_LIBRARY_PATH_ORIG"] is None


def test_a_library_path_the_bootloader_did_not_set_is_left_alone() -> None:
    """macOS and Windows builds set none; a user's own value stays as it is."""
    assert entry.frozen_environment({"LD_LIBRARY_PATH": "/home/u/lib"}, BUNDLE) == {
        "PYINSTALLER_RESET_ENVIRONMENT": "1"
    }
    assert entry.frozen_environment({}, BUNDLE) == {"PYINSTALLER_RESET_ENVIRONMENT": "1"}


def test_a_windowed_build_without_streams_writes_to_the_null_device() -> None:
    kept = sys.__stdout__
    fake = SimpleNamespace(stdin=None, stdout=kept, stderr=None)
    entry.null_missing_streams(fake)
    try:
        assert fake.stdout is kept
        fake.stderr.write("a stray line\n")  # on None: AttributeError, the tray gone at login
        assert fake.stdin.read() == ""
        assert fake.stderr.name == os.devnull
    finally:
        fake.stdin.close()
        fake.stderr.close()
