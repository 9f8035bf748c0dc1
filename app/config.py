"""Settings: one frozen dataclass, and where each of its values came from.

Precedence, highest first: command-line flags > environment > ``session-backup.json`` > the legacy
``"session-backup"`` object in opencode's own ``opencode.json[c]`` > defaults (for ``backupPath``:
Google Drive, when found). :func:`load` reads files and looks at folders; it never writes or
creates anything. Every bad value raises :class:`~app.errors.ConfigError` with one line that names
the key, the value and where it came from.

Both files are read as JSONC (comments and trailing commas allowed). A leading ``~`` in a path value
means the home folder (``~user`` is not supported).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from app import jsonc, paths
from app.config_destination import check_folder, check_remote, resolve
from app.config_values import (
    BY_KEY,
    ENV_CONFIG,
    ENV_DB,
    ENV_DEBUG,
    ENV_ENCRYPTION,
    ENV_PATH,
    FIELDS,
    FLAG,
    Raw,
    convert,
    default_machine_name,
    env_layer,
    expand_home,
    sanitize_machine_name,
    show,
    where,
)
from app.errors import ConfigError
from app.fsutil import atomic_write_bytes
from app.platform import drivefs
from app.transfer import ENGINE_NAMES as ENGINES
from app.transfer.rclone_spec import RemoteSpec, cache_dir, is_remote

__all__ = [
    "ENGINES",
    "ENV_CONFIG",
    "ENV_DEBUG",
    "ENV_ENCRYPTION",
    "ENV_PATH",
    "FLAG_KEYS",
    "Settings",
    "as_json",
    "default_machine_name",
    "describe",
    "load",
    "not_configured_message",
    "sanitize_machine_name",
    "save_backup_path",
    "save_settings",
    "validate_destination",
]

logger = logging.getLogger(__name__)

DEFAULT = "default"
LEGACY_KEY = "session-backup"
_EXTRA_KEYS = {"opencode_db": "opencodeDb", "config_file": "configFile"}
FLAG_KEYS = frozenset({*BY_KEY, "configFile"})


@dataclass(frozen=True)
class Settings:
    """The effective settings. ``origins`` maps each field name (snake_case) to where it came from:
    "flag", "env NAME", "file PATH", "legacy PATH", "default" or "auto-detected (Google Drive)"."""

    backup_path: Path | None  # None: not configured (see not_configured_message); a remote's: its mirror
    debug: bool
    machine_name: str
    sync_delay_seconds: float
    min_interval_seconds: float
    engine: str
    snapshot_every_hours: float
    keep_snapshots: int
    keep_versions_days: int
    notifications: bool
    encryption: bool  # the backup's files are encrypted (age) to this install's recipients
    source: Path  # opencode's data folder, symlinks resolved
    opencode_db: Path | None  # from OPENCODE_DB; None: find it in source
    config_file: Path  # the session-backup.json that was (or would have been) read
    remote: RemoteSpec | None = None  # backupPath written rclone:REMOTE:PATH (backup_path: its local mirror)
    upload_bandwidth_limit: str = ""  # rclone's --bwlimit for uploads to a remote ('': none)
    upload_only_unmetered: bool = False  # a remote's uploads wait while the network is metered
    upload_not_on_battery: bool = False  # ... and while the computer runs on battery
    origins: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @property
    def machine_dir(self) -> Path | None:
        """``<backup_path>/<machine_name>``, this machine's folder at the destination (a remote's: in its
        local mirror); None if not set."""
        return None if self.backup_path is None else self.backup_path / self.machine_name

    @property
    def destination_text(self) -> str | None:
        """The backup path as the user wrote it (a folder, or ``rclone:REMOTE:PATH``); None if not set."""
        if self.remote is not None:
            return self.remote.text
        return None if self.backup_path is None else str(self.backup_path)

    @property
    def destination_from(self) -> str:
        """Where ``backupPath`` was set, as the tail of an error message ("from the command line")."""
        return where(self.origins.get("backup_path", DEFAULT))

    @property
    def machine_text(self) -> str | None:
        """This machine's folder as the user knows it (``REMOTE:PATH/<machine>`` on a remote)."""
        if self.remote is not None:
            return self.remote.at(self.machine_name)
        return None if self.machine_dir is None else str(self.machine_dir)


