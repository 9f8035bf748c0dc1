"""``make dist``: the installed build of opencode-session-backup for the OS this runs on, into ``dist/``.

    python build/dist.py [--out DIR] [--work DIR]

PyInstaller builds it from ``build/opencode-backup.spec``, which takes its whole recipe from :func:`plan`
here, so what each OS gets is plain data that the tests read on any OS. Everything lands in ``--out``
(default ``dist/``) named with the version and platform, e.g. ``opencode-session-backup-0.1.0-linux-x86_64``:

* Linux: the one-folder bundle (``opencode-backup`` and ``_internal/``) with a ``.desktop`` file and the
  icon, as a folder and a ``.tar.gz``; and the wheel and sdist that ``pipx install`` takes.
* Windows: ``opencode-backup-tray.exe`` (windowed: the tray, its login entry and its dialogs never open a
  console window) beside ``opencode-backup.exe`` (the console CLI), as a folder and a ``.zip``.
* macOS: ``opencode-session-backup.app``, which lives in the menu bar only (no Dock icon), as a ``.zip``.

Tool scratch (PyInstaller's, setuptools') goes to ``.cache/`` (``--work``), never into ``build/``, which
holds only the files we write.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "build" / "opencode-backup.spec"
NAME = "opencode-session-backup"
CLI_NAME = "opencode-backup"  # also the login entry's and the .desktop file's command on Linux
TRAY_NAME = "opencode-backup-tray"  # Windows: the windowed one (app.platform.autostart.GUI_SCRIPT_NAME)
APP_TITLE = "opencode session backup"
BUNDLE_ID = f"com.github.{NAME}"  # the LaunchAgent's label too (app.platform.autostart_mac.LABEL)
ASSETS = ROOT / "assets"  # the artwork's one home: the icons (package data) and the Linux launcher
APP_ICON = ASSETS / "icons" / "up-to-date"  # + ".ico" / ".icns" / "-64.png" (app.assets.APP_ICON)
DESKTOP_FILE = ASSETS / f"{NAME}.desktop"


@dataclass(frozen=True)
class Executable:
    """One program in the build; ``console=False`` is a windowed program (no console window on Windows)."""

    name: str
    console: bool


@dataclass(frozen=True)
class Plan:
    """Everything the spec hands PyInstaller for one OS."""

    platform: str
    executables: tuple[Executable, ...]
    hidden_imports: tuple[str, ...]
    excludes: tuple[str, ...]
    system_libraries: tuple[str, ...]  # name prefixes of shared libraries left to the user's system
    icon: Path | None  # the executables' (Windows) or the app bundle's (macOS) icon
    datas: tuple[tuple[str, str], ...]  # (source, folder in the build)
    info_plist: dict[str, object] | None  # macOS: the .app's Info.plist entries
    bundle_name: str | None  # macOS: the .app
    strip: bool  # drop the libraries' debugging symbols (Linux: 74 MB before, 37 MB after)
    python_options: tuple[str, ...]  # the frozen interpreter's options (what -X gives python)

    def keeps_library(self, name: str) -> bool:
        """False for a shared library the build leaves to the system (by its file name)."""
        return not Path(name).name.startswith(self.system_libraries)


_GI_OVERRIDES = ("GLib", "GObject", "Gdk", "GdkPixbuf", "Gio", "GioUnix", "Gtk", "Pango", "keysyms")

# Named only as strings, so PyInstaller's import scan cannot see them: the dialog process's module
# (app.ui.dialogs starts it by name) with Tk; plyer's notification backend (plyer imports
# plyer.platforms.<os>.notification by name when the first notification is sent); pystray's backends
# (its packaging hook lists them by importing pystray, which fails on a build machine without a display).
_HIDDEN_COMMON = ("tkinter", "tkinter.ttk", "tkinter.filedialog")


def app_modules() -> tuple[str, ...]:
    """Every module of the app package. The command line imports its commands by name (so that
    ``opencode-backup mcp`` loads only its own), and the dialog process is started by name: PyInstaller's
    import scan sees neither, so all of our own modules (a few hundred KB) are declared."""
    names = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    # and the package the icons ship as (its folder is the top-level assets/icons, see setup.py)
    return (*(n for n in names if not n.endswith(".__main__")), "app.assets.icons")


_HIDDEN = {
    "linux": (
        "pystray._appindicator",
        "pystray._gtk",
        "pystray._xorg",
        "plyer.platforms.linux.notification",
        "dbus",
        *(f"gi.overrides.{name}" for name in _GI_OVERRIDES),
    ),
    "win32": ("pystray._win32", "plyer.platforms.win.notification"),
    # plyer's macOS backend needs pyobjus, which has no wheel: notifications go through pystray's own
    # (app.ui.notify falls back to it), so nothing of plyer's is declared there.
    "darwin": ("pystray._darwin",),
}

# Never loaded by the build. zstandard ships two backends of ~12 MB each and loads the C extension on
# CPython; its cffi one is dead weight. Pillow's optional C modules serve formats and features the app
# never uses (it draws shapes and writes PNG and ICO): AVIF alone brought libstdc++ along on Linux. The
# rest is Python's own test, build and doc tooling.
_EXCLUDES_COMMON = (
    "zstandard.backend_cffi",
    "zstandard._cffi",
    "_cffi_backend",
    "cffi",
    "PIL._avif",
    "PIL._webp",
    "PIL._imagingcms",
    "PIL._imagingft",
    "PIL._imagingmath",
    "PIL._imagingmorph",
    "PIL._imagingtk",
    "PIL.ImageTk",
    "PIL.ImageQt",
    "PIL.ImageCms",
    "unittest",
    "pydoc",
    "doctest",
    "lib2to3",
    "ensurepip",
    "idlelib",
    "distutils",
    "setuptools",
    "pip",
)
# Linux: the tray's GTK comes from the user's desktop, not from the build. Bundled, GTK and everything it
# loads took 219 MB (typelibs, themes, icons, ICU, librsvg), tied the build to this machine's library
# versions, and clashed with the GTK modules and themes the desktop loads into every GTK program. So the
# typelib namespaces are not collected (their hooks would copy GTK in); gi loads them from the system at
# run time, and only gi's own Python overrides travel with the build.
_GI_NAMESPACES = (
    "AppIndicator3", "Atk", "AyatanaAppIndicator3", "GLib", "GLibUnix", "GModule", "GObject", "Gdk",
    "GdkPixbuf", "GdkX11", "Gio", "GioUnix", "GioWin32", "Gtk", "HarfBuzz", "Pango", "cairo", "freetype2",
    "xlib",
)  # fmt: skip
_EXCLUDES = {
    "linux": tuple(f"gi.repository.{name}" for name in _GI_NAMESPACES),
    "win32": (),
    "darwin": (),
}

# Linux: shared libraries the desktop's own GTK loads too. The bootloader puts the build's folder first on
# the library path of the whole process, so a copy here would be loaded into the system's GTK (a GTK
# module, theme engine or input method built against newer versions then fails) and would shadow the
# system's copy for gi and dbus. Every desktop that can show a tray icon has them; the build keeps only
# libraries the desktop does not load (Python's, OpenSSL, SQLite, Tk, Pillow's renamed private copies).
_SYSTEM_LIBRARIES_LINUX = (
    # GLib, GObject introspection and what they link
    "libglib-2.0.so", "libgobject-2.0.so", "libgio-2.0.so", "libgmodule-2.0.so", "libgirepository-1.0.so",
    "libffi.so", "libpcre2-8.so", "libmount.so", "libblkid.so", "libselinux.so", "libuuid.so", "libz.so",
    # D-Bus (notifications) and what libdbus links
    "libdbus-1.so", "libsystemd.so", "libgcrypt.so", "libgpg-error.so", "libcap.so", "liblz4.so",
    "libzstd.so", "liblzma.so",
    # X11, fonts and the C++ runtime, shared by Tk and GTK
    "libX11.so", "libXau.so", "libXdmcp.so", "libXext.so", "libXrender.so", "libfontconfig.so",
    "libfreetype.so", "libpng16.so", "libexpat.so", "libbrotlicommon.so", "libbrotlidec.so", "libbsd.so",
    "libmd.so", "libstdc++.so", "libgcc_s.so",
)  # fmt: skip
_SYSTEM_LIBRARIES = {"linux": _SYSTEM_LIBRARIES_LINUX, "win32": (), "darwin": ()}


def plan(os_name: str) -> Plan:
    """The recipe for ``os_name`` (``sys.platform``: linux, win32 or darwin)."""
    key = "linux" if os_name.startswith("linux") else os_name
    if key not in _HIDDEN:
        raise SystemExit(f"dist: no installed build for {os_name}")
    icons = (str(APP_ICON.parent), "app/assets/icons")  # the package data's place in the bundle
    executables: tuple[Executable, ...]
    if key == "win32":
        executables = (Executable(TRAY_NAME, console=False), Executable(CLI_NAME, console=True))
    elif key == "darwin":
        executables = (Executable(CLI_NAME, console=False),)
    else:
        executables = (Executable(CLI_NAME, console=True),)
    icon = {"win32": APP_ICON.with_suffix(".ico"), "darwin": APP_ICON.with_suffix(".icns")}.get(key)
    return Plan(
        platform=key,
        executables=executables,
        hidden_imports=app_modules() + _HIDDEN_COMMON + _HIDDEN[key],
        excludes=_EXCLUDES_COMMON + _EXCLUDES[key],
        system_libraries=_SYSTEM_LIBRARIES[key],
        icon=icon,
        datas=(icons,),
        info_plist=_info_plist() if key == "darwin" else None,
        bundle_name=f"{NAME}.app" if key == "darwin" else None,
        # Python and zstandard come with their debugging symbols on Linux (libpython: 23 MB, 5.5 MB
        # stripped). macOS signs every binary, which stripping afterwards would break.
        strip=key == "linux",
        # Text to pipes and files is UTF-8, as from a terminal: Windows would otherwise encode piped output
        # (`opencode-backup list | findstr ...`) in its ANSI code page and fail on the first "✗".
        python_options=("X utf8_mode=1",),
    )


def _info_plist() -> dict[str, object]:
    version = project_version()
    return {
        "CFBundleName": APP_TITLE,
        "CFBundleDisplayName": APP_TITLE,
        "CFBundleShortVersionString": version,
        "CFBundleVersion": version,
        "LSUIElement": True,  # a menu-bar app: no Dock icon, no app menu
        "NSHighResolutionCapable": True,
        "LSMinimumSystemVersion": "11.0",
    }


def project_version() -> str:
    """The version in pyproject.toml (the built executable's ``--version`` says the same)."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def platform_tag(os_name: str, machine: str) -> str:
    """``linux-x86_64``, ``windows-x86_64``, ``macos-arm64``: the part of a file name users pick by."""
    system = {"win32": "windows", "darwin": "macos"}.get(os_name, "linux")
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
    return f"{system}-{arch.get(machine.lower(), machine.lower())}"


def release_name(version: str, tag: str) -> str:
    return f"{NAME}-{version}-{tag}"


def desktop_file() -> str:
    """The Linux launcher (``~/.local/share/applications``, from ``assets/``); starts the tray from the
    command on PATH."""
    return DESKTOP_FILE.read_text(encoding="utf-8")


def spec_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """What build/dist.py passes the spec after ``--`` (the spec runs inside PyInstaller)."""
    parser = argparse.ArgumentParser(prog="opencode-backup.spec")
    parser.add_argument("--platform", default=sys.platform)
    return parser.parse_args(argv)


def _run(argv: list[str]) -> None:
    print("dist: " + " ".join(argv), flush=True)
    subprocess.run(argv, check=True, cwd=ROOT)


def _pyinstaller(work: Path, os_name: str) -> Path:
    """Run PyInstaller on the spec; returns its output folder."""
    out = work / "pyinstaller-dist"
    argv = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN"]
    argv += ["--distpath", str(out), "--workpath", str(work / "pyinstaller"), str(SPEC)]
    argv += ["--", "--platform", os_name]
    shutil.rmtree(out, ignore_errors=True)
    _run(argv)
    return out


def _linux(built: Path, out: Path, name: str) -> list[Path]:
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.move(built / CLI_NAME, folder)
    (folder / f"{NAME}.desktop").write_text(desktop_file(), encoding="utf-8")
    shutil.copyfile(APP_ICON.with_name(APP_ICON.name + "-64.png"), folder / f"{NAME}.png")
    archive = out / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # keeps the symbolic links the bundle is made of
        tar.add(folder, arcname=name)
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    return [folder, archive, *sorted(out.glob("opencode_session_backup-*"))]


def _windows(built: Path, out: Path, name: str) -> list[Path]:
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.move(built / CLI_NAME, folder)
    archive = shutil.make_archive(str(out / name), "zip", root_dir=out, base_dir=name)
    return [folder, Path(archive)]


def _macos(built: Path, out: Path, name: str) -> list[Path]:
    app = out / f"{NAME}.app"
    shutil.rmtree(app, ignore_errors=True)
    shutil.move(built / f"{NAME}.app", app)
    archive = out / f"{name}.zip"
    # ditto keeps the bundle's symbolic links and signature, which zipfile would flatten
    _run(["ditto", "-c", "-k", "--sequesterRsrc", "--keepParent", str(app), str(archive)])
    return [app, archive]


def build(out: Path, work: Path, os_name: str, machine: str) -> list[Path]:
    """Build for ``os_name`` (this OS: PyInstaller builds for the one it runs on) into ``out``."""
    key = plan(os_name).platform
    name = release_name(project_version(), platform_tag(key, machine))
    built = _pyinstaller(work, key)
    out.mkdir(parents=True, exist_ok=True)
    arrange = {"linux": _linux, "win32": _windows, "darwin": _macos}[key]
    return arrange(built, out, name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build/dist.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the build goes")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "dist", help="scratch folder")
    args = parser.parse_args(argv)
    start = time.monotonic()
    made = build(args.out.absolute(), args.work.absolute(), sys.platform, platform.machine())
    for path in made:
        print(f"dist: made {path}")
    print(f"dist: {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
