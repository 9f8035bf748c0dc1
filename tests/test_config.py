"""Settings as a user meets them: precedence, origins, the legacy key, bad values, Drive detection.

Each test builds its own environment dict (HOME and XDG dirs under tmp_path) and passes the platform
name; the real HOME is never read or written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import config, jsonc
from app.errors import ConfigError

Env = dict[str, str]


@pytest.fixture
def env(isolated_home: Path) -> Env:
    return {
        "HOME": str(isolated_home),
        "XDG_CONFIG_HOME": str(isolated_home / ".config"),
        "XDG_DATA_HOME": str(isolated_home / ".local" / "share"),
    }


def config_dir(env: Env) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "opencode"


def data_dir(env: Env) -> Path:
    return Path(env["XDG_DATA_HOME"]) / "opencode"


def settings_file(env: Env) -> Path:
    return config_dir(env) / "session-backup.json"


def write(path: Path, content: str | dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2), "utf-8")
    return path


def load(env: Env, flags: dict[str, object] | None = None, **kwargs: Any) -> config.Settings:
    kwargs.setdefault("platform", "linux")
    kwargs.setdefault("hostname", "test-host")
    return config.load(flags, env, **kwargs)


def tree(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.lstat().st_mtime_ns) for p in root.rglob("*"))


# ---- defaults ------------------------------------------------------------------------------------


def test_defaults_on_linux_mean_not_configured(env: Env) -> None:
    s = load(env)
    assert s.backup_path is None and s.machine_dir is None
    assert (s.debug, s.machine_name, s.engine, s.notifications) == (False, "test-host", "auto", True)
    assert (s.sync_delay_seconds, s.min_interval_seconds, s.snapshot_every_hours) == (5, 30, 24)
    assert (s.keep_snapshots, s.keep_versions_days) == (7, 30)
    assert s.source == data_dir(env).resolve()
    assert s.opencode_db is None
    assert s.config_file == settings_file(env)
    assert set(s.origins.values()) == {"default"}
    message = config.not_configured_message(s)
    for needed in ("--backup-path", "OPENCODE_BACKUP_PATH", '"backupPath"', str(settings_file(env))):
        assert needed in message


def test_settings_are_immutable(env: Env) -> None:
    s = load(env)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.debug = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.origins["debug"] = "flag"  # type: ignore[index]


# ---- precedence ----------------------------------------------------------------------------------

LEVELS = ("legacy", "file", "env", "flag")


def _set_levels(env: Env, levels: tuple[str, ...], values: dict[str, Any]) -> tuple[Env, dict[str, object]]:
    """Put the same key at each of ``levels``; values[level] is what that level says."""
    env = dict(env)
    flags: dict[str, object] = {}
    file_keys: dict[str, Any] = {}
    legacy_keys: dict[str, Any] = {}
    for level in levels:
        key, value = values[level]
        if level == "flag":
            flags[key] = value
        elif level == "env":
            env[key] = value
        elif level == "file":
            file_keys[key] = value
        else:
            legacy_keys[key] = value
    if file_keys:
        write(settings_file(env), file_keys)
    if legacy_keys:
        write(config_dir(env) / "opencode.jsonc", {"session-backup": legacy_keys})
    return env, flags


ALL_SUBSETS = [c for n in range(1, 5) for c in combinations(LEVELS, n)]


@pytest.mark.parametrize("levels", ALL_SUBSETS, ids="+".join)
def test_backup_path_precedence_flag_env_file_legacy(
    env: Env, tmp_path: Path, levels: tuple[str, ...]
) -> None:
    dests = {level: tmp_path / f"dest-{level}" for level in LEVELS}
    values = {
        "flag": ("backupPath", str(dests["flag"])),
        "env": ("OPENCODE_BACKUP_PATH", str(dests["env"])),
        "file": ("backupPath", str(dests["file"])),
        "legacy": ("backupPath", str(dests["legacy"])),
    }
    env, flags = _set_levels(env, levels, values)
    s = load(env, flags)
    winner = levels[-1]  # LEVELS is lowest first, combinations keep that order
    assert s.backup_path == dests[winner]
    expected_origin = {
        "flag": "flag",
        "env": "env OPENCODE_BACKUP_PATH",
        "file": f"file {settings_file(env)}",
        "legacy": f"legacy {config_dir(env) / 'opencode.jsonc'}",
    }[winner]
    assert s.origins["backup_path"] == expected_origin
    assert ("backupPath", str(dests[winner]), expected_origin) in config.describe(s)


@pytest.mark.parametrize("levels", ALL_SUBSETS, ids="+".join)
def test_debug_precedence_flag_env_file_legacy(env: Env, levels: tuple[str, ...]) -> None:
    values = {  # alternate so every winner is visible
        "flag": ("debug", False),
        "env": ("OPENCODE_BACKUP_DEBUG", "1"),
        "file": ("debug", False),
        "legacy": ("debug", True),
    }
    env, flags = _set_levels(env, levels, values)
    s = load(env, flags)
    assert s.debug is {"flag": False, "env": True, "file": False, "legacy": True}[levels[-1]]
    assert s.origins["debug"].startswith(levels[-1])


def test_every_file_key_is_read_and_overridden_by_flags(env: Env, tmp_path: Path) -> None:
    write(
        settings_file(env),
        {
            "backupPath": str(tmp_path / "b"),
            "debug": True,
            "machineName": "desk",
            "syncDelaySeconds": 1,
            "minIntervalSeconds": 2.5,
            "engine": "rsync",
            "snapshotEveryHours": 6,
            "keepSnapshots": 3,
            "keepVersionsDays": 0,
            "notifications": False,
            "encryption": True,
            "source": str(tmp_path / "src"),
            "uploadBandwidthLimit": "08:00,512k 19:00,off",
            "uploadOnlyUnmetered": True,
            "uploadNotOnBattery": True,
        },
    )
    s = load(env)
    assert s.encryption is True
    assert (s.backup_path, s.debug, s.machine_name, s.engine) == (tmp_path / "b", True, "desk", "rsync")
    assert (s.upload_bandwidth_limit, s.upload_only_unmetered, s.upload_not_on_battery) == (
        "08:00,512k 19:00,off",
        True,
        True,
    )
    assert (s.sync_delay_seconds, s.min_interval_seconds, s.snapshot_every_hours) == (1, 2.5, 6)
    assert (s.keep_snapshots, s.keep_versions_days, s.notifications) == (3, 0, False)
    assert s.source == tmp_path / "src"
    assert s.machine_dir == tmp_path / "b" / "desk"
    assert all(
        o == f"file {settings_file(env)}"
        for k, o in s.origins.items()
        if k not in ("opencode_db", "config_file")
    )

    flags: dict[str, object] = {
        "syncDelaySeconds": "9",
        "engine": "native",
        "keepSnapshots": 2,
        "debug": None,
    }
    s = load(env, flags)
    assert (s.sync_delay_seconds, s.engine, s.keep_snapshots, s.debug) == (9.0, "native", 2, True)
    assert s.origins["sync_delay_seconds"] == "flag" and s.origins["debug"].startswith("file ")


def test_config_file_named_by_env_or_flag(env: Env, tmp_path: Path) -> None:
    by_env = write(tmp_path / "by-env.json", {"keepSnapshots": 4})
    by_flag = write(tmp_path / "by-flag.jsonc", '{"keepSnapshots": 5, // mine\n}')
    write(settings_file(env), {"keepSnapshots": 6})
    env = {**env, "OPENCODE_BACKUP_CONFIG": str(by_env)}
    s = load(env)
    assert (s.keep_snapshots, s.config_file, s.origins["config_file"]) == (
        4,
        by_env,
        "env OPENCODE_BACKUP_CONFIG",
    )
    s = load(env, {"configFile": str(by_flag)})
    assert (s.keep_snapshots, s.config_file, s.origins["config_file"]) == (5, by_flag, "flag")


def test_opencode_config_dir_moves_both_files(env: Env, tmp_path: Path) -> None:
    custom = tmp_path / "custom-config"
    write(custom / "session-backup.json", {"engine": "rsync"})
    s = load({**env, "OPENCODE_CONFIG_DIR": str(custom)})
    assert s.engine == "rsync" and s.config_file == custom / "session-backup.json"


def test_null_and_none_mean_not_set_here(env: Env, tmp_path: Path) -> None:
    write(settings_file(env), {"backupPath": None, "engine": "rsync"})
    write(config_dir(env) / "opencode.json", {"session-backup": {"backupPath": str(tmp_path / "d")}})
    s = load(env, {"engine": None, "backupPath": None})
    assert s.backup_path == tmp_path / "d" and s.engine == "rsync"


def test_tilde_means_home(env: Env) -> None:
    write(settings_file(env), {"backupPath": "~/backups", "source": "~/oc-data"})
    s = load(env)
    assert s.backup_path == Path(env["HOME"]) / "backups"
    assert s.source == Path(env["HOME"]).resolve() / "oc-data"


def test_unknown_flag_key_is_a_programming_error(env: Env) -> None:
    with pytest.raises(ValueError, match="backup_path"):
        load(env, {"backup_path": "/x"})


# ---- the legacy key in opencode.json[c] ----------------------------------------------------------

LEGACY_JSONC = """\
{
  // opencode's own settings, with comments and trailing commas
  "$schema": "https://opencode.ai/config.json",
  "provider": { "local": { "options": { "baseURL": "http://localhost:1234//v1 /* not a comment */" } } },
  /* the plugin's old home:
     opencode rejects it today */
  "session-backup": {
    "backupPath": "%s", // where it goes
    "debug": true,
    "keepSnapshots": 3,
  },
}
"""


def test_legacy_jsonc_is_read_with_a_warning_and_left_untouched(
    env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    legacy = write(config_dir(env) / "opencode.jsonc", LEGACY_JSONC % (tmp_path / "dest"))
    before, stat_before = legacy.read_bytes(), legacy.stat()
    with caplog.at_level(logging.WARNING, logger="app.config"):
        s = load(env)
    assert (s.backup_path, s.debug, s.keep_snapshots) == (tmp_path / "dest", True, 3)
    assert s.origins["backup_path"] == f"legacy {legacy}"
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "opencode itself rejects" in warning and str(settings_file(env)) in warning
    assert legacy.read_bytes() == before and legacy.stat().st_mtime_ns == stat_before.st_mtime_ns
    assert not settings_file(env).exists()  # never written for the user either


def test_legacy_jsonc_overrides_legacy_json_like_opencode_does(env: Env) -> None:
    write(config_dir(env) / "opencode.json", {"session-backup": {"engine": "rsync", "keepSnapshots": 2}})
    jsonc_file = write(config_dir(env) / "opencode.jsonc", {"session-backup": {"engine": "native"}})
    s = load(env)
    assert s.engine == "native" and s.origins["engine"] == f"legacy {jsonc_file}"
    assert s.keep_snapshots == 2


def test_broken_opencode_json_without_our_key_is_not_our_business(env: Env) -> None:
    write(config_dir(env) / "opencode.json", '{"theme": "x",,, oops')
    assert load(env).backup_path is None


# ---- bad configurations: rejected, one line, nothing written --------------------------------------

Setup = Callable[[Env, Path, pytest.MonkeyPatch], tuple[Env, dict[str, object]]]


def _file(content: str | dict[str, Any]) -> Setup:
    def setup(env: Env, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Env, dict[str, object]]:
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        write(settings_file(env), text.replace("TMP", str(tmp)))
        return env, {}

    return setup


def _legacy(content: str) -> Setup:
    def setup(env: Env, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Env, dict[str, object]]:
        write(config_dir(env) / "opencode.jsonc", content)
        return env, {}

    return setup


def _env(**extra: str) -> Setup:
    def setup(env: Env, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Env, dict[str, object]]:
        return {**env, **{k: v.replace("TMP", str(tmp)) for k, v in extra.items()}}, {}

    return setup


def _flags(**flags: object) -> Setup:
    def setup(env: Env, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Env, dict[str, object]]:
        return env, {k: v.replace("TMP", str(tmp)) if isinstance(v, str) else v for k, v in flags.items()}

    return setup


def _dest(make: Callable[[Env, Path], Path]) -> Setup:
    def setup(env: Env, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Env, dict[str, object]]:
        return env, {"backupPath": str(make(env, tmp))}

    return setup


def _with_flags(setup: Setup, **flags: object) -> Setup:
    """``setup``, plus flags that are fine on their own (a bad lower level must still fail)."""

    def both(env: Env, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Env, dict[str, object]]:
        env, found = setup(env, tmp, mp)
        return env, {**found, **flags}

    return both


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _a_file(env: Env, tmp: Path) -> Path:
    (tmp / "dest").write_text("x")
    return tmp / "dest"


def _link_into_data(env: Env, tmp: Path) -> Path:
    (tmp / "link").symlink_to(_mkdir(data_dir(env)))
    return tmp / "link" / "backups"


def _broken_link(env: Env, tmp: Path) -> Path:
    (tmp / "dangling").symlink_to(tmp / "gone")
    return tmp / "dangling"


def _not_writable(env: Env, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Env, dict[str, object]]:
    mp.setattr(os, "access", lambda *a, **k: False)
    return env, {"backupPath": str(tmp / "dest")}


def _missing_config(env: Env, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Env, dict[str, object]]:
    return {**env, "OPENCODE_BACKUP_CONFIG": str(tmp / "nope.json")}, {}


def _not_utf8(env: Env, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[Env, dict[str, object]]:
    settings_file(env).parent.mkdir(parents=True)
    settings_file(env).write_bytes(b'{\n  "machineName": "caf\xe9"\n}')
    return env, {}


BAD: list[tuple[str, Setup, str]] = [
    (
        "relative path in file",
        _file({"backupPath": "backups"}),
        'backupPath must be an absolute path, got "backups"',
    ),
    ("relative path in env", _env(OPENCODE_BACKUP_PATH="rel/dir"), "(from env OPENCODE_BACKUP_PATH)"),
    ("relative path flag", _flags(backupPath="x"), 'got "x" (from the command line)'),
    ("relative source", _file({"source": "data"}), 'source must be an absolute path, got "data"'),
    ("path not a string", _file({"backupPath": 5}), "backupPath must be a string, got 5"),
    ("inside data dir", _dest(lambda e, t: data_dir(e) / "backups"), "is inside opencode's data folder"),
    ("is the data dir", _dest(lambda e, t: _mkdir(data_dir(e))), "is inside opencode's data folder"),
    ("contains data dir", _dest(lambda e, t: Path(e["HOME"]) / ".local"), "contains opencode's data folder"),
    ("symlink into data dir", _dest(_link_into_data), "is inside opencode's data folder"),
    ("destination is a file", _dest(_a_file), "is a file, not a folder"),
    ("parent missing", _dest(lambda e, t: t / "missing" / "dest"), "missing does not exist"),
    ("parent is a file", _dest(lambda e, t: _a_file(e, t) / "sub"), "dest is not a folder"),
    ("broken symlink", _dest(_broken_link), "is a broken symbolic link"),
    ("not writable", _not_writable, "is not writable"),
    ("parse error", _file('{\n  "debug": true\n  "engine": "rsync"\n}'), "session-backup.json line 3: "),
    (
        "unterminated comment",
        _file('{\n  "debug": true /* oops\n}'),
        "session-backup.json line 2: unterminated",
    ),
    (
        "legacy parse error",
        _legacy('{\n"session-backup": {\n "debug": true,\n "x" 1}}'),
        "opencode.jsonc line 4: ",
    ),
    ("not an object", _file("[1, 2]"), "expected a JSON object"),
    ("legacy not an object", _legacy('{"session-backup": "on"}'), '"session-backup" must be an object'),
    ("not UTF-8", _not_utf8, "session-backup.json line 2: not UTF-8 text"),
    ("number as text", _file({"syncDelaySeconds": "abc"}), 'syncDelaySeconds must be a number, got "abc"'),
    ("quoted number in file", _file({"syncDelaySeconds": "5"}), 'syncDelaySeconds must be a number, got "5"'),
    (
        "bool is not a number",
        _file({"minIntervalSeconds": True}),
        "minIntervalSeconds must be a number, got true",
    ),
    ("NaN", _file('{"snapshotEveryHours": NaN}'), "snapshotEveryHours must be a finite number"),
    ("flag text not a number", _flags(syncDelaySeconds="soon"), 'got "soon" (from the command line)'),
    ("negative delay", _file({"syncDelaySeconds": -1}), "syncDelaySeconds must not be negative, got -1"),
    ("negative interval", _file({"minIntervalSeconds": -0.5}), "minIntervalSeconds must not be negative"),
    ("negative hours", _flags(snapshotEveryHours=-2.0), "snapshotEveryHours must not be negative"),
    ("negative days", _file({"keepVersionsDays": -3}), "keepVersionsDays must not be negative"),
    ("keepSnapshots 0", _file({"keepSnapshots": 0}), "keepSnapshots must be at least 1, got 0"),
    (
        "keepSnapshots fraction",
        _file({"keepSnapshots": 2.5}),
        "keepSnapshots must be a whole number, got 2.5",
    ),
    (
        "unknown engine",
        _file({"engine": "ftp"}),
        'engine must be one of auto, rsync, robocopy, native; got "ftp"',
    ),
    ("engine not text", _file({"engine": 1}), "engine must be a string, got 1"),
    ("machineName slash", _file({"machineName": "a/b"}), 'machineName must not contain "/" or "\\"'),
    ("machineName backslash", _flags(machineName="a\\b"), 'machineName must not contain "/" or "\\"'),
    ("machineName empty", _file({"machineName": ""}), "machineName has no usable characters"),
    ("machineName dots", _file({"machineName": "..."}), "machineName has no usable characters"),
    ("machineName reserved", _file({"machineName": "nul"}), "is a reserved name on Windows"),
    ("debug not a bool", _file({"debug": "yes"}), 'debug must be true or false, got "yes"'),
    (
        "env debug",
        _env(OPENCODE_BACKUP_DEBUG="yes"),
        'OPENCODE_BACKUP_DEBUG must be "true", "1", "false", "0"',
    ),
    (
        "env encryption",
        _env(OPENCODE_BACKUP_ENCRYPTION="on"),
        'OPENCODE_BACKUP_ENCRYPTION must be "true", "1", "false", "0"',
    ),
    ("missing named config", _missing_config, "nope.json does not exist (from env OPENCODE_BACKUP_CONFIG)"),
    ("bad value under a good flag", _with_flags(_file({"keepSnapshots": 0}), keepSnapshots=5), "at least 1"),
]


@pytest.mark.parametrize(("setup", "expected"), [pytest.param(s, e, id=c) for c, s, e in BAD])
def test_bad_configuration_is_rejected_in_one_line_before_anything_is_written(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: Setup, expected: str
) -> None:
    env, flags = setup(env, tmp_path, monkeypatch)
    before = tree(tmp_path)
    with pytest.raises(ConfigError) as info:
        load(env, flags)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and message.strip() == message
    assert tree(tmp_path) == before


def test_parse_error_names_the_file(env: Env) -> None:
    write(settings_file(env), '{\n  "debug": true,\n  "engine": rsync\n}')
    with pytest.raises(ConfigError, match=r"session-backup\.json line 3: Expecting value"):
        load(env)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root passes os.access")
def test_read_only_parent_is_rejected_for_real(env: Env, tmp_path: Path) -> None:
    parent = _mkdir(tmp_path / "ro")
    parent.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="is not writable"):
            load(env, {"backupPath": str(parent / "dest")})
    finally:
        parent.chmod(0o700)


def test_destination_check_can_be_deferred(env: Env, tmp_path: Path) -> None:
    s = load(env, {"backupPath": str(tmp_path / "unmounted" / "dest")}, check_destination=False)
    assert s.backup_path == tmp_path / "unmounted" / "dest"
    with pytest.raises(ConfigError, match="does not exist"):
        config.validate_destination(s)


def test_good_destinations_pass(env: Env, tmp_path: Path) -> None:
    existing = _mkdir(tmp_path / "existing")
    assert load(env, {"backupPath": str(existing)}).backup_path == existing
    assert load(env, {"backupPath": str(tmp_path / "new")}).backup_path == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # created on the first sync, not here


# ---- values from text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[("true", True), ("1", True), ("TRUE", True), (" True ", True)],
        *[("false", False), ("0", False), ("", False), ("FALSE", False)],
        *[("yes", None), ("on", None), ("2", None), ("truthy", None)],
    ],
)
def test_env_debug_parsing(env: Env, text: str, expected: bool | None) -> None:
    env = {**env, "OPENCODE_BACKUP_DEBUG": text}
    if expected is None:
        with pytest.raises(ConfigError, match="OPENCODE_BACKUP_DEBUG"):
            load(env)
    else:
        s = load(env)
        assert s.debug is expected and s.origins["debug"] == "env OPENCODE_BACKUP_DEBUG"


def test_encryption_env_overrides_the_file(env: Env) -> None:
    write(settings_file(env), {"encryption": True})
    assert load(env).encryption is True and load(env).origins["encryption"].startswith("file ")
    s = load({**env, "OPENCODE_BACKUP_ENCRYPTION": "0"})
    assert s.encryption is False and s.origins["encryption"] == "env OPENCODE_BACKUP_ENCRYPTION"


def test_save_settings_keeps_other_keys_and_refuses_a_bad_value(env: Env, tmp_path: Path) -> None:
    from app.config import save_settings

    write(settings_file(env), {"backupPath": str(tmp_path / "d"), "keepSnapshots": 3})
    assert save_settings({"encryption": True}, env).encryption is True
    assert json.loads(settings_file(env).read_text()) == {
        "backupPath": str(tmp_path / "d"),
        "keepSnapshots": 3,
        "encryption": True,
    }
    before = settings_file(env).read_bytes()
    with pytest.raises(ConfigError, match="encryption must be true or false"):
        save_settings({"encryption": "yes"}, env)
    assert settings_file(env).read_bytes() == before


def test_empty_backup_path_env_means_unset(env: Env, tmp_path: Path) -> None:
    write(settings_file(env), {"backupPath": str(tmp_path / "d")})
    assert load({**env, "OPENCODE_BACKUP_PATH": ""}).backup_path == tmp_path / "d"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("custom.db", "DATA/custom.db"),
        ("sub/x.db", "DATA/sub/x.db"),
        ("/abs/other.db", "/abs/other.db"),
        ("", None),
    ],
)
def test_opencode_db_relative_to_data_dir_or_absolute(env: Env, value: str, expected: str | None) -> None:
    s = load({**env, "OPENCODE_DB": value})
    if expected is None:
        assert s.opencode_db is None and s.origins["opencode_db"] == "default"
    else:
        assert s.opencode_db == Path(expected.replace("DATA", str(s.source)))
        assert s.origins["opencode_db"] == "env OPENCODE_DB"


def test_relative_opencode_db_follows_the_source_override(env: Env, tmp_path: Path) -> None:
    write(settings_file(env), {"source": str(tmp_path / "elsewhere")})
    assert load({**env, "OPENCODE_DB": "a.db"}).opencode_db == tmp_path / "elsewhere" / "a.db"


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("laptop", "laptop"),
        ("DESKTOP-AB12CD", "DESKTOP-AB12CD"),
        ("My Laptop (2)", "My-Laptop--2-"),
        (".hidden.local.", "hidden.local"),
        ("café", "caf-"),
        ("x" * 100, "x" * 64),
        ("...", "machine"),
        ("", "machine"),
        ("CON", "machine"),
    ],
)
def test_machine_name_defaults_to_the_sanitized_hostname(env: Env, hostname: str, expected: str) -> None:
    assert load(env, hostname=hostname).machine_name == expected


def test_machine_name_from_file_is_sanitized(env: Env) -> None:
    write(settings_file(env), {"machineName": "Work PC #2"})
    assert load(env).machine_name == "Work-PC--2"


def test_unknown_keys_warn_with_a_suggestion(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    write(settings_file(env), {"$schema": "x", "backupPth": "/x", "colour": "blue"})
    with caplog.at_level(logging.WARNING, logger="app.config"):
        load(env)
    messages = [r.getMessage() for r in caplog.records]
    assert any('"backupPth"' in m and 'did you mean "backupPath"' in m for m in messages)
    assert any('"colour"' in m for m in messages)
    assert not any("$schema" in m for m in messages)


def test_empty_file_means_defaults(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    write(settings_file(env), "  // nothing yet\n")
    with caplog.at_level(logging.WARNING, logger="app.config"):
        assert load(env).engine == "auto"
    assert any("is empty" in r.getMessage() for r in caplog.records)


# ---- Google Drive as the default destination ------------------------------------------------------


def test_macos_google_drive_is_auto_detected(env: Env) -> None:
    my_drive = _mkdir(
        Path(env["HOME"]) / "Library" / "CloudStorage" / "GoogleDrive-me@example.com" / "My Drive"
    )
    s = load(env, platform="darwin")
    assert s.backup_path == my_drive / "opencode-sessions"
    assert s.origins["backup_path"] == "auto-detected (Google Drive)"
    assert not s.backup_path.exists()


def test_windows_google_drive_is_auto_detected_on_any_letter(env: Env, tmp_path: Path) -> None:
    my_drive = _mkdir(tmp_path / "K" / "Mi unidad")
    win_env = {**env, "USERPROFILE": env["HOME"]}
    s = load(win_env, platform="win32", drive_roots=[tmp_path / "G", tmp_path / "K"])
    assert s.backup_path == my_drive / "opencode-sessions"
    assert s.origins["backup_path"] == "auto-detected (Google Drive)"


def test_with_two_google_drive_accounts_the_first_is_used_and_the_other_named(env: Env) -> None:
    cloud = Path(env["HOME"]) / "Library" / "CloudStorage"
    first = _mkdir(cloud / "GoogleDrive-ann@example.com" / "My Drive")
    other = _mkdir(cloud / "GoogleDrive-zoe@example.com" / "Mi unidad")
    s = load(env, platform="darwin")
    assert s.backup_path == first / "opencode-sessions"
    assert s.origins["backup_path"] == (
        f"auto-detected (Google Drive: the first of 2 accounts; the others: {other / 'opencode-sessions'})"
    )


def test_explicit_setting_beats_detection(env: Env, tmp_path: Path) -> None:
    _mkdir(Path(env["HOME"]) / "Library" / "CloudStorage" / "GoogleDrive-me@example.com" / "My Drive")
    s = load({**env, "OPENCODE_BACKUP_PATH": str(tmp_path / "mine")}, platform="darwin")
    assert s.backup_path == tmp_path / "mine"


# ---- what `opencode-backup config` shows -------------------------------------------------------------


def test_describe_and_json_show_every_value_and_origin(env: Env, tmp_path: Path) -> None:
    write(settings_file(env), {"keepSnapshots": 3, "minIntervalSeconds": 12.5})
    dest = tmp_path / "dest"
    s = load({**env, "OPENCODE_BACKUP_PATH": str(dest)}, {"debug": True})
    rows = {key: (value, origin) for key, value, origin in config.describe(s)}
    assert rows["backupPath"] == (str(dest), "env OPENCODE_BACKUP_PATH")
    assert rows["debug"] == ("true", "flag")
    assert rows["keepSnapshots"] == ("3", f"file {settings_file(env)}")
    assert rows["minIntervalSeconds"][0] == "12.5"
    assert rows["syncDelaySeconds"] == ("5", "default")
    assert rows["opencodeDb"] == ("(not set)", "default")
    assert rows["configFile"] == (str(settings_file(env)), "default")

    data = config.as_json(s)
    assert json.loads(json.dumps(data)) == data
    assert data["settings"]["backupPath"] == str(dest)  # type: ignore[index]
    assert data["origins"]["keepSnapshots"] == f"file {settings_file(env)}"  # type: ignore[index]
    assert data["machineDir"] == str(dest / "test-host")
    assert list(data["settings"]) == list(rows)  # type: ignore[call-overload]


# ---- JSONC ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": "x // y /* z */"}', {"a": "x // y /* z */"}),
        ('{"a": "quote \\" // still text"} // c', {"a": 'quote " // still text'}),
        ('{"a": [1, 2,], "b": {"c": 1,},}', {"a": [1, 2], "b": {"c": 1}}),
        ('{"a": 1, /* c */ }', {"a": 1}),
        ('{"a": 1 // c\r\n}', {"a": 1}),
        ('{"a": "a,]"}', {"a": "a,]"}),
        ('{"url": "http://x"}//', {"url": "http://x"}),
    ],
)
def test_jsonc_comments_and_trailing_commas(text: str, expected: object) -> None:
    assert jsonc.loads(text) == expected


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("{\n/* open\n\n", 2),
        ('{\n"a": 1\n"b": 2}', 3),
        ("/* a\n b */\n{,}", 3),
        ("[\n1,\n,]", 3),
        ('{"a":\n "x\n"}', 2),
    ],
)
def test_jsonc_errors_keep_original_line_numbers(text: str, line: int) -> None:
    with pytest.raises(jsonc.JsoncError) as info:
        jsonc.loads(text)
    assert info.value.line == line


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_json, st.sampled_from([None, 0, 2]))
def test_jsonc_reads_any_plain_json(value: object, indent: int | None) -> None:
    assert jsonc.loads(json.dumps(value, indent=indent)) == value


@given(st.dictionaries(st.text(), st.text(), max_size=5))
def test_jsonc_survives_comments_and_trailing_commas_around_any_strings(value: dict[str, str]) -> None:
    body = "".join(f"  // note\n  {json.dumps(k)}: {json.dumps(v)}, /* x */\n" for k, v in value.items())
    assert jsonc.loads("{\n" + body + "}") == value


@pytest.mark.parametrize("value", [" --dry-run", "\t-v", "  -1M "])
def test_a_bandwidth_limit_is_refused_when_it_would_be_an_option_of_rclones(
    env: Env, tmp_path: Path, value: str
) -> None:
    """The value is stored stripped and handed to rclone after --bwlimit: blanks before a '-' do not
    make an option such as --dry-run pass."""
    write(settings_file(env), {"backupPath": str(tmp_path / "d"), "uploadBandwidthLimit": value})
    with pytest.raises(ConfigError, match="uploadBandwidthLimit must be a rate"):
        load(env)
    write(settings_file(env), {"backupPath": str(tmp_path / "d"), "uploadBandwidthLimit": " 512k "})
    assert load(env).upload_bandwidth_limit == "512k"