def load(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    platform: str | None = None,
    hostname: str | None = None,
    drive_roots: Sequence[Path] | None = None,
    check_destination: bool = True,
) -> Settings:
    """Build the effective Settings; raise ConfigError (one line) on any bad value. Writes nothing.

    ``flags`` uses the file's camelCase keys plus ``configFile``; None values are ignored, unknown keys are
    a programming error (ValueError). ``env`` defaults to ``os.environ``, ``platform`` to this system's,
    ``hostname`` to ``socket.gethostname()``. ``check_destination``: check the backup folder too."""
    env = os.environ if env is None else env
    platform = platform or paths.current_platform()
    home = paths.home_dir(env, platform)
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = sorted(set(given) - FLAG_KEYS)
    if unknown:
        raise ValueError(f"unknown settings flags: {', '.join(unknown)}")

    config_dir = paths.opencode_config_dir(env, platform)
    config_file, file_origin = _config_file(given, env, home, config_dir)
    layers = [
        [Raw(k, v, FLAG, text=True) for k, v in given.items() if k in BY_KEY],
        env_layer(env),
        _file_layer(config_file, explicit=file_origin != DEFAULT),
        *_legacy_layers(config_dir),
    ]
    chosen: dict[str, tuple[object, str]] = {}
    for layer in layers:
        for raw in layer:  # every value is checked, even one a higher level overrides
            chosen.setdefault(raw.key, (convert(raw, home), raw.origin))

    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for f in FIELDS:
        value, origin = chosen.get(f.key, (f.default, DEFAULT))
        if f.key not in chosen and f.key == "backupPath":
            value, detected = drivefs.default_destination(platform, env, drive_roots=drive_roots)
            origin = detected or DEFAULT
        elif f.key not in chosen and f.key == "machineName":
            value = default_machine_name(hostname)
        elif f.key not in chosen and f.key == "source":
            value = paths.opencode_data_dir(env, platform)
        values[f.attr], origins[f.attr] = value, origin
    source = resolve(Path(str(values["source"])), "source")
    values["source"] = source
    remote = values["backup_path"]
    if isinstance(remote, RemoteSpec):
        values["remote"], origins["remote"] = remote, origins["backup_path"]
        values["backup_path"] = cache_dir(remote) / "mirror"

    db = env.get(ENV_DB, "")
    values["opencode_db"] = (source / db if not Path(db).is_absolute() else Path(db)) if db else None
    origins["opencode_db"] = f"env {ENV_DB}" if db else DEFAULT
    values["config_file"], origins["config_file"] = config_file, file_origin

    settings = Settings(**values, origins=MappingProxyType(origins))  # type: ignore[arg-type]
    if check_destination:
        validate_destination(settings)
    return settings


def destination_problem(settings: Settings) -> str | None:
    """Why the backup folder cannot be used, in every command's words (None: it can, or is only not there)."""
    try:
        validate_destination(settings, allow_unmounted=True)
    except ConfigError as exc:
        return str(exc)
    return None


def validate_destination(settings: Settings, *, allow_unmounted: bool = False) -> None:
    """Raise ConfigError unless the backup destination can be used (see :mod:`app.config_destination`):
    a folder outside opencode's data folder that can be written, or an rclone remote of the user's config
    with rclone installed.

    With ``allow_unmounted`` a folder whose parent is missing is accepted: the service starts at login,
    maybe before Google Drive has mounted, and retries (DEST_MISSING) instead of refusing to start.
    """
    if settings.backup_path is None:
        return
    tail = settings.destination_from
    if settings.remote is not None:
        check_remote(settings.remote, tail)
    else:
        check_folder(settings.backup_path, settings.source, tail, allow_unmounted=allow_unmounted)


def not_configured_message(settings: Settings) -> str:
    """What to tell a user when no backup folder is set (and none was auto-detected)."""
    return (
        "No backup folder is set. Choose one with --backup-path PATH, the environment variable "
        f'{ENV_PATH}, or "backupPath" in {settings.config_file} '
        '(for example {"backupPath": "/path/to/Google Drive/opencode-sessions"}).'
    )


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """Rows of (key, value, origin) for ``opencode-backup config``, keys as in the file."""
    return [(key, _text(value), origin) for key, (value, origin) in _items(settings).items()]


def as_json(settings: Settings) -> dict[str, object]:
    """JSON-ready view for ``opencode-backup config --json``: settings, origins and machineDir."""
    items = _items(settings)
    return {
        "settings": {key: str(v) if isinstance(v, Path) else v for key, (v, _) in items.items()},
        "origins": {key: origin for key, (_, origin) in items.items()},
        "machineDir": settings.machine_text,
        **({"mirror": str(settings.machine_dir)} if settings.remote is not None else {}),
    }


# ---- reading ---------------------------------------------------------------------------------------


def _config_file(
    given: Mapping[str, object], env: Mapping[str, str], home: Path, config_dir: Path
) -> tuple[Path, str]:
    """The settings file to read and its origin; an explicitly named file must exist."""
    if "configFile" in given:
        raw, origin = given["configFile"], FLAG
    elif env.get(ENV_CONFIG):
        raw, origin = env[ENV_CONFIG], f"env {ENV_CONFIG}"
    else:
        return config_dir / paths.CONFIG_FILE_NAME, DEFAULT
    if not isinstance(raw, str | os.PathLike):
        raise ValueError(f"configFile flag must be a path, got {raw!r}")
    path = Path(os.path.abspath(expand_home(os.fspath(raw), home)))
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist ({where(origin)})")
    return path, origin


