"""``opencode-backup run``: the tray app (the default command), or with ``--headless`` the same service in
a terminal. One service per user: a second ``run`` says so in one line and exits 1."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from app import config, paths, wiring
from app.cli.common import ALL, add_settings_flags, error, load_settings, require_destination
from app.cli.parser import COMMANDS
from app.errors import BackupError, ConfigError
from app.host import HOST
from app.safe_text import log_formatter
from app.service import control
from app.service.events import Quit
from app.service.status import read_status

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help=COMMANDS["run"][1],
        description="Start the backup service with a tray icon (or, with --headless, in this terminal): "
        "it backs up at start, then every change opencode makes.",
    )
    add_settings_flags(p, ALL)
    p.add_argument("--headless", action="store_true", help="no tray icon; log to the terminal")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the service until Quit, SIGINT or SIGTERM (main thread); exit 1 if one already runs.

    Without ``--headless`` this is the tray app, which also starts with no backup folder chosen yet, or
    with one it cannot use (the icon says why and offers Choose backup folder…)."""
    problem = None
    if args.headless:
        settings = load_settings(args, allow_unmounted=True)
        require_destination(settings)
    else:  # a tray started at login must show why it cannot back up, not exit unseen
        settings = load_settings(args, check=False)
        try:
            config.validate_destination(settings, allow_unmounted=True)
        except ConfigError as exc:
            problem = str(exc)
            settings = dataclasses.replace(settings, backup_path=None)
        why_not = no_desktop()
        if why_not:
            raise BackupError(
                f"{why_not}; without a desktop run the service in a terminal: {headless_hint(settings)}"
            )
    state_dir = paths.app_state_dir()
    lock = control.InstanceLock(state_dir)
    if not lock.acquire():
        live = read_status(state_dir)
        pid = f" (pid {live.pid})" if live and live.pid else ""
        error(f"the backup service is already running{pid}")
        if not args.headless:  # started from a desktop again: show what the running one is doing
            _show_status_window(state_dir, settings.machine_dir)
        return 1
    try:
        if not args.headless:
            from app.ui.tray import TrayFailed, run_tray  # noqa: PLC0415 - the desktop libraries load only here

            try:
                return run_tray(settings, problem)
            except TrayFailed as exc:
                raise BackupError(f"{exc}; {headless_hint(settings)} runs the service without it") from None
        _log_for_a_terminal(settings.debug)
        return _run_headless(settings)
    finally:
        lock.release()


def no_desktop() -> str | None:
    """Why no tray icon can be shown here, in words (None: there may be a desktop)."""
    if HOST.desktop_from_env and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return "no desktop to show the tray icon on (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    return None


def headless_hint(settings: config.Settings) -> str:
    """The command that runs the service in a terminal, as it can be typed where this one was started."""
    folder = "" if settings.backup_path is not None else " --backup-path DIR"
    if os.environ.get("MAKELEVEL") and not getattr(sys, "frozen", False):
        # `make run` in a source checkout: the script is not on PATH (a bundle is never run by make)
        return f'make run ARGS="run --headless{folder}"'
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name.startswith("opencode-backup"):
        on_path = shutil.which(argv0.name)
        prog = argv0.name if on_path and Path(on_path).resolve() == argv0.resolve() else str(argv0)
    else:
        prog = f"{Path(sys.executable).name} -m app"
    return f"{prog} run --headless{folder}"


def _log_for_a_terminal(debug: bool) -> None:
    logging.getLogger("app").setLevel(logging.DEBUG if debug else logging.INFO)
    for log_handler in logging.getLogger().handlers:  # a long-running service's log needs times
        log_handler.setFormatter(log_formatter())


def _show_status_window(state_dir: Path, machine_dir: Path | None) -> None:
    try:
        from app.ui.dialogs import DialogHost  # noqa: PLC0415 - the dialog client, only when one is shown

        DialogHost().open_status(state_dir, machine_dir, detach=True)
    except Exception as exc:  # no display, no Tk: the line above said enough
        logger.debug("no status window: %s", exc)


def _run_headless(settings: config.Settings) -> int:
    runtime = wiring.runtime_for(settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %d: stopping", signum)
        runtime.service.post(Quit())

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        runtime.start()
        logger.info("backup service running: watching %s", settings.source)
        while not runtime.service.join(0.5):
            pass
    finally:
        runtime.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
    return 0
