"""Command-line commands for the live service: ``run``, ``pause``, ``resume``, ``sync-now``, and the
hooks ``status`` and ``sync`` use to talk to a running service. Part of the CLI layer (it prints).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from app import cli, config, paths
from app.backup.result import SyncResult
from app.errors import ConfigError
from app.service import control
from app.service.events import Quit
from app.service.runtime import Runtime
from app.service.service import Timing
from app.service.status import Status, read_status

logger = logging.getLogger(__name__)

SYNC_REPLY_TIMEOUT = 6 * 3600.0
NOT_RUNNING = (
    "no backup service is running "
    "(start it with 'opencode-backup run', or 'run --headless' without a desktop)"
)


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``run``, ``pause``, ``resume`` and ``sync-now`` on the subcommand parser."""
    p = sub.add_parser(
        "run", parents=[common], help="the tray app: watch and back up continuously (the default command)"
    )
    p.add_argument("--headless", action="store_true", help="no tray icon; log to the terminal")
    sub.add_parser("pause", parents=[common], help="ask the running service to stop syncing for now")
    sub.add_parser("resume", parents=[common], help="ask the running service to sync again")
    sub.add_parser("sync-now", parents=[common], help="ask the running service to sync now")


def cmd_run(args: argparse.Namespace) -> int:
    """Run the service until Quit, SIGINT or SIGTERM (main thread); exit 1 if one already runs.

    Without ``--headless`` this is the tray app, which also starts with no backup folder chosen yet
    (the icon says "not configured" and offers Choose backup folder…)."""
    problem = None
    if args.headless:
        settings = cli.load_settings(args, service=True)
        cli.require_destination(settings)
    else:  # a tray started at login must show why it cannot back up, not exit unseen
        settings = cli.load_settings(args, service=True, check=False)
        try:
            config.validate_destination(settings, allow_unmounted=True)
        except ConfigError as exc:
            problem = str(exc)
            settings = dataclasses.replace(settings, backup_path=None)
    state_dir = paths.app_state_dir()
    lock = control.InstanceLock(state_dir)
    if not lock.acquire():
        live = read_status(state_dir)
        pid = f" (pid {live.pid})" if live and live.pid else ""
        print(f"opencode-backup: the backup service is already running{pid}", file=sys.stderr)
        if not args.headless:  # started from a desktop again: show what the running one is doing
            _show_status_window(state_dir, settings.machine_dir)
        return 1
    logging.getLogger("app").setLevel(logging.DEBUG if settings.debug else logging.INFO)
    for log_handler in logging.getLogger().handlers:  # a long-running service's log needs times
        log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    try:
        if not args.headless:
            from app.ui.tray import run_tray

            return run_tray(settings, problem)
        return _run_headless(settings)
    finally:
        lock.release()


def _show_status_window(state_dir: Path, machine_dir: Path | None) -> None:
    try:
        from app.ui import dialogs

        dialogs.open_status(state_dir, machine_dir, detach=True)
    except Exception as exc:  # no display, no Tk: the line above said enough
        logger.debug("no status window: %s", exc)


def _run_headless(settings: config.Settings) -> int:
    runtime = Runtime(
        cli.context_for(settings),
        timing=Timing(delay=settings.sync_delay_seconds, interval=settings.min_interval_seconds),
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %d: stopping", signum)
        runtime.service.post(Quit())

    old = {s: signal.signal(s, on_signal) for s in _stop_signals()}
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


def _stop_signals() -> list[signal.Signals]:
    return [signal.SIGINT, signal.SIGTERM]


def _command(command: str, done: str, wait_paused: bool | None = None) -> int:
    state_dir = paths.app_state_dir()
    if not control.service_running(state_dir):
        print(f"opencode-backup: {NOT_RUNNING}", file=sys.stderr)
        return 1
    control.send(state_dir, command)
    if wait_paused is not None:  # wait until the service shows it took the command
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            live = read_status(state_dir)
            if live is not None and live.paused == wait_paused:
                break
            time.sleep(0.1)
    print(done)
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    return _command("pause", "the backup service is paused", wait_paused=True)


def cmd_resume(args: argparse.Namespace) -> int:
    return _command("resume", "the backup service resumed", wait_paused=False)


def cmd_sync_now(args: argparse.Namespace) -> int:
    return _command("sync-now", "asked the backup service to sync now")


# ------------------------------------------------------------------ hooks for app.cli
def live_status(state_dir: Path) -> Status | None:
    """The running service's Status, or None when no service runs."""
    if not control.service_running(state_dir):
        return None
    return read_status(state_dir) or Status(state="starting")


def sync_via_service(state_dir: Path, snapshot: bool, allow_deletions: bool) -> SyncResult | None:
    """When a service runs, ask it for a sync and wait for that sync's result; None when none runs.

    A service that stops before answering yields a failed result.
    """
    if not control.service_running(state_dir):
        return None
    rid = control.send(state_dir, "sync", snapshot=snapshot, allow_deletions=allow_deletions)
    data = control.wait_reply(state_dir, rid, SYNC_REPLY_TIMEOUT)
    if data is None:
        return SyncResult(
            result="failed", started="", kind="fatal", error="the backup service stopped before it answered"
        )
    return result_from_dict(data)


def result_from_dict(data: dict[str, Any]) -> SyncResult:
    """A SyncResult from its ``to_dict()`` JSON."""
    known = set(SyncResult.__dataclass_fields__)
    values = {k: v for k, v in data.items() if k in known}
    values["skipped"] = tuple(values.get("skipped", ()))
    values["warnings"] = tuple(values.get("warnings", ()))
    return SyncResult(**values)


COMMANDS = {"run": cmd_run, "pause": cmd_pause, "resume": cmd_resume, "sync-now": cmd_sync_now}