def _file_layer(path: Path, *, explicit: bool) -> list[Raw]:
    text = _read_text(path)
    if text is None:
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return []
    return _entries(_parse_object(path, text), f"file {path}", path)


def _legacy_layers(config_dir: Path) -> list[list[Raw]]:
    """The legacy "session-backup" object; opencode.jsonc overrides opencode.json, as in opencode."""
    layers = []
    for name in ("opencode.jsonc", "opencode.json"):
        path = config_dir / name
        text = _read_text(path)
        if text is None or f'"{LEGACY_KEY}"' not in text:
            continue
        section = _parse_object(path, text).get(LEGACY_KEY)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ConfigError(f'{path}: "{LEGACY_KEY}" must be an object {{...}}, got {show(section)}')
        logger.warning(
            'Settings read from "%s" in %s. opencode itself rejects that key and may refuse to start: '
            "move its contents to %s (same keys, without the wrapper) and delete it from %s.",
            LEGACY_KEY,
            path,
            config_dir / paths.CONFIG_FILE_NAME,
            name,
        )
        layers.append(_entries(section, f"legacy {path}", path))
    return layers


MAX_SETTINGS_BYTES = 1 << 20  # a settings file is a few hundred bytes


def _read_text(path: Path) -> str | None:
    """The file's text, or None if it does not exist. Unreadable, not a regular file, over 1 MiB or not
    UTF-8 -> ConfigError."""
    try:
        if path.is_dir():
            raise ConfigError(f"{path} is a folder, not a settings file")
        if path.exists() and not path.is_file():
            raise ConfigError(f"{path} is not a regular file (a device or a pipe?), not a settings file")
        with open(path, "rb") as fh:
            data = fh.read(MAX_SETTINGS_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_SETTINGS_BYTES:
        raise ConfigError(f"{path} is larger than 1 MiB: not a settings file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path} line {line}: not UTF-8 text") from None


def _parse_object(path: Path, text: str) -> dict[str, object]:
    try:
        if not jsonc.strip(text).strip():
            logger.warning("%s is empty; using defaults for everything it would set", path)
            return {}
        value = jsonc.loads(text)
    except jsonc.JsoncError as exc:
        raise ConfigError(f"{path} line {exc.line}: {exc.reason}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a JSON object {{...}} at the top, got {show(value)}")
    return value


def _entries(obj: Mapping[str, object], origin: str, path: Path) -> list[Raw]:
    """One raw entry per known key (null means "not set here"); unknown keys are logged, not fatal."""
    entries = []
    for key, value in obj.items():
        if key in BY_KEY:
            if value is not None:
                entries.append(Raw(key, value, origin))
        elif not key.startswith("$"):  # "$schema" and friends are for editors
            close = difflib.get_close_matches(key, list(BY_KEY), n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            logger.warning('Unknown key "%s" in %s is ignored%s', key, path, hint)
    return entries


# ---- showing ---------------------------------------------------------------------------------------


def _items(settings: Settings) -> dict[str, tuple[object, str]]:
    keys = {f.attr: f.key for f in FIELDS} | _EXTRA_KEYS
    shown = {attr: getattr(settings, attr) for attr in keys} | {"backup_path": settings.destination_text}
    return {key: (shown[attr], settings.origins.get(attr, DEFAULT)) for attr, key in keys.items()}


def _text(value: object) -> str:
    if value is None or value == "":
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else repr(value)
    return str(value)


# ---- writing ---------------------------------------------------------------------------------------


def save_backup_path(folder: Path | str, env: Mapping[str, str] | None = None) -> Settings:
    """Check ``folder`` (a folder, or ``rclone:REMOTE:PATH``) as a backup destination, then set
    ``backupPath`` (see :func:`save_settings`)."""
    value = folder if isinstance(folder, str) and is_remote(folder) else os.path.abspath(folder)
    load({"backupPath": value}, env)  # every check the command line makes, before writing
    return save_settings({"backupPath": value}, env)


def save_settings(changes: Mapping[str, object], env: Mapping[str, str] | None = None) -> Settings:
    """Set ``changes`` (file keys) in our own settings file, keeping its other keys (not comments); the
    settings now in effect. Each value is checked first; ConfigError and nothing written when one is wrong
    or the file cannot be parsed."""
    path = load(env=env, check_destination=False).config_file
    home = paths.home_dir(os.environ if env is None else env, paths.current_platform())
    for key, value in changes.items():
        convert(Raw(key, value, f"file {path}"), home)
    text = _read_text(path)
    obj = _parse_object(path, text) if text is not None else {}
    obj.update(changes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    return load(env=env, check_destination=False)
