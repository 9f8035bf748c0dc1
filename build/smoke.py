"""Smoke tests of the Windows and macOS parts that cannot run on Linux, run by the build workflow on its
runners (.github/workflows/build.yml) against the real thing: robocopy, the registry, the notification
area, osascript. Everywhere else these parts are tested with stand-ins and type-checked.

    python build/smoke.py robocopy            Windows: a robocopy copy cancelled mid-file places nothing,
                                              and a file another process holds reads as locked
    python build/smoke.py notify              Windows, macOS: one notification through the tray's backends
    python build/smoke.py autostart EXE       Windows, macOS: EXE's login entry, enabled from EXE's own
                                              folder (as Explorer starts a double-clicked exe), names its
                                              program by an absolute path; read back raw, then removed

Each prints what it checked and exits 0, or names what broke and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import plistlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PureWindowsPath
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import paths  # noqa: E402 - the checkout's app, without installing it
from app.errors import FailureKind  # noqa: E402
from app.platform import autostart_mac, autostart_win  # noqa: E402
from app.transfer import CANCELLED, CopyJob, CopyResult  # noqa: E402
from app.transfer.robocopy import INCOMING_PREFIX, RobocopyEngine  # noqa: E402
from app.transfer.runner import RunResult, run  # noqa: E402
from app.ui.icons import State, png_path, render  # noqa: E402
from app.ui.notify import Note, notifier_for  # noqa: E402


class SmokeFailed(Exception):
    """What broke, in one line."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise SmokeFailed(what)
    print(f"smoke: ok: {what}", flush=True)


# ---------------------------------------------------------------- robocopy


def robocopy(work: Path) -> None:
    """A real robocopy, stopped by the real runner in the middle of a file, and a real sharing violation."""
    binary = shutil.which("robocopy")
    check(binary is not None, "robocopy is on PATH")
    assert binary is not None
    src, dst = work / "src", work / "dst"
    (src / "big").mkdir(parents=True)
    dst.mkdir()
    (src / "big" / "big.bin").write_bytes(os.urandom(128 << 20))
    (src / "big" / "small.json").write_bytes(b'{"id": "small"}')

    def slowed(argv: Sequence[str], **kwargs: object) -> RunResult:
        # robocopy's own /IPG: a 20 ms gap after each 64 KiB, so 128 MiB take ~40 s and the stop is mid-file
        return run([*argv, "/IPG:20"], **kwargs)  # type: ignore[arg-type]

    cancel = threading.Event()
    results: list[CopyResult] = []
    job = CopyJob(src, dst, ("big/big.bin", "big/small.json"))
    engine = RobocopyEngine(runner=slowed, binary=binary)
    worker = threading.Thread(target=lambda: results.append(engine.copy(job, cancel)))
    worker.start()
    partial = dst / f"{INCOMING_PREFIX}{os.getpid()}" / "big" / "big.bin"
    deadline = time.monotonic() + 60
    while not partial.is_file() and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    check(partial.is_file(), f"robocopy started writing {partial.name} into the incoming folder")
    time.sleep(1)
    cancel.set()
    stopped = time.monotonic()
    worker.join(60)
    took = time.monotonic() - stopped
    check(not worker.is_alive() and len(results) == 1, "the engine returned after the cancel")
    result = results[0]
    check(result.detail == CANCELLED and result.copied == (), f"the cancelled run copied nothing: {result}")
    left = sorted(str(p.relative_to(dst)) for p in dst.rglob("*"))
    check(left == [], f"nothing of it is in the backup, not even its whole file: {left}")
    check(took < 4, f"robocopy (no console, no Ctrl+Break to wait for) was ended at once: {took:.1f} s")
    _locked_file(src, dst, binary)


def _locked_file(src: Path, dst: Path, binary: str) -> None:
    held = src / "held.json"
    held.write_bytes(b'{"id": "held"}')
    with _held_alone(held):
        result = RobocopyEngine(binary=binary).copy(CopyJob(src, dst, ("held.json",)), threading.Event())
    reason = result.failed.get("held.json", "")
    check(
        result.kind is FailureKind.LOCKED and reason.startswith("locked: ERROR 32"),
        f"a file another process holds is locked (robocopy's ERROR 32 (0x00000020)): {reason!r}",
    )


