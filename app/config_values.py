"""The settings keys, their types and limits, and how one raw value becomes a checked one.

Used by :mod:`app.config`; kept apart so the loading logic stays readable. Every rejection is a
:class:`~app.errors.ConfigError` with one line: key, the value as written, and where it came from.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.errors import ConfigError
from app.transfer import ENGINE_NAMES as ENGINES
from app.transfer.rclone_spec import RemoteSpec, is_remote, parse_spec

logger = logging.getLogger(__name__)

FLAG = "flag"
ENV_PATH = "OPENCODE_BACKUP_PATH"
ENV_DEBUG = "OPENCODE_BACKUP_DEBUG"
ENV_ENCRYPTION = "OPENCODE_BACKUP_ENCRYPTION"
ENV_CONFIG = "OPENCODE_BACKUP_CONFIG"
ENV_DB = "OPENCODE_DB"
_ENV_BOOLS = {ENV_DEBUG: "debug", ENV_ENCRYPTION: "encryption"}
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
)


@dataclass(frozen=True)
class Field:
    """One setting: its file/flag key, its Settings attribute, its kind and default."""

    key: str  # camelCase, as in the file and the flags
    attr: str  # snake_case, as in Settings
    kind: str  # path | destination | bool | number | count | engine | name | bwlimit
    default: object = None
    minimum: float = 0
    maximum: float = 0  # 0: no numbers here


FIELDS: tuple[Field, ...] = (
    Field("backupPath", "backup_path", "destination"),  # a folder, or rclone:REMOTE:PATH
    Field("debug", "debug", "bool", False),
    Field("machineName", "machine_name", "name"),
    Field("syncDelaySeconds", "sync_delay_seconds", "number", 5.0, maximum=86_400),  # a day
    Field("minIntervalSeconds", "min_interval_seconds", "number", 30.0, maximum=86_400),
    Field("engine", "engine", "engine", "auto"),
    Field("snapshotEveryHours", "snapshot_every_hours", "number", 24.0, maximum=24 * 366),  # a year
    Field("keepSnapshots", "keep_snapshots", "count", 7, minimum=1, maximum=10_000),
    Field("keepVersionsDays", "keep_versions_days", "count", 30, maximum=36_600),  # a century
    Field("notifications", "notifications", "bool", True),
    Field("encryption", "encryption", "bool", False),
    Field("source", "source", "path"),
    Field("uploadBandwidthLimit", "upload_bandwidth_limit", "bwlimit", ""),  # rclone's --bwlimit
    Field("uploadOnlyUnmetered", "upload_only_unmetered", "bool", False),
    Field("uploadNotOnBattery", "upload_not_on_battery", "bool", False),
)
BY_KEY = {f.key: f for f in FIELDS}


@dataclass(frozen=True)
class Raw:
    """A value as found at one level, before checking; ``text``: strings may stand for numbers/bools."""

    key: str
    value: object
    origin: str
    text: bool = False


class _Invalid(Exception):
    """A value is wrong; the message names key and value, convert() adds the origin."""


# rclone's --bwlimit: a rate ("1M", "512k", "10M:1M" up:down) or a timetable of them ("08:00,512k 19:00,off")
_BWLIMIT = re.compile(r"^[0-9A-Za-z.:,| -]{1,200}$")


def convert(raw: Raw, home: Path) -> object:
    """The checked value of ``raw`` (Path, RemoteSpec, bool, float, int or str); ConfigError if it is
    wrong."""
    f = BY_KEY[raw.key]
    try:
        if f.kind == "bool":
            return _bool(f, raw)
        if f.kind in ("number", "count"):
            return _number(f, raw)
        if not isinstance(raw.value, str | os.PathLike) or (
            f.kind not in ("path", "destination") and not isinstance(raw.value, str)
        ):
            raise _Invalid(f"{f.key} must be a string, got {show(raw.value)}")
        text = os.fspath(raw.value)
        if "\x00" in text:
            raise _Invalid(f"{f.key} must not contain a NUL character, got {show(text)}")
        if f.kind == "engine":
            if text.strip().lower() not in ENGINES:
                raise _Invalid(f"{f.key} must be one of {', '.join(ENGINES)}; got {show(text)}")
            return text.strip().lower()
        if f.kind == "name":
            return _machine_name(text)
        if f.kind == "bwlimit":  # checked as stored, so it is never taken for an option of rclone's
            rate = text.strip()
            if rate and (not _BWLIMIT.match(rate) or rate.startswith("-")):
                raise _Invalid(
                    f"{f.key} must be a rate as rclone's --bwlimit takes it (1M, 512k), got {show(text)}"
                )
            return rate
        if f.kind == "destination" and isinstance(raw.value, str) and is_remote(text):
            return _remote(f, text)
        path = expand_home(text, home)
        if not path.is_absolute():
            raise _Invalid(f"{f.key} must be an absolute path, got {show(text)}")
        return path
    except _Invalid as exc:
        raise ConfigError(f"{exc} ({where(raw.origin)})") from None


def _bool(f: Field, raw: Raw) -> bool:
    if isinstance(raw.value, bool):
        return raw.value
    if raw.text and isinstance(raw.value, str) and raw.value.strip():
        value = parse_bool_text(raw.value)
        if value is not None:
            return value
    raise _Invalid(f"{f.key} must be true or false, got {show(raw.value)}")


def _number(f: Field, raw: Raw) -> float | int:
    v = raw.value
    if isinstance(v, bool) or not isinstance(v, int | float | str) or (isinstance(v, str) and not raw.text):
        raise _Invalid(f"{f.key} must be a number, got {show(v)}")
    try:
        number = float(v)
    except (ValueError, OverflowError):
        raise _Invalid(f"{f.key} must be a number, got {show(v)}") from None
    if not math.isfinite(number):
        raise _Invalid(f"{f.key} must be a finite number, got {show(v)}")
    if f.kind == "count" and not number.is_integer():
        raise _Invalid(f"{f.key} must be a whole number, got {show(v)}")
    if number < f.minimum:
        limit = "must not be negative" if f.minimum == 0 else f"must be at least {f.minimum:g}"
        raise _Invalid(f"{f.key} {limit}, got {show(v)}")
    if number > f.maximum:
        raise _Invalid(f"{f.key} must be at most {f.maximum:g}, got {show(v)}")
    return int(number) if f.kind == "count" else number


def _remote(f: Field, text: str) -> RemoteSpec:
    try:
        return parse_spec(text)
    except ValueError as exc:
        raise _Invalid(f"{f.key} {show(text)} is not a remote: {exc}") from None


def _machine_name(text: str) -> str:
    if "/" in text or "\\" in text:
        raise _Invalid(f'machineName must not contain "/" or "\\", got {show(text)}')
    name = sanitize_machine_name(text)
    if not name:
        raise _Invalid(f"machineName has no usable characters (A-Z a-z 0-9 . _ -), got {show(text)}")
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        raise _Invalid(f"machineName {show(name)} is a reserved name on Windows")
    if name != text:
        logger.info("machineName %r is used as %r (unsupported characters replaced)", text, name)
    return name


def sanitize_machine_name(name: str) -> str:
    """Keep A-Z a-z 0-9 . _ - (case kept), others become '-'; no leading/trailing dots; max 64."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip(".")
    return cleaned[:64].rstrip(".")


