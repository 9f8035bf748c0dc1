"""A real, private Linux desktop for the tray, dialog and notification tests.

Xvfb (its own display number), a private D-Bus session bus, trayer (an XEmbed system tray host) and
dunst (the notification daemon) — started once per test module by the ``desktop`` fixture. Helpers
drive it with xdotool and read it back with ImageMagick ``import`` and ``dunstctl``. Screenshots go to
``$SCREENSHOTS_DIR`` when set (the README's pictures come from there), else to the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
# Each is in .ci/tools (tests/test_ci_tools.py checks): `make test` installs and checks them before pytest.
TOOLS = ("Xvfb", "xdotool", "import", "trayer", "dunst", "dunstctl", "dbus-daemon", "xdpyinfo")
SCREEN = "1024x768x24"


def wait_for(pred: Callable[[], T], timeout: float = 15.0, step: float = 0.1, what: str = "condition") -> T:
    """Poll ``pred`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


@dataclass
class Desktop:
    """The running desktop: ``env`` has DISPLAY and DBUS_SESSION_BUS_ADDRESS for child processes."""

    env: dict[str, str]
    shots: Path
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _skip: int = 0  # notifications shown before the last clear_notifications()

    def run(self, *cmd: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(cmd), check=False, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def xdo(self, *args: str) -> str:
        return self.run("xdotool", *args).stdout

    def windows(self, name: str, visible: bool = True) -> list[str]:
        """Ids of the windows whose title matches the regex ``name``."""
        return self.xdo("search", *(["--onlyvisible"] if visible else []), "--name", name).split()

    def geometry(self, window: str) -> dict[str, int]:
        out = self.xdo("getwindowgeometry", "--shell", window)
        return {k: int(v) for k, v in (line.split("=") for line in out.split()) if k != "SCREEN"}

    def wait_window(self, name: str, timeout: float = 20.0) -> str:
        """The id of the first visible window titled ``name`` (a regex), once it is mapped."""
        return wait_for(lambda: (self.windows(name) or [None])[0], timeout, what=f"a window named {name!r}")

    def click(self, x: int, y: int, button: int = 1) -> None:
        """Move there in two steps (GTK menus want motion before a click), then click."""
        self.xdo("mousemove", "--sync", str(x - 4), str(y - 2), "mousemove", "--sync", str(x), str(y))
        self.xdo("click", str(button))

    def key(self, window: str, *keys: str) -> None:
        """Focus ``window`` and type the keys (xdotool key names: Return, Escape, Tab, ctrl+a ...)."""
        self.xdo("windowactivate", "--sync", window)
        self.xdo("windowfocus", "--sync", window)
        time.sleep(0.1)
        self.xdo("key", "--clearmodifiers", *keys)

    def type(self, window: str, text: str) -> None:
        self.xdo("windowfocus", "--sync", window)
        self.xdo("type", "--delay", "20", text)

    def shot(self, name: str, window: str = "root") -> Path:
        path = self.shots / name
        subprocess.run(["import", "-window", window, str(path)], env=self.env, check=True, timeout=20)
        return path

    def tray_icon_box(self) -> tuple[int, int, int, int]:
        """x, y, width, height of trayer's panel (the only docked icon fills it)."""
        wid = wait_for(lambda: (self.windows("^panel$", visible=False) or [None])[0], what="trayer's panel")
        g = self.geometry(wid)
        return g["X"], g["Y"], g["WIDTH"], g["HEIGHT"]

    def icon_docked(self) -> bool:
        """True when some icon is docked in trayer (its panel grows from nothing to the icon's width)."""
        _x, _y, w, _h = self.tray_icon_box()
        return w >= 16

    def displayed(self) -> int:
        """How many notifications dunst shows on screen now."""
        out = self.run("dunstctl", "count", "displayed").stdout.strip()
        return int(out) if out.isdigit() else 0

    def notifications(self) -> list[tuple[str, str, str]]:
        """(app name, summary, body) of every notification dunst has shown, oldest first."""
        self.run("dunstctl", "close-all")
        time.sleep(0.3)
        data = json.loads(self.run("dunstctl", "history").stdout or '{"data": [[]]}')["data"][0]
        shown = [(n["appname"]["data"], n["summary"]["data"], n["body"]["data"]) for n in data]
        return list(reversed(shown))[self._skip :]

    def clear_notifications(self) -> None:
        """From now on :meth:`notifications` lists only newer ones (dunst 1.9 cannot clear its history)."""
        self._skip = 0
        self._skip = len(self.notifications())


def trace_events(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a dialog process writes when OPENCODE_BACKUP_DIALOG_TRACE names ``path``."""
    events = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):  # skip a line being written right now
                events.append(json.loads(line))
    return events


def pixels(path: Path) -> list[tuple[int, int, int]]:
    """Every pixel of an image file, row by row (Pillow)."""
    from PIL import Image

    with Image.open(path) as img:
        return list(img.convert("RGB").getdata())


def _start_xvfb(log: object) -> tuple[subprocess.Popen[bytes], str]:
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", SCREEN, "-nolisten", "tcp", "-noreset"],
        pass_fds=(w,),
        stdout=log,  # type: ignore[arg-type]
        stderr=log,  # type: ignore[arg-type]
    )
    os.close(w)
    buf = b""  # Xvfb writes the number and the newline in two writes: read up to the newline
    while not buf.endswith(b"\n"):
        chunk = os.read(r, 16)
        if not chunk:
            raise AssertionError("Xvfb exited before reporting its display")
        buf += chunk
    os.close(r)
    return proc, ":" + buf.decode().strip()


@contextlib.contextmanager
def start_desktop(base: Path) -> Iterator[Desktop]:
    """Xvfb + a private session bus + trayer + dunst, logging into ``base``; stopped on exit."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    assert not missing, (
        f"desktop test tools missing: {', '.join(missing)}; 'bash .ci/check-tools' names each one's package"
    )
    shots = Path(os.environ.get("SCREENSHOTS_DIR") or base / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    log_path = base / "desktop.log"
    log = open(log_path, "w")  # noqa: SIM115 - open for the desktop's whole life
    procs: list[subprocess.Popen[bytes]] = []
    try:
        xvfb, display = _start_xvfb(log)
        procs.append(xvfb)
        bus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"], stdout=subprocess.PIPE
        )
        procs.append(bus)
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()
        bus.stdout.close()
        env = dict(os.environ, DISPLAY=display, DBUS_SESSION_BUS_ADDRESS=address, NO_AT_BRIDGE="1")
        env.pop("PYSTRAY_BACKEND", None)
        env.pop("WAYLAND_DISPLAY", None)
        d = Desktop(env, shots, log_path, procs)
        wait_for(lambda: d.run("xdpyinfo").returncode == 0, what=f"Xvfb on {display}")
        trayer = [
            "trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32",
            "--transparent", "false", "--tint", "0x404040", "--SetDockType", "true",
        ]  # fmt: skip
        procs.append(subprocess.Popen(trayer, env=env, stdout=log, stderr=log))
        procs.append(subprocess.Popen(["dunst"], env=env, stdout=log, stderr=log))
        wait_for(lambda: d.windows("^panel$", visible=False), what="trayer's panel")
        wait_for(lambda: d.run("dunstctl", "is-paused").returncode == 0, what="dunst on the bus")
        yield d
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


@pytest.fixture(scope="module")
def desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desktop]:
    """The test desktop, for one test module."""
    with start_desktop(tmp_path_factory.mktemp("desktop")) as d:
        yield d
