"""The installed Linux build, as a user gets it: ``build/dist.py`` (what ``make dist`` runs) builds it
once for this module, the test unpacks the downloadable archive, and runs the executable inside it against
a generated opencode database in a temporary HOME, on no display and on the test desktop. The wheel and
sdist that ``pipx install`` takes are built in the same run and checked here too.

Building takes about 25 s on two cores (PyInstaller's analysis, then the wheel); the rest about 10 s.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import assets, paths
from app.ui.icons import State
from tests import dbfactory as f
from tests.desktop import Desktop, wait_for
from tests.test_ui_tray import Tray, configure

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "build" / "dist.py"
# Run by PyInstaller while it builds on Linux (binutils, libc-bin), and by these tests; each is in .ci/tools.
TOOLS = ("objcopy", "objdump", "strip", "ldd", "desktop-file-validate")
# The bundle measured 37 MB (16 MB as .tar.gz); with the desktop's GTK copied in it was 220 MB.
MAX_BUNDLE_MB = 60

pytestmark = [
    pytest.mark.dist,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds the Linux bundle"),
]


@dataclass(frozen=True)
class Built:
    """What ``make dist`` made, and the archive unpacked where a user would."""

    out: Path
    archive: Path
    folder: Path  # the unpacked archive
    exe: Path
    version: str


def _version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    assert not missing, f"missing: {', '.join(missing)}; 'bash .ci/check-tools' names each one's package"
    out, work = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("work")
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(DIST), "--out", str(out), "--work", str(work)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    print(f"\nmake dist: {time.monotonic() - start:.0f} s")
    version = _version()
    archive = out / f"opencode-session-backup-{version}-linux-{platform.machine()}.tar.gz"
    assert archive.is_file(), sorted(p.name for p in out.iterdir())
    unpacked = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(archive) as tar:  # extraction filters exist from Python 3.11.4 (Debian 12: backported)
        tar.extractall(unpacked, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
    folder = unpacked / archive.name.removesuffix(".tar.gz")
    yield Built(out, archive, folder, folder / "opencode-backup", version)


def run(
    b: Built, *args: str, display: bool = False, stdin: str = "", **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **extra}
    env.pop("PYTHONPATH", None)  # nothing of the checkout: the build must bring everything itself
    if not display:
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run(
        [str(b.exe), *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def folder_mb(folder: Path) -> float:
    return sum(p.lstat().st_size for p in folder.rglob("*")) / 1e6


def test_the_download_holds_the_program_its_launcher_and_icon(built: Built) -> None:
    names = set(os.listdir(built.folder))
    assert {"opencode-backup", "_internal"} <= names
    assert {"opencode-session-backup.desktop", "opencode-session-backup.png"} <= names
    assert os.access(built.exe, os.X_OK)
    launcher = built.folder / "opencode-session-backup.desktop"
    valid = subprocess.run(
        ["desktop-file-validate", str(launcher)], capture_output=True, text=True, check=False
    )
    assert valid.returncode == 0 and valid.stdout == "", valid.stdout + valid.stderr
    assert "Exec=opencode-backup run\n" in launcher.read_text()
    assert launcher.read_text() == (ROOT / "assets" / "opencode-session-backup.desktop").read_text()
    assert (built.folder / "opencode-session-backup.png").read_bytes() == assets.app_icon_png().read_bytes()


def test_the_bundle_is_lean_and_leaves_gtk_to_the_desktop(built: Built) -> None:
    size = folder_mb(built.folder)
    assert size < MAX_BUNDLE_MB, f"the bundle grew to {size:.0f} MB"
    libraries = {p.name for p in built.folder.rglob("*.so*")}
    assert not [name for name in libraries if name.startswith(("libgtk", "libglib", "libgdk", "libstdc++"))]
    zstd = {p.name.split(".")[0] for p in (built.folder / "_internal" / "zstandard").iterdir()}
    assert "backend_c" in zstd and "_cffi" not in zstd  # one backend of the two, the one CPython loads


def test_the_version_is_the_projects(built: Built) -> None:
    done = run(built, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"opencode-backup {built.version}"


def test_it_backs_up_lists_and_verifies_a_database(built: Built, tmp_path: Path) -> None:
    conn = f.create_db(paths.opencode_data_dir() / "opencode.db")
    for i in range(3):
        f.add_session(conn, f"ses_{i:03d}", title=f"Session {i}")
    conn.close()
    dest = tmp_path / "backups"
    dest.mkdir()
    synced = run(built, "--backup-path", str(dest), "sync", "--json")
    assert synced.returncode == 0, synced.stderr
    result = json.loads(synced.stdout)
    assert result["outcome"] == "ok" and result["sessions_total"] == 3 and result["snapshot"]
    assert (Path(result["destination"]) / result["snapshot"]).is_file()
    status = run(built, "--backup-path", str(dest), "status")
    assert status.returncode == 0 and "sessions backed up  3" in status.stdout, status.stdout
    listed = run(built, "--backup-path", str(dest), "list")
    assert listed.returncode == 0 and all(f"Session {i}" in listed.stdout for i in range(3)), listed.stdout
    verified = run(built, "--backup-path", str(dest), "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("OK:"), verified.stdout + verified.stderr
    found = run(
        built, "--backup-path", str(dest), "search", "hello", "--json"
    )  # the bundle's SQLite has FTS5
    assert found.returncode == 0 and len(json.loads(found.stdout)) == 3, found.stdout + found.stderr


def test_it_encrypts_with_age_and_keeps_its_key_where_it_can(built: Built, tmp_path: Path) -> None:
    """pyrage and keyring inside the bundle: enable encrypts the backup, the bundled app reads it back, and
    the standard age tool opens a session file with the recovery key it wrote."""
    conn = f.create_db(paths.opencode_data_dir() / "opencode.db")
    f.add_session(conn, "ses_enc", title="A title to hide")
    conn.close()
    dest = tmp_path / "backups"
    dest.mkdir()
    recovery = tmp_path / "recovery.txt"
    args = ("--backup-path", str(dest))
    enabled = run(built, *args, "encryption", "enable", "--yes", "--recovery-file", str(recovery))
    assert enabled.returncode == 0, enabled.stderr
    session = next(dest.rglob("ses_enc.json"))
    assert b"A title to hide" not in session.read_bytes()
    listed = run(built, *args, "list")
    assert "A title to hide" in listed.stdout, listed.stdout + listed.stderr
    verified = run(built, *args, "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("OK:"), verified.stdout + verified.stderr
    opened = subprocess.run(["age", "-d", "-i", str(recovery), str(session)], capture_output=True, check=True)
    assert json.loads(opened.stdout)["title"] == "A title to hide"


def test_programs_it_starts_get_the_users_library_path_back(built: Built, tmp_path: Path) -> None:
    """The bootloader puts the bundle's own libraries first on LD_LIBRARY_PATH; rsync (or xdg-open) started
    by the app must see the user's value, or it would load the bundle's copies of libraries it links."""
    rsync = shutil.which("rsync")
    assert rsync
    saw = tmp_path / "rsync-saw"
    fake = tmp_path / "bin" / "rsync"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "${{LD_LIBRARY_PATH-unset}}" >> "{saw}"\nexec "{rsync}" "$@"\n')
    fake.chmod(0o755)
    conn = f.create_db(paths.opencode_data_dir() / "opencode.db")
    f.add_session(conn, "ses_000")
    conn.close()
    dest = tmp_path / "backups"
    dest.mkdir()
    path = f"{fake.parent}{os.pathsep}{os.environ['PATH']}"
    done = run(built, "--backup-path", str(dest), "--engine", "rsync", "sync", PATH=path,
               LD_LIBRARY_PATH="/home/u/lib")  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = set(saw.read_text().splitlines())
    assert seen == {"/home/u/lib"}, seen


def test_dialogs_are_answered_by_the_built_executable(built: Built) -> None:
    """What the tray sends, ``<executable> -m app.ui.dialog KIND``, reaches the dialog code (PyInstaller
    collected it and Tk) instead of the CLI's parser."""
    unknown = run(built, "-m", "app.ui.dialog", "no-such-kind")
    assert unknown.returncode == 2 and unknown.stderr.startswith("dialog: usage:"), unknown.stderr
    request = json.dumps({"title": "opencode session backup", "text": "hello"})
    no_display = run(built, "-m", "app.ui.dialog", "message", stdin=request)
    assert no_display.returncode == 3, no_display.stderr
    assert no_display.stderr.startswith("dialog: cannot open a window") and no_display.stderr.count("\n") == 1


