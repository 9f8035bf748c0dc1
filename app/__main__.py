"""Command-line entry point: ``opencode-backup <command>``.

Exit codes everywhere: 0 ok, 1 the operation failed, 2 usage or configuration error.
This module and everything it imports must work with no display (no pystray, plyer, tkinter);
``run`` without ``--headless`` imports the tray (app.ui.tray) only when it starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from app import __version__, cli, cli_autostart, cli_restore, cli_service
from app.errors import BackupError, ConfigError, UsageError

logger = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2 (its default code too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see 'opencode-backup --help')")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--backup-path", metavar="DIR", help="backup folder (overrides config and environment)"
    )
    common.add_argument(
        "--source", metavar="DIR", help="opencode's data dir (default: ~/.local/share/opencode)"
    )
    common.add_argument("--machine-name", metavar="NAME", help="folder name for this computer in the backup")
    common.add_argument("--engine", choices=["auto", "rsync", "robocopy", "native"], help="transfer engine")
    common.add_argument("--debug", action="store_true", default=None, help="verbose logging")
    json_flag = _Parser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print JSON")

    parser = _Parser(
        prog="opencode-backup", description="Continuous, versioned backups of opencode sessions."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.add_parser(
        "config", parents=[common, json_flag], help="the effective settings and where each came from"
    )
    p = sub.add_parser("sync", parents=[common, json_flag], help="back up now (once)")
    p.add_argument("--snapshot", action="store_true", help="also take a full database snapshot now")
    p.add_argument(
        "--allow-deletions",
        action="store_true",
        help="mirror even when opencode lost most of its sessions (the guard's override)",
    )
    sub.add_parser(
        "status", parents=[common, json_flag], help="what the backup holds and how the last sync went"
    )
    sub.add_parser("list", parents=[common, json_flag], help="the backed-up sessions")
    sub.add_parser("verify", parents=[common, json_flag], help="check every backup file against the manifest")
    cli_restore.add_parser(sub)
    cli_service.add_parsers(sub, common)
    cli_autostart.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:  # no arguments at all: the tray app
            args = parser.parse_args(["run"])
        _setup_logging(bool(getattr(args, "debug", False)))
        commands = {**cli.COMMANDS, **cli_service.COMMANDS, "autostart": cli_autostart.cmd_autostart}
        return commands[args.command](args)
    except (ConfigError, UsageError) as exc:
        print(f"opencode-backup: {exc}", file=sys.stderr)
        return 2
    except BackupError as exc:
        print(f"opencode-backup: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("opencode-backup: interrupted", file=sys.stderr)
        return 1


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("watchdog").setLevel(logging.INFO)  # its DEBUG is one line per inotify event


if __name__ == "__main__":
    sys.exit(main())
