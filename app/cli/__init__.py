"""``opencode-backup``: the command line. One module per command; this one finds the command on the command
line, builds the parser of that command alone, sets up logging and maps errors to exit codes. Only the
command line prints for people; the dialog process and the MCP server speak their own protocols on their
own stdout.

Each command's module is imported only when that command runs: ``--version`` and ``--help`` load argparse
and :mod:`app.cli.parser` alone, ``status`` never loads the sync engine, and ``opencode-backup mcp`` (which
opencode starts and waits for before its first answer, see app/mcp) loads only its server. Everything
imported here works without a display; the tray (``run`` without ``--headless``) is imported only when it
starts.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from app import __version__
from app.cli.parser import COMMANDS, Parser, add_settings_flags, check_flags, error
from app.errors import BackupError, ConfigError, CryptError, UsageError

EPILOG = """\
Without a command, 'run' starts the tray app. Options such as --backup-path may also come before the command.

exit codes:
  0  done (for status and list: whatever the backup's state, it was reported)
  1  the operation failed: a sync or restore failed, verify found damage, no service is running
  2  usage or configuration error, or a damaged key file: nothing was written"""


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of ``commands`` (command names; None: all of them), each command's module imported here.

    A command not given is listed with its help line and no arguments: enough for ``--help`` and to find
    which command a command line names."""
    parser = Parser(
        prog="opencode-backup",
        description="Continuous, versioned backups of opencode sessions to a folder you choose.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_settings_flags(parser, ("backup_path", "source", "machine_name", "engine"), top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, title="commands")
    wanted = set(COMMANDS if commands is None else commands)
    registered: set[str] = set()
    for name, (module, help_text) in COMMANDS.items():
        if name not in wanted:
            sub.add_parser(name, help=help_text, add_help=False)
        elif module not in registered:  # a module may register several commands (pause, resume...)
            importlib.import_module(f"app.cli.{module}").register(_Only(sub, wanted))
            registered.add(module)
    return parser


class _Only:
    """The subparsers action, passing on only the commands wanted (a module registers all of its own)."""

    def __init__(self, sub: argparse._SubParsersAction[Parser], wanted: set[str]) -> None:
        self._sub = sub
        self._wanted = wanted

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        if name in self._wanted:
            return self._sub.add_parser(name, **kwargs)
        return Parser(prog=name)  # a sibling command of the same module: built, never used


def command_of(argv: Sequence[str]) -> str:
    """The command ``argv`` names ("run" when none): found by a parser that knows every command's name and
    no command's arguments. Raises UsageError as the full parser would (an unknown command or a bad
    option before it); ``--help`` and ``--version`` print and exit here."""
    args, _rest = build_parser(()).parse_known_args(argv)
    return str(args.command or "run")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        command = command_of(argv)
        parser = build_parser((command,))
        args = parser.parse_args(argv)
        if args.command is None:  # no command: the tray app, with the options given
            args = parser.parse_args([*argv, "run"])
        check_flags(args)
        _setup_logging(bool(args.debug))
        return int(args.func(args))
    except (ConfigError, UsageError, CryptError) as exc:  # CryptError: a key file here is damaged
        error(str(exc))
        return 2
    except BackupError as exc:
        error(str(exc))
        return 1
    except KeyboardInterrupt:
        error("interrupted")
        return 1


def _setup_logging(debug: bool) -> None:
    import logging  # noqa: PLC0415 - not needed by --version and --help, which never get here

    from app.safe_text import log_formatter  # noqa: PLC0415 - as logging above

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])
    logging.getLogger("watchdog").setLevel(logging.INFO)  # its DEBUG is one line per inotify event