def test_run_without_a_display_says_so_in_one_line(built: Built, tmp_path: Path) -> None:
    done = run(built, "--backup-path", str(tmp_path), "run")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("opencode-backup: no desktop") and "Traceback" not in done.stderr
    assert f"{built.exe} run --headless" in done.stderr  # how to run it headless, with this executable


def test_the_icons_are_inside_and_the_login_entry_uses_them(built: Built) -> None:
    inside = built.folder / "_internal" / "app" / "assets" / "icons"
    ours = {p.name: p.read_bytes() for p in assets.icon_dir().iterdir()}
    assert {p.name: p.read_bytes() for p in inside.iterdir()} == ours
    enabled = run(built, "autostart", "enable")
    assert enabled.returncode == 0, enabled.stderr
    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "opencode-session-backup.desktop"
    keys = dict(line.split("=", 1) for line in entry.read_text().splitlines() if "=" in line)
    assert shlex.split(keys["Exec"]) == [str(built.exe), "run"]  # the build starts itself at login
    icon = Path(keys["Icon"])
    assert icon.is_relative_to(built.folder) and icon.read_bytes() == assets.app_icon_png().read_bytes()


def test_the_built_tray_docks_backs_up_and_opens_its_status_window(
    built: Built, desktop: Desktop, tmp_path: Path
) -> None:
    conn = f.create_db(paths.opencode_data_dir() / "opencode.db")
    f.add_session(conn, "ses_000", title="Fix the login bug")
    conn.close()
    configure(tmp_path / "backups")
    assert run(built, "autostart", "enable").returncode == 0
    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "opencode-session-backup.desktop"
    exec_line = next(line for line in entry.read_text().splitlines() if line.startswith("Exec="))
    tray = Tray(desktop, argv=shlex.split(exec_line.removeprefix("Exec=")), backend=None)  # as at login
    try:
        tray.wait_backed_up()
        tray.wait_icon(State.UP_TO_DATE)
        tray.choose("Status…")  # from the menu of the backend pystray picked, as at login
        window = desktop.wait_window("Status$")  # a dialog: the build started again as a Tk child
        desktop.key(window, "Escape")
        wait_for(lambda: not desktop.windows("Status$"), 10, what="the status window closed")
    finally:
        assert tray.stop() == 0, tray.log_text()[-3000:]


