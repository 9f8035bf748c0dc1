"""``opencode-backup``: the command line. One module per command; this one builds the parser from them,
sets up logging and maps errors to exit codes. Only the command line prints for people; the dialog
process and the MCP server speak their own protocols on their own stdout.

Everything imported here works without a display; the tray (``run`` without ``--headless``) is imported
only when it starts. Command modules are imported when the parser is built, and ``opencode-backup mcp``
builds a parser with that command alone: opencode starts it and waits for it before its first answer,
so it must not load the engine the other commands import (see app/mcp).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from app import __version__
from app.cli.common import Parser, add_settings_flags, check_flags, error
from app.errors import BackupError, ConfigError, UsageError

logger = logging.getLogger(__name__)

# Modules of app.cli, in the order a user needs them; ``opencode-backup --help`` lists them so.
COMMANDS = (
    "run",
    "sync",
    "status",
    "listing",
    "restore",
    "verify",
    "show_config",
    "control",
    "autostart",
    "agent_tools",
    "mcp",
)
# Commands that start with only their own module loaded (first on the command line, nothing before).
ALONE = ("mcp",)

EPILOG = """\
Without a command, 'run' starts the tray app. Options such as --backup-path may also come before the command.

exit codes:
  0  done (for status and list: whatever the backup's state, it was reported)
  1  the operation failed: a sync or restore failed, verify found damage, no service is running
  2  usage or configuration error: nothing was written"""


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """The parser of ``commands`` (names of modules in app.cli), each imported here."""
    parser = Parser(
        prog="opencode-backup",
        description="Continuous, versioned backups of opencode sessions to a folder you choose.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_settings_flags(parser, ("backup_path", "source", "machine_name", "engine"), top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, title="commands")
    for name in commands:
        importlib.import_module(f"app.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[:1] if argv[:1] and argv[0] in ALONE else COMMANDS)
    try:
        args = parser.parse_args(argv)
        if args.command is None:  # no command: the tray app, with the options given
            args = parser.parse_args([*argv, "run"])
        check_flags(args)
        _setup_logging(bool(args.debug))
        return int(args.func(args))
    except (ConfigError, UsageError) as exc:
        error(str(exc))
        return 2
    except BackupError as exc:
        error(str(exc))
        return 1
    except KeyboardInterrupt:
        error("interrupted")
        return 1


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("watchdog").setLevel(logging.INFO)  # its DEBUG is one line per inotify event
