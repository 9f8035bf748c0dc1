"""The agent tools' entry in opencode's global config: ``mcp.session_backup``, read, added and removed.

opencode validates its config strictly (an unknown key stops it from starting) and users write it by hand,
so the file is edited as text (:mod:`app.jsonc_edit`): every other key, comment and line stays as it was.
The entry is ``{"type": "local", "command": [<this install's command>, "mcp"], "enabled": true}``; the
key ``session_backup`` makes opencode name the tools ``session_backup_status``, ``_sync``, ``_restore``.

opencode 2.0 reads the same file (its global config folder is 1.x's: ``packages/util/src/global.ts``), and
nests its servers one level down, ``mcp.servers.<name>``, with ``disabled`` where 1.x has ``enabled`` and
``timeout`` an object (``packages/schema/src/mcp.ts`` ``LocalConfig``); it still reads 1.x's flat
``mcp.<name>`` (``packages/core/src/config/normalize.ts`` ``normalizeMcp``: native and legacy maps merged,
the native entry winning a name). A file keeps the shape it has: one with ``mcp.servers`` gets the entry
there; an empty or flat one gets the flat entry, which both versions read.

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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app import jsonc, jsonc_edit
from app.errors import BackupError, ConfigError
from app.fsutil import atomic_write_bytes
from app.host import HOST
from app.platform.autostart import launch_command

logger = logging.getLogger(__name__)

SERVER_KEY = "session_backup"
PATH = ("mcp", SERVER_KEY)  # 1.x's flat map (2.0 reads it too)
NATIVE_PATH = ("mcp", "servers", SERVER_KEY)  # opencode 2.0's own shape
FILE_NAMES = ("opencode.jsonc", "opencode.json")  # the first that exists is edited
SCHEMA_URL = "https://opencode.ai/config.json"
COPY_SUFFIX = ".before-agent-tools"
BOM = "\ufeff"  # Windows editors may start the file with one; it is kept
MCP_ARGS = ("mcp",)
KEPT_FIELDS = ("cwd", "environment", "timeout")  # a user's additions to the entry survive an enable
NATIVE_KEPT = ("cwd", "environment", "codemode", "protocol")  # and 2.0's (its timeout is an object)


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
    shape: str = "flat"  # where the entry is (or would go): "flat" mcp.<name>, "servers" mcp.servers.<name>


@dataclass(frozen=True)
class Change:
    """What enable or disable did: ``changed`` False when the file already said so (nothing written);
    ``copy``: where the file as it was before is kept (None: there was no file)."""

    state: AgentTools
    changed: bool
    copy: Path | None = None
    also: tuple[Change, ...] = ()  # the same in opencode 2.0's own config folder, when there is one


def apply(action: str, folders: list[Path], command: list[str]) -> Change:
    """``status``, ``enable`` or ``disable`` in each of opencode's config folders (1.x's and 2.0's, which
    may be the same): every file is read and parsed before any is written, so a file that does not parse
    changes nothing anywhere. The first folder's change, with the others' in ``also``."""
    states = [read(folder, command) for folder in folders]
    if action == "status":
        changes = [Change(state, changed=False) for state in states]
    else:
        edit = enable if action == "enable" else disable
        changes = [edit(folder, command) for folder in folders]
    return replace(changes[0], also=tuple(changes[1:]))


def mcp_command() -> list[str]:
    """The argv that starts this install's MCP server: as start-at-login finds the install, but the
    console script (stdio needs a console program on Windows, not the tray's GUI script or pythonw)."""
    return launch_command(
        frozen=bool(getattr(sys, "frozen", False)),
        executable=sys.executable,
        which=lambda name, folder: shutil.which(name, path=folder),
        windows=HOST.windows,  # the console executable, never the windowed tray one
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
    """Add or update the entry so that opencode starts ``command``, in the shape the file uses; idempotent."""
    path = config_file(config_dir)
    text = _read_text(path)
    doc = _parse(path, text) if text is not None else {}
    shape = _shape(doc)
    old = _entry(doc, shape)
    entry: dict[str, Any] = {"type": "local", "command": list(command)}
    if shape == "flat":
        entry["enabled"] = True
    if isinstance(old, dict):
        entry.update({k: old[k] for k in KEPT_FIELDS if k in old and shape == "flat"})
        entry.update({k: old[k] for k in NATIVE_KEPT if k in old and shape == "servers"})
        if shape == "servers" and isinstance(old.get("timeout"), dict):
            entry["timeout"] = old["timeout"]
    if old == entry:
        return Change(_state(path, doc, command), changed=False)
    where = NATIVE_PATH if shape == "servers" else PATH
    base = text if text is not None else '{\n  "$schema": ' + f'"{SCHEMA_URL}"' + "\n}\n"
    new = _edit(path, lambda: _keep_bom(base, lambda body: jsonc_edit.set_member(body, where, entry)))
    copy = _write(path, text, new)
    return Change(_state(path, _parse(path, new), command), changed=True, copy=copy)


def disable(config_dir: Path, command: list[str]) -> Change:
    """Remove the entry, in either shape (and an ``mcp`` or ``mcp.servers`` object left empty by that);
    idempotent."""
    path = config_file(config_dir)
    text = _read_text(path)
    if text is None:
        return Change(_state(path, {}, command), changed=False)
    doc = _parse(path, text)
    if _entry(doc, "servers") is None and _entry(doc, "flat") is None:
        return Change(_state(path, doc, command), changed=False)
    new = text
    for shape, where in (("servers", NATIVE_PATH), ("flat", PATH)):
        if _entry(_parse(path, new), shape) is not None:
            new = _removed(path, new, where)
    for emptied in (("mcp", "servers"), ("mcp",)):
        if _member(_parse(path, new), emptied) == {}:
            new = _removed(path, new, emptied)
    copy = _write(path, text, new)
    return Change(_state(path, _parse(path, new), command), changed=True, copy=copy)


def _removed(path: Path, text: str, member: tuple[str, ...]) -> str:
    return _edit(path, lambda: _keep_bom(text, lambda body: jsonc_edit.remove_member(body, member)))


def _shape(doc: dict[str, Any]) -> str:
    """ "servers" when the file holds 2.0's native map ``mcp.servers`` (not a 1.x server named "servers",
    which has a type of its own), else "flat"."""
    servers = _member(doc, ("mcp", "servers"))
    native = isinstance(servers, dict) and servers.get("type") not in ("local", "remote")
    return "servers" if native else "flat"


def _member(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = doc
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _entry(doc: dict[str, Any], shape: str) -> Any:
    """The entry in ``shape``'s place (None: not there)."""
    return _member(doc, NATIVE_PATH if shape == "servers" else PATH)


def _state(path: Path, doc: dict[str, Any], command: list[str]) -> AgentTools:
    """What the file says: 2.0's entry where there is one (it wins a name), else the flat one."""
    shape = _shape(doc)
    if _entry(doc, shape) is None and _entry(doc, "flat") is not None:
        shape = "flat"  # a file of 2.0's shape that holds only the flat entry: both read it
    entry = _entry(doc, shape)
    if not isinstance(entry, dict):
        return AgentTools(path, entry is not None, False, (), False, shape)
    raw = entry.get("command")
    argv = tuple(str(a) for a in raw) if isinstance(raw, list) else ()
    if shape == "servers":
        on = entry.get("disabled", False) is not True
    else:
        on = entry.get("enabled", True) is not False
    return AgentTools(path, True, on, argv, list(argv) == command, shape)


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