def default_machine_name(hostname: str | None = None) -> str:
    """This machine's folder name: the sanitized hostname (``socket.gethostname()`` by default)."""
    name = sanitize_machine_name(socket.gethostname() if hostname is None else hostname)
    if not name or name.split(".")[0].upper() in _WINDOWS_RESERVED:
        logger.warning("The hostname %r gives no usable folder name; using 'machine'", hostname)
        return "machine"
    return name


def env_layer(env: Mapping[str, str]) -> list[Raw]:
    """The settings the environment gives (``OPENCODE_BACKUP_*``); ConfigError for a bad switch."""
    layer = []
    if env.get(ENV_PATH):
        layer.append(Raw("backupPath", env[ENV_PATH], f"env {ENV_PATH}"))
    for name, key in _ENV_BOOLS.items():
        if name in env:
            value = parse_bool_text(env[name])
            if value is None:
                raise ConfigError(f'{name} must be "true", "1", "false", "0" or empty, got {show(env[name])}')
            layer.append(Raw(key, value, f"env {name}"))
    return layer


def parse_bool_text(text: str) -> bool | None:
    """True for "true"/"1", False for "false"/"0"/"" (any case, spaces ignored), else None."""
    word = text.strip().lower()
    return True if word in ("true", "1") else False if word in ("false", "0", "") else None


def expand_home(text: str, home: Path) -> Path:
    """``~`` or a leading ``~/`` (``~\\``) means ``home``; ``~user`` is left as it is."""
    if text == "~":
        return home
    if text.startswith(("~/", "~\\")):
        return home / text[2:]
    return Path(text)


def show(value: object) -> str:
    """A value as the user wrote it (JSON spelling), cut to a readable length, on one line."""
    try:
        shown = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def where(origin: str) -> str:
    """An origin as the tail of an error message."""
    return "from the command line" if origin == FLAG else f"from {origin}"
