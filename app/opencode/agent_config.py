"""The agent tools' entry in opencode's global config: ``mcp.session_backup``, read, added and removed.

opencode validates its config strictly (an unknown key stops it from starting) and users write it by hand,
so the file is edited as text (:mod:`app.jsonc_edit`): every other key, comment and line stays as it was.
The entry is ``{"type": "local", "command": [<this install's command>, "mcp"], "enabled": true}``; the
key ``session_backup`` makes opencode name the tools ``session_backup_status``, ``_sync``, ``_restore``.

A change is written atomically, after a copy of the file as it was (``<name>.before-agent-tools``, private:
opencode.json often holds API keys). A file that is not valid JSONC is refused and nothing is written.
Runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import jsonc, jsonc_edit
from app.errors import BackupError, ConfigError
from app.fsutil import atomic_write_bytes
from app.platform.autostart import launch_command

logger = logging.getLogger(__name__)

SERVER_KEY = "session_backup"
PATH = ("mcp", SERVER_KEY)
FILE_NAMES = ("opencode.jsonc", "opencode.json")  # the first that exists is edited
SCHEMA_URL = "https://opencode.ai/config.json"
COPY_SUFFIX = ".before-agent-tools"
BOM = "\ufeff"  # Windows editors may start the file with one; it is kept
MCP_ARGS = ("mcp",)
KEPT_FIELDS = ("cwd", "environment", "timeout")  # a user's additions to the entry survive an enable


class AgentConfigError(BackupError):
    """opencode's config could not be written (permissions, a full disk); nothing was changed."""


@dataclass(frozen=True)
class AgentTools:
    """What opencode's config says. ``command`` is the entry's command ([] when absent); ``this_install``:
    it is the command of the install asking."""

    config_file: Path
    present: bool
    enabled: bool
    command: tuple[str, ...]
    this_install: bool


@dataclass(frozen=True)
class Change:
    """What enable or disable did: ``changed`` False when the file already said so (nothing written);
    ``copy``: where the file as it was before is kept (None: there was no file)."""

    state: AgentTools
    changed: bool
    copy: Path | None = None


def mcp_command() -> list[str]:
    """The argv that starts this install's MCP server: as start-at-login finds the install, but the
    console script (stdio needs a console program on Windows, not the tray's GUI script or pythonw)."""
    return launch_command(
        frozen=bool(getattr(sys, "frozen", False)),
        executable=sys.executable,
        which=lambda name, folder: shutil.which(name, path=folder),
        windows=sys.platform == "win32",  # the console executable, never the windowed tray one
        args=MCP_ARGS,
    )


def config_file(config_dir: Path) -> Path:
    """The file opencode's global config lives in: ``opencode.jsonc`` when it exists, else
    ``opencode.json`` (which may not exist yet)."""
    for name in FILE_NAMES:
        if (config_dir / name).exists():
            return config_dir / name
    return config_dir / FILE_NAMES[-1]


def read(config_dir: Path, command: list[str]) -> AgentTools:
    """The entry as the config has it now; ConfigError (one line) when the file cannot be parsed."""
    path = config_file(config_dir)
    text = _read_text(path)
    return _state(path, _parse(path, text) if text is not None else {}, command)


def enable(config_dir: Path, command: list[str]) -> Change:
    """Add or update the entry so that opencode starts ``command``; idempotent."""
    path = config_file(config_dir)
    text = _read_text(path)
    doc = _parse(path, text) if text is not None else {}
    old = _entry(doc)
    entry: dict[str, Any] = {"type": "local", "command": list(command), "enabled": True}
    if isinstance(old, dict):
        entry.update({k: old[k] for k in KEPT_FIELDS if k in old})
    if old == entry:
        return Change(_state(path, doc, command), changed=False)
    base = text if text is not None else '{\n  "$schema": ' + f'"{SCHEMA_URL}"' + "\n}\n"
    new = _edit(path, lambda: _keep_bom(base, lambda body: jsonc_edit.set_member(body, PATH, entry)))
    copy = _write(path, text, new)
    return Change(_state(path, _parse(path, new), command), changed=True, copy=copy)


def disable(config_dir: Path, command: list[str]) -> Change:
    """Remove the entry (and an ``mcp`` object left empty by that); idempotent."""
    path = config_file(config_dir)
    text = _read_text(path)
    if text is None:
        return Change(_state(path, {}, command), changed=False)
    doc = _parse(path, text)
    if _entry(doc) is None:
        return Change(_state(path, doc, command), changed=False)
    new = _edit(path, lambda: _keep_bom(text, lambda body: jsonc_edit.remove_member(body, PATH)))
    if _parse(path, new).get("mcp") == {}:
        new = _edit(path, lambda: _keep_bom(new, lambda body: jsonc_edit.remove_member(body, ("mcp",))))
    copy = _write(path, text, new)
    return Change(_state(path, _parse(path, new), command), changed=True, copy=copy)


def _entry(doc: dict[str, Any]) -> Any:
    servers = doc.get("mcp")
    return servers.get(SERVER_KEY) if isinstance(servers, dict) else None


def _state(path: Path, doc: dict[str, Any], command: list[str]) -> AgentTools:
    entry = _entry(doc)
    if not isinstance(entry, dict):
        return AgentTools(path, entry is not None, False, (), False)
    raw = entry.get("command")
    argv = tuple(str(a) for a in raw) if isinstance(raw, list) else ()
    return AgentTools(path, True, entry.get("enabled", True) is not False, argv, list(argv) == command)


def _read_text(path: Path) -> str | None:
    """The file's text exactly (no newline translation, a BOM kept), or None when it is missing."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; nothing was written") from None


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        doc = jsonc.loads(text.removeprefix(BOM))
    except jsonc.JsoncError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix it first, nothing was written") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} does not hold a JSON object; fix it first, nothing was written")
    return doc


def _edit(path: Path, edit: Callable[[], str]) -> str:
    try:
        new = edit()
    except jsonc_edit.JsoncEditError as exc:
        raise ConfigError(f"cannot edit {path}: {exc}; nothing was written") from None
    return new


def _keep_bom(text: str, edit: Callable[[str], str]) -> str:
    body = text.removeprefix(BOM)
    return text[: len(text) - len(body)] + edit(body)


def _write(path: Path, old: str | None, new: str) -> Path | None:
    """Keep a copy of the old text, then replace the file atomically (through a symlink to its target,
    so a dotfiles link stays a link); returns the copy."""
    target = path.resolve() if path.is_symlink() else path
    copy = None
    try:
        mode = stat.S_IMODE(target.stat().st_mode) if old is not None else None
        if old is not None:
            copy = target.with_name(target.name + COPY_SUFFIX)
            atomic_write_bytes(copy, target.read_bytes())
        atomic_write_bytes(target, new.encode("utf-8"))
        if mode is not None:
            with contextlib.suppress(OSError):
                os.chmod(target, mode)
    except OSError as exc:
        raise AgentConfigError(f"cannot write {target}: {exc.strerror or exc}") from None
    logger.info("agent tools: wrote %s (copy of the previous file: %s)", target, copy)
    return copy
