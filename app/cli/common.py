"""What every command shares: the parser class and the settings flags (from :mod:`app.cli.parser`, which
loads nothing else), loading settings from the flags, and printing a result as text or JSON."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import codec, config
from app.cli.parser import (
    ALL,
    READ,
    SETTINGS_FLAGS,
    Parser,
    add_json_flag,
    add_settings_flags,
    check_flags,
    error,
    one_line,
)
from app.errors import ConfigError, UsageError, not_reachable
from app.safe_text import clean_lines, safe_json

if TYPE_CHECKING:
    from app.backup.remote.view import Parts

__all__ = [
    "ALL",
    "READ",
    "SETTINGS_FLAGS",
    "Command",
    "Parser",
    "add_json_flag",
    "add_settings_flags",
    "check_flags",
    "confirm",
    "emit",
    "error",
    "load_settings",
    "one_line",
    "reading",
    "require_backup",
    "require_backup_folder",
    "require_destination",
    "say",
    "table",
]

Command = Callable[[argparse.Namespace], int]


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
        raise not_reachable(machine_dir)
    return machine_dir


def require_backup_folder(settings: config.Settings) -> Path:
    """The backup folder, there to read, whether or not this machine has backed up into it yet (a command
    that reads every machine folder: a new laptop finds the old one's sessions)."""
    require_destination(settings)
    assert settings.backup_path is not None
    if not settings.backup_path.is_dir():
        raise not_reachable(settings.backup_path)
    return settings.backup_path


@contextlib.contextmanager
def reading(
    settings: config.Settings, machine: str | None = None, parts: Parts | None = None, *, fresh: bool = False
) -> Iterator[Path]:
    """The machine folder a command reads (see :func:`app.wiring.reading`): a folder that is not there
    is one line (BackupError), as :func:`require_backup` says it."""
    from app import wiring  # noqa: PLC0415 - the engine loads when a command that reads a backup runs
    from app.backup.remote.view import Parts  # noqa: PLC0415

    if settings.remote is None and (machine or settings.machine_name) == settings.machine_name:
        require_backup(settings)
    with wiring.reading(settings, machine, parts or Parts.INDEX, fresh=fresh) as folder:
        yield folder


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text``; either made safe for a terminal (titles,
    folders and file names come from the backup folder and opencode's database)."""
    if getattr(args, "json", False):
        print(safe_json(codec.to_json(data), indent=2))
    else:
        say(text)


def say(text: str, *, err: bool = False) -> None:
    """Print ``text`` for people, each line made safe for a terminal (see :mod:`app.safe_text`)."""
    print(clean_lines(text), file=sys.stderr if err else sys.stdout)


def table(rows: list[tuple[str, str]]) -> str:
    """Aligned ``label  value`` lines, as ``config`` and ``status`` print them."""
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def confirm(text: str, question: str, no_terminal: str) -> bool:
    """Show ``text`` and ask ``question`` on the terminal; True only for yes. Without a terminal nothing
    can be asked: UsageError ``no_terminal`` (exit 2, nothing done), which names ``--yes``."""
    if not sys.stdin.isatty():
        raise UsageError(no_terminal)
    say(text)
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
