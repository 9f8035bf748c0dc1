"""What every command shares: the parser class, the settings flags (given before or after the command),
loading settings from them, and printing a result as text or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app import codec, config
from app.errors import BackupError, ConfigError, UsageError
from app.transfer import ENGINE_NAMES

Command = Callable[[argparse.Namespace], int]

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
            kwargs["choices"] = ENGINE_NAMES
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


def load_settings(
    args: argparse.Namespace, *, check: bool = True, allow_unmounted: bool = False
) -> config.Settings:
    """Settings from flags, environment and files. ``check``: the backup folder must be usable (commands
    that write); ``allow_unmounted``: its parent may be missing (a drive not mounted yet: the service
    retries instead of refusing to start). Read-only commands pass ``check=False``."""
    flags = {key: getattr(args, name, None) for name, (_f, key, _h) in SETTINGS_FLAGS.items()}
    flags["debug"] = getattr(args, "debug", None)
    settings = config.load({k: v for k, v in flags.items() if v is not None}, check_destination=False)
    if check:
        config.validate_destination(settings, allow_unmounted=allow_unmounted)
    return settings


def require_destination(settings: config.Settings) -> Path:
    if settings.machine_dir is None:
        raise ConfigError(config.not_configured_message(settings))
    return settings.machine_dir


def require_backup(settings: config.Settings) -> Path:
    """The machine folder of a backup that is there to read (a command that only reads it)."""
    machine_dir = require_destination(settings)
    if not machine_dir.is_dir():
        raise BackupError(f"backup folder not reachable (not mounted, or no backup yet): {machine_dir}")
    return machine_dir


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(codec.to_json(data), indent=2, ensure_ascii=False))
    else:
        print(text)


def table(rows: list[tuple[str, str]]) -> str:
    """Aligned ``label  value`` lines, as ``config`` and ``status`` print them."""
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def one_line(message: str) -> str:
    """A message on one line: control characters (a newline in a path) shown escaped."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in message)


def error(message: str) -> None:
    print(f"opencode-backup: {one_line(message)}", file=sys.stderr)