@contextlib.contextmanager
def _held_alone(path: Path) -> Iterator[None]:
    """``path`` open with no sharing allowed (CreateFileW, dwShareMode 0), as Google Drive may hold a file."""
    if sys.platform == "win32":  # the type checker's view: this command runs on Windows only
        import ctypes  # noqa: PLC0415
        from ctypes import wintypes  # noqa: PLC0415

        kernel32 = ctypes.windll.kernel32
        kernel32.CreateFileW.restype = wintypes.HANDLE
        generic_read, open_existing = 0x80000000, 3
        handle = kernel32.CreateFileW(str(path), generic_read, 0, None, open_existing, 0, None)
        check(handle not in (None, wintypes.HANDLE(-1).value), f"{path.name} is held open alone")
        try:
            yield
        finally:
            kernel32.CloseHandle(handle)
    else:
        raise SmokeFailed("a file is held alone here on Windows only")


# ---------------------------------------------------------------- notifications


def notify() -> None:
    """One notification through the backends the tray uses on this system: on Windows plyer's balloon with
    the state's .ico must show it itself; on macOS plyer has no backend and pystray's osascript shows it."""
    platform = paths.current_platform()
    note = Note(
        "Google Drive is holding a file", "Smoke test of the build workflow; retrying.", State.RETRYING
    )
    fallback_used: list[str] = []
    icon = None
    if platform == "darwin":  # made on the main thread, as the tray makes it; notify() runs osascript
        import pystray  # noqa: PLC0415 - the tray's library, with its macOS backend

        icon = pystray.Icon("opencode-backup-smoke", render(State.RETRYING, 64))

    def fallback(title: str, body: str, _icon: str) -> None:
        fallback_used.append(title)
        if icon is None:
            raise NotImplementedError("no pystray icon here")
        icon.notify(body, title)

    png = str(png_path(ROOT / "app" / "assets" / "icons", State.RETRYING, 64))
    notifier = notifier_for(platform, fallback=fallback, png_file=lambda _state: png)
    notifier.start()
    notifier.notify(note)
    notifier.stop(timeout=30)
    check(notifier.sent == [note], f"a backend showed the notification ({platform})")
    if platform == "win32":
        check(fallback_used == [], "plyer's balloon showed it with the .ico, without the fallback")


# ---------------------------------------------------------------- start at login


def autostart(exe: Path) -> None:
    """Enable the login entry with ``exe`` from its own folder, read it back raw, then disable it."""
    platform = paths.current_platform()
    subprocess.run([str(exe), "autostart", "enable"], cwd=exe.parent, check=True)
    try:
        argv = _windows_run_value() if platform == "win32" else _launch_agent_argv()
        print(f"smoke: the login entry starts {argv}", flush=True)
        program = argv[0] if argv else ""
        absolute = PureWindowsPath(program).is_absolute() if platform == "win32" else program.startswith("/")
        check(absolute and Path(program).is_file(), f"it names its program by an absolute path: {program!r}")
        check(argv[1:] == ["run"], "it starts the tray app")
        status = subprocess.run([str(exe), "autostart", "status"], capture_output=True, text=True, check=True)
        print(status.stdout, flush=True)
    finally:
        subprocess.run([str(exe), "autostart", "disable"], check=True)
    gone = _windows_run_value() == [] if platform == "win32" else not _launch_agent().exists()
    check(gone, "disable removed it")


def _windows_run_value() -> list[str]:
    reg = cast(autostart_win.WinReg, importlib.import_module("winreg"))
    key = reg.OpenKey(reg.HKEY_CURRENT_USER, autostart_win.RUN_KEY, 0, reg.KEY_READ)
    try:
        value, _type = reg.QueryValueEx(key, autostart_win.VALUE_NAME)
    except FileNotFoundError:
        return []
    finally:
        reg.CloseKey(key)
    return [word.strip('"') for word in shlex.split(str(value), posix=False)]


def _launch_agent() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{autostart_mac.LABEL}.plist"


def _launch_agent_argv() -> list[str]:
    with open(_launch_agent(), "rb") as fh:
        return [str(word) for word in plistlib.load(fh)["ProgramArguments"]]


# ----------------------------------------------------------------


def _in_temp_folder(step: Callable[[Path], None]) -> Callable[[], None]:
    def in_temp() -> None:
        with tempfile.TemporaryDirectory(prefix="smoke-", ignore_cleanup_errors=True) as work:
            step(Path(work))

    return in_temp


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python build/smoke.py", description="Windows and macOS smoke tests"
    )
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("robocopy")
    sub.add_parser("notify")
    sub.add_parser("autostart").add_argument("exe", type=Path)
    args = parser.parse_args(argv)
    steps: dict[str, Callable[[], None]] = {
        "robocopy": _in_temp_folder(robocopy),
        "notify": notify,
        "autostart": lambda: autostart(args.exe.resolve()),
    }
    try:
        steps[args.what]()
    except (SmokeFailed, OSError, subprocess.CalledProcessError) as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