def test_the_wheel_and_sdist_ship_the_icons_and_both_commands(built: Built, tmp_path: Path) -> None:
    """What ``pipx install`` does, without pipx: install the wheel and run its two commands."""
    wheel = built.out / f"opencode_session_backup-{built.version}-py3-none-any.whl"
    sdist = built.out / f"opencode_session_backup-{built.version}.tar.gz"
    icon_names = {p.name for p in assets.icon_dir().iterdir()}
    with tarfile.open(sdist) as tar:
        assert {Path(n).name for n in tar.getnames() if "/assets/icons/" in n} == icon_names
    with zipfile.ZipFile(wheel) as whl:
        assert {Path(n).name for n in whl.namelist() if n.startswith("app/assets/icons/")} == icon_names
    target = tmp_path / "installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}  # the wheel's app, the venv's dependencies
    for command in ("opencode-backup", "opencode-backup-tray"):
        done = subprocess.run(
            [str(target / "bin" / command), "--version"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0 and done.stdout.strip() == f"opencode-backup {built.version}", done.stderr
    code = "from app.platform.autostart import default_icon; print(default_icon())"
    icon = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(icon).is_relative_to(target) and Path(icon).is_file()  # the installed copy, not ours


def test_building_in_the_checkout_leaves_build_to_our_own_files(built: Built, tmp_path: Path) -> None:
    """setuptools writes build/lib and build/bdist.* unless told otherwise (setup.cfg sends them to .cache/);
    after make dist and an in-place wheel build, build/ still holds only the spec and the script."""
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    folders = [p.name for p in (ROOT / "build").iterdir() if p.is_dir()]
    assert folders == []  # every tool writes folders (lib, bdist.*, __pycache__, a PyInstaller workpath)
