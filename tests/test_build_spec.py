"""What each OS's installed build is made of, read as data on any OS: build/opencode-backup.spec runs here
with stand-ins for PyInstaller's building blocks that record what they are given, as it would on Windows,
macOS and Linux. (tests/test_dist.py builds and runs the real Linux one.)"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import plistlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

from app import assets
from app.platform import autostart, autostart_mac
from app.ui import dialogs
from app.ui.icons import State, render

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "build" / "opencode-backup.spec"


@dataclass
class Recorded:
    """Every building block the spec made, with the keyword arguments it was given."""

    analysis: dict[str, Any] = field(default_factory=dict)
    exes: list[dict[str, Any]] = field(default_factory=list)
    collect: dict[str, Any] = field(default_factory=dict)
    collected: tuple[Any, ...] = ()
    bundle: dict[str, Any] | None = None
    binaries_kept: list[str] = field(default_factory=list)


# What PyInstaller's analysis finds on Linux, in part: GLib and friends must be left to the system,
# Python's own libraries and Pillow's renamed private copies stay.
FOUND_BINARIES = [
    ("libpython3.11.so.1.0", "/x/libpython3.11.so.1.0", "BINARY"),
    ("libssl.so.3", "/x/libssl.so.3", "BINARY"),
    ("libsqlite3.so.0", "/x/libsqlite3.so.0", "BINARY"),
    ("libtk8.6.so", "/x/libtk8.6.so", "BINARY"),
    ("pillow.libs/libzstd-40ad5e7e.so.1.5.7", "/x/libzstd-40ad5e7e.so.1.5.7", "BINARY"),
    ("libglib-2.0.so.0", "/x/libglib-2.0.so.0", "BINARY"),
    ("libgirepository-1.0.so.1", "/x/libgirepository-1.0.so.1", "BINARY"),
    ("libdbus-1.so.3", "/x/libdbus-1.so.3", "BINARY"),
    ("libzstd.so.1", "/x/libzstd.so.1", "BINARY"),
    ("libstdc++.so.6", "/x/libstdc++.so.6", "BINARY"),
    ("libX11.so.6", "/x/libX11.so.6", "BINARY"),
]


def run_spec(platform: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Recorded, ModuleType]:
    """Execute the spec as PyInstaller would for ``platform``; returns what it built and build/dist.py."""
    rec = Recorded()

    class Analysis:
        def __init__(self, scripts: list[str], **kw: Any) -> None:
            rec.analysis = {"scripts": scripts, **kw}
            self.scripts, self.pure, self.datas = ["script"], ["pure"], ["datas"]
            self.binaries = list(FOUND_BINARIES)

    def exe(*args: Any, **kw: Any) -> dict[str, Any]:
        kw["options"] = [name for name, _value, kind in args[2] if kind == "OPTION"]
        rec.exes.append(kw)
        return kw

    def collect(*args: Any, **kw: Any) -> str:
        rec.collect, rec.collected = kw, args
        rec.binaries_kept = [name for name, _src, _kind in args[-2]]
        return "folder"

    def bundle(folder: str, **kw: Any) -> None:
        assert folder == "folder"
        rec.bundle = kw

    monkeypatch.setattr(sys, "argv", [str(SPEC), "--platform", platform])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "dist", raising=False)
    namespace = {
        "SPECPATH": str(SPEC.parent),
        "Analysis": Analysis,
        "PYZ": lambda *a, **k: "pyz",
        "EXE": exe,
        "COLLECT": collect,
        "BUNDLE": bundle,
    }
    exec(compile(SPEC.read_text(), str(SPEC), "exec"), namespace)
    return rec, sys.modules["dist"]


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield lambda platform: run_spec(platform, tmp_path, monkeypatch)


def test_windows_gets_a_windowed_tray_beside_a_console_cli(spec: Any) -> None:
    rec, _dist = spec("win32")
    programs = {exe["name"]: exe["console"] for exe in rec.exes}
    assert programs == {"opencode-backup-tray": False, "opencode-backup": True}
    # the windowed one is the one the login entry starts (app.platform.autostart chooses it when frozen)
    assert autostart.GUI_SCRIPT_NAME == "opencode-backup-tray" and autostart.SCRIPT_NAME == "opencode-backup"
    assert rec.collected[:2] == tuple(rec.exes)  # both share one folder of libraries
    icons = {exe["icon"] for exe in rec.exes}
    assert icons == {str(assets.icon_dir() / assets.ico_name(assets.APP_ICON))}
    with Image.open(icons.pop()) as ico:
        assert (256, 256) in ico.info["sizes"]
    assert rec.bundle is None
    assert "plyer.platforms.win.notification" in rec.analysis["hiddenimports"]
    assert rec.binaries_kept == [name for name, _s, _k in FOUND_BINARIES]  # nothing left to a system


def test_macos_gets_a_menu_bar_app_with_its_icns_icon(spec: Any, tmp_path: Path) -> None:
    rec, dist = spec("darwin")
    assert [(exe["name"], exe["console"]) for exe in rec.exes] == [("opencode-backup", False)]
    assert rec.bundle is not None
    assert rec.bundle["name"] == "opencode-session-backup.app"
    plist = rec.bundle["info_plist"]
    assert plist["LSUIElement"] is True  # no Dock icon: it lives in the menu bar only
    assert plist["CFBundleShortVersionString"] == dist.project_version()
    assert rec.bundle["bundle_identifier"] == autostart_mac.LABEL  # the login agent's label, too
    plistlib.dumps(plist)  # every value is one a plist can hold
    icns = Path(rec.bundle["icon"])
    assert icns == assets.icon_dir() / assets.icns_name(assets.APP_ICON)  # assets/ is the artwork's home
    with Image.open(icns) as image:
        assert image.format == "ICNS" and image.size == (1024, 1024)
        image.load()
        assert image.convert("RGBA").tobytes() == render(State.UP_TO_DATE, 1024).tobytes()
    assert not rec.exes[0]["strip"]  # stripping after signing breaks the signature


def test_linux_gets_one_folder_that_leaves_gtk_to_the_desktop(spec: Any) -> None:
    rec, _dist = spec("linux")
    assert [(exe["name"], exe["console"]) for exe in rec.exes] == [("opencode-backup", True)]
    assert rec.bundle is None
    assert rec.binaries_kept == [
        "libpython3.11.so.1.0",
        "libssl.so.3",
        "libsqlite3.so.0",
        "libtk8.6.so",
        "pillow.libs/libzstd-40ad5e7e.so.1.5.7",
    ]
    assert "gi.repository.Gtk" in rec.analysis["excludes"]  # GTK is the desktop's, not copied in
    assert {"gi.overrides.Gtk", "gi.overrides.GLib", "plyer.platforms.linux.notification"} <= set(
        rec.analysis["hiddenimports"]
    )
    assert rec.exes[0]["strip"] and rec.collect["strip"]


@pytest.mark.parametrize("platform", ["linux", "win32", "darwin"])
def test_every_build_has_the_dialogs_and_the_icons(spec: Any, platform: str) -> None:
    rec, _dist = spec(platform)
    assert rec.analysis["scripts"] == [str(ROOT / "app" / "__main__.py")]  # the entry that answers -m
    hidden = rec.analysis["hiddenimports"]
    assert dialogs.MODULE in hidden and "tkinter" in hidden  # started by name, so invisible to the scan
    assert (str(assets.icon_dir()), "app/assets/icons") in rec.analysis["datas"]
    assert {"zstandard.backend_cffi", "zstandard._cffi"} <= set(rec.analysis["excludes"])
    # output piped to another program is UTF-8 everywhere (Windows' ANSI code page cannot encode "✗")
    assert all(exe["options"] == ["X utf8_mode=1"] for exe in rec.exes)


def test_every_declared_module_exists(spec: Any) -> None:
    """A misspelt hidden import is silently skipped by PyInstaller; each one here names a real module."""
    names: set[str] = set()
    for platform in ("linux", "win32", "darwin"):
        rec, _dist = spec(platform)
        names |= set(rec.analysis["hiddenimports"])
    missing = [name for name in sorted(names) if not module_exists(name)]
    assert not missing


def module_exists(name: str) -> bool:
    """True when ``name`` can be found, without importing it or its packages (pystray's needs a display);
    the app's own through the import system (its icons' package is mapped onto assets/ by setup.py)."""
    if name.split(".", maxsplit=1)[0] == "app":
        return importlib.util.find_spec(name) is not None
    parts = name.split(".")
    spec = importlib.machinery.PathFinder.find_spec(parts[0])
    for i in range(1, len(parts)):
        if spec is None or not spec.submodule_search_locations:
            return False
        spec = importlib.machinery.PathFinder.find_spec(
            ".".join(parts[: i + 1]), spec.submodule_search_locations
        )
    return spec is not None


def test_the_excluded_modules_are_ones_the_app_does_without(spec: Any) -> None:
    """zstandard runs on its C backend, and the icons are drawn and written with Pillow's optional C
    modules blocked (a fresh interpreter, as in the build)."""
    rec, _dist = spec("linux")
    blocked = [n for n in rec.analysis["excludes"] if n.split(".")[0] in ("zstandard", "PIL", "cffi")]
    assert "PIL._avif" in blocked and "zstandard.backend_cffi" in blocked
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in BLOCKED: raise ImportError('excluded from the build: ' + name)\n"
        f"BLOCKED = {blocked!r}\n"
        "sys.meta_path.insert(0, Block())\n"
        "import io, zstandard\n"
        "from PIL import Image\n"
        "from app.ui.icons import State, render\n"
        "assert zstandard.backend == 'cext', zstandard.backend\n"
        "for state in State:\n"
        "    for fmt in ('PNG', 'ICO'): render(state, 64).save(io.BytesIO(), fmt)\n"
        "with Image.open(sys.argv[1]) as png: png.load()\n"
        "print('ok')\n"
    )
    png = assets.icon_dir() / assets.png_name(State.FAILED.value, 22)
    done = subprocess.run(
        [sys.executable, "-c", code, str(png)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
