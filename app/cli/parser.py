"""The command line's parser pieces that load nothing else: the parser class, the settings flags and the
table of commands with their one-line help.

``opencode-backup --version`` and ``--help`` run with this module, argparse and :mod:`app.errors` alone
(tests/test_startup.py checks it); :mod:`app.cli.common` re-exports everything here for the commands.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.errors import UsageError
from app.safe_text import LINE_LIMIT, clean

# Every command, in the order a user needs them (``--help`` lists them so): name -> (module of app.cli
# that registers it, its line in ``--help``). The module is imported only when its command runs, so the
# help lines live here, and each module registers its command with its line from here.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "the tray app: watch opencode and back up every change (the default command)"),
    "sync": ("sync", "back up now, once"),
    "status": ("status", "what the backup holds and how the last backup went"),
    "list": ("listing", "the backed-up sessions, and which ones opencode no longer has"),
    "search": ("search", "find sessions by the words in them, across every machine folder of the backup"),
    "show": ("show", "read a backed-up session (any version) without restoring it"),
    "history": ("history", "every version of a session the backup holds, and when each was backed up"),
    "restore": ("restore", "put sessions back into opencode, after a safety copy of its database"),
    "verify": ("verify", "check every backup file against the manifest"),
    "repair": ("repair", "rebuild a damaged backup index from the files present, setting bad files aside"),
    "adopt": ("adopt", "make this machine's backup folder this install's, after a reinstall"),
    "encryption": (
        "encryption",
        "backups only you can read (age): enable, disable, status, add-recipient, unlock, export-key",
    ),
    "config": ("show_config", "the effective settings and where each came from"),
    "pause": ("control", "ask the running service to stop backing up for now"),
    "resume": ("control", "ask the running service to back up again"),
    "sync-now": ("control", "ask the running service to back up now, without waiting"),
    "autostart": ("autostart", "start the tray app at login: enable, disable or status"),
    "agent-tools": (
        "agent_tools",
        "let opencode's model back up, report and restore: enable, disable or status",
    ),
    "mcp": ("mcp", "the agent tools' server that opencode starts (see agent-tools)"),
}

# app.transfer.ENGINE_NAMES, written out so that the parser does not import the engines (a test keeps
# the two equal).
ENGINE_CHOICES = ("auto", "rsync", "robocopy", "native")

# The settings flags: (flag, attribute, key in the settings file, help). Every command offers the ones that
# mean something for it; all of them may also come before the command (``--backup-path X status``).
SETTINGS_FLAGS: dict[str, tuple[str, str, str]] = {
    "backup_path": ("--backup-path", "backupPath", "backup folder (overrides config and environment)"),
    "source": ("--source", "source", "opencode's data folder (default: ~/.local/share/opencode)"),
    "machine_name": ("--machine-name", "machineName", "this computer's folder name in the backup"),
    "engine": ("--engine", "engine", "how files are copied"),
}
READ = ("backup_path", "source", "machine_name")  # what the read-only commands use
ALL = (*READ, "engine")


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2 (its default code too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see 'opencode-backup --help')")


def add_settings_flags(parser: argparse.ArgumentParser, names: tuple[str, ...], *, top: bool = False) -> None:
    """Add the settings flags ``names`` to ``parser``. On a command's parser their default is SUPPRESS,
    so a value given before the command is not overwritten by the command's own default."""
    default = None if top else argparse.SUPPRESS
    for name in names:
        flag, _key, help_text = SETTINGS_FLAGS[name]
        kwargs: dict[str, Any] = {"dest": name, "default": default, "help": help_text}
        if name == "engine":
            kwargs["choices"] = ENGINE_CHOICES
        else:
            kwargs["metavar"] = "DIR" if name in ("backup_path", "source") else "NAME"
        parser.add_argument(flag, **kwargs)
    parser.add_argument(
        "--debug",
        action="store_true",
        default=None if top else argparse.SUPPRESS,
        help="log everything, to the terminal too",
    )
    if not top:
        parser.set_defaults(uses=frozenset(names))


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def check_flags(args: argparse.Namespace) -> None:
    """Refuse a settings flag given before a command that has no use for it (``--engine X pause``)."""
    uses: frozenset[str] = getattr(args, "uses", frozenset())
    for name, (flag, _key, _help) in SETTINGS_FLAGS.items():
        if getattr(args, name, None) is not None and name not in uses:
            raise UsageError(
                f"{flag} does not apply to '{args.command}' (see 'opencode-backup {args.command} --help')"
            )


def one_line(message: str) -> str:
    """A message on one line: control characters (a newline in a path), bidi overrides and the like
    shown escaped (it may quote a title or a file name from the backup folder), and capped."""
    return clean(message, LINE_LIMIT)


def error(message: str) -> None:
    print(f"opencode-backup: {one_line(message)}", file=sys.stderr)
