"""Where opencode's folders are, where this app's folders are, and Google Drive detection.

Every test passes its own environment and platform name; the real HOME is never looked at.
"""

from __future__ import annotations

import json
import os
import plistlib
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from app import paths
from app.platform import drivefs
from tests.test_autostart import FakeWinReg


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ---- opencode's folders --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"HOME": "/h", "XDG_DATA_HOME": "/xdg/data"}, "/xdg/data/opencode"),
        ("linux", {"HOME": "/h"}, "/h/.local/share/opencode"),
        ("linux", {"HOME": "/h", "XDG_DATA_HOME": ""}, "/h/.local/share/opencode"),
        ("linux", {"HOME": "/h", "XDG_DATA_HOME": "relative/data"}, "/h/.local/share/opencode"),
        ("darwin", {"HOME": "/Users/u"}, "/Users/u/.local/share/opencode"),  # not ~/Library
        ("win32", {"USERPROFILE": "/C/Users/u", "HOME": "/elsewhere"}, "/C/Users/u/.local/share/opencode"),
        ("win32", {"USERPROFILE": "/C/Users/u", "XDG_DATA_HOME": "/D/data"}, "/D/data/opencode"),
    ],
)
def test_opencode_data_dir_is_xdg_on_every_os(platform: str, env: dict[str, str], expected: str) -> None:
    assert paths.opencode_data_dir(env, platform) == Path(expected)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"HOME": "/h", "OPENCODE_CONFIG_DIR": "/oc", "XDG_CONFIG_HOME": "/xdg"},
            "/oc",
        ),
        ({"HOME": "/h", "XDG_CONFIG_HOME": "/xdg"}, "/xdg/opencode"),
        ({"HOME": "/h", "OPENCODE_CONFIG_DIR": "", "XDG_CONFIG_HOME": ""}, "/h/.config/opencode"),
        ({"HOME": "/h"}, "/h/.config/opencode"),
    ],
)
def test_opencode_config_dir_precedence(env: dict[str, str], expected: str) -> None:
    for platform in ("linux", "darwin"):
        assert paths.opencode_config_dir(env, platform) == Path(expected)
    assert paths.default_config_file(env, "linux") == Path(expected) / "session-backup.json"


def test_relative_opencode_config_dir_is_taken_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert paths.opencode_config_dir({"OPENCODE_CONFIG_DIR": "conf"}, "linux") == tmp_path / "conf"


def test_windows_home_is_userprofile_not_appdata() -> None:
    env = {"USERPROFILE": "/C/Users/u", "APPDATA": "/C/Users/u/AppData/Roaming"}
    assert paths.opencode_config_dir(env, "win32") == Path("/C/Users/u/.config/opencode")


# ---- this app's folders --------------------------------------------------------------------------


def test_app_dirs_are_named_after_the_app_and_not_created(isolated_home: Path, tmp_path: Path) -> None:
    before = _tree(tmp_path)
    found = [paths.app_data_dir(), paths.app_state_dir(), paths.app_log_dir()]
    assert all("opencode-session-backup" in str(p) for p in found)
    assert all(not p.exists() for p in found)
    assert _tree(tmp_path) == before


def test_importing_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "cfg"), XDG_DATA_HOME=str(home / "data"))
    code = "import app.paths, app.config; app.paths.app_data_dir(); app.paths.app_log_dir()"
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-B", "-c", code], check=True, cwd=root, env=env, timeout=60)
    assert _tree(home) == []


# ---- Google Drive --------------------------------------------------------------------------------


def _drive(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    return folder


@pytest.mark.parametrize("name", paths.MY_DRIVE_NAMES)
def test_windows_finds_my_drive_under_every_localized_name(tmp_path: Path, name: str) -> None:
    g = tmp_path / "G"
    my_drive = _drive(g, name)
    env = {"USERPROFILE": str(tmp_path / "profile")}
    found = paths.google_drives("win32", env, drive_roots=[tmp_path / "D", g])
    assert found == [my_drive]
    assert not (my_drive / "opencode-sessions").exists()  # detection creates nothing


@pytest.mark.parametrize("spelled", ["my drive", "MY DRIVE", unicodedata.normalize("NFD", "Mój dysk")])
def test_drive_name_matching_ignores_case_and_unicode_form(tmp_path: Path, spelled: str) -> None:
    my_drive = _drive(tmp_path / "G", spelled)
    assert paths.find_my_drive(tmp_path / "G") == my_drive


def test_windows_takes_the_first_drive_letter_that_has_one(tmp_path: Path) -> None:
    _drive(tmp_path / "H", "Mi unidad")
    _drive(tmp_path / "G", "My Drive")
    roots = [tmp_path / letter for letter in "EFGH"]
    found = paths.google_drives("win32", {"USERPROFILE": str(tmp_path)}, drive_roots=roots)
    assert found == [tmp_path / "G" / "My Drive", tmp_path / "H" / "Mi unidad"]  # the first one is used


def test_windows_falls_back_to_mirror_mode_in_the_profile(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    my_drive = _drive(profile, "Meine Ablage")
    found = paths.google_drives("win32", {"USERPROFILE": str(profile)}, drive_roots=[])
    assert found == [my_drive]


@pytest.mark.parametrize("case", ["no drive", "a file named My Drive", "another folder"])
def test_windows_without_google_drive_finds_nothing(tmp_path: Path, case: str) -> None:
    g = tmp_path / "G"
    g.mkdir()
    if case == "a file named My Drive":
        (g / "My Drive").write_text("not a folder")
    elif case == "another folder":
        (g / "Dropbox").mkdir()
    env = {"USERPROFILE": str(tmp_path / "profile")}
    roots = [g, tmp_path / "missing-letter"]
    assert paths.google_drives("win32", env, drive_roots=roots) == []


def test_windows_drive_roots_skip_floppies_and_system_drive() -> None:
    letters = [str(p)[0] for p in paths.windows_drive_roots()]
    assert letters[0] == "D" and letters[-1] == "Z" and "C" not in letters


@pytest.mark.parametrize("name", ["My Drive", "Mon Drive", "Il mio Drive", "Meu Drive"])
def test_macos_finds_cloudstorage_google_drive(tmp_path: Path, name: str) -> None:
    cloud = tmp_path / "Library" / "CloudStorage"
    _drive(cloud, "OneDrive-Personal")
    my_drive = _drive(cloud / "GoogleDrive-me@example.com", name)
    assert paths.google_drives("darwin", {"HOME": str(tmp_path)}) == [my_drive]


def test_macos_with_two_accounts_takes_the_first_by_name(tmp_path: Path) -> None:
    cloud = tmp_path / "Library" / "CloudStorage"
    _drive(cloud / "GoogleDrive-zoe@example.com", "My Drive")
    first = _drive(cloud / "GoogleDrive-ann@example.com", "My Drive")
    assert paths.google_drives("darwin", {"HOME": str(tmp_path)})[0] == first


@pytest.mark.parametrize("layout", ["nothing", "CloudStorage only", "account without My Drive"])
def test_macos_without_my_drive_finds_nothing(tmp_path: Path, layout: str) -> None:
    cloud = tmp_path / "Library" / "CloudStorage"
    if layout != "nothing":
        cloud.mkdir(parents=True)
    if layout == "account without My Drive":
        _drive(cloud / "GoogleDrive-me@example.com", "Shared drives")
    assert paths.google_drives("darwin", {"HOME": str(tmp_path)}) == []


def test_linux_never_guesses_a_destination(tmp_path: Path) -> None:
    _drive(tmp_path / "Library" / "CloudStorage" / "GoogleDrive-me@example.com", "My Drive")
    _drive(tmp_path, "My Drive")
    env = {"HOME": str(tmp_path)}
    assert paths.google_drives("linux", env, drive_roots=[tmp_path]) == []


def test_current_platform_is_sys_platform() -> None:
    assert paths.current_platform() == sys.platform


# ---- Drive for desktop's own settings: several accounts, streaming to a folder ----------------------
#
# Drive keeps its settings in HKCU\Software\Google\DriveFS (Windows) and com.google.drivefs.settings
# (macOS) (Google, "Configure Drive for desktop"): DefaultMountPoint, and PerAccountPreferences, a JSON text
# whose per_account_preferences[].value.mount_point_path is each account's streaming location, a drive
# letter or the folder chosen under "Google Drive streaming location: Folder" (Google, "Use Google Drive
# for desktop": "To stream Google Drive files to a folder on your computer ... select Folder").


def _accounts(*points: str) -> str:
    prefs = [{"key": f"1{i:020d}", "value": {"mount_point_path": p}} for i, p in enumerate(points)]
    return json.dumps({"per_account_preferences": prefs})


def test_drives_settings_name_each_accounts_streaming_location() -> None:
    settings = {
        "PerAccountPreferences": _accounts("G", r"C:\Users\me\Drive de Ana"),
        "DefaultMountPoint": "G",
    }
    assert drivefs.mount_points(settings) == ["G", r"C:\Users\me\Drive de Ana"]
    assert drivefs.mount_points({"PerAccountPreferences": "{not json", "DefaultMountPoint": 7}) == []
    assert (
        drivefs.mount_points({"PerAccountPreferences": '{"per_account_preferences": [{"value": 1}]}'}) == []
    )


def test_windows_finds_a_drive_streamed_to_a_folder_through_drives_settings(tmp_path: Path) -> None:
    """An account streamed to a folder has no drive letter: only Drive's settings say where it is."""
    streamed = tmp_path / "Drive de Ana"
    _drive(streamed, "Mi unidad")
    letter = _drive(tmp_path / "G", "My Drive")
    reg = FakeWinReg()
    reg.keys[rf"HKCU\{drivefs.SETTINGS_KEY}"] = {
        "PerAccountPreferences": (_accounts("G", str(streamed)), reg.REG_SZ),
        "DefaultMountPoint": ("G", reg.REG_SZ),
    }
    assert drivefs.stream_roots("win32", {}, winreg=reg) == [Path("G:\\"), streamed]
    env = {"USERPROFILE": str(tmp_path / "profile")}
    found = drivefs.google_drives("win32", env, drive_roots=[tmp_path / "G"], winreg=reg)
    assert found == [letter, streamed / "Mi unidad"] and reg.open_handles == 0
    assert drivefs.stream_roots("win32", {}, winreg=FakeWinReg()) == []  # Drive never installed


def test_macos_reads_drives_settings_for_a_mount_point_outside_cloudstorage(tmp_path: Path) -> None:
    """Drive versions before macOS's File Provider mounted where their settings say."""
    mounted = _drive(tmp_path / "Volumes" / "GoogleDrive", "My Drive")
    plist = tmp_path.joinpath(*drivefs.SETTINGS_PLIST)
    plist.parent.mkdir(parents=True)
    plist.write_bytes(plistlib.dumps({"DefaultMountPoint": str(tmp_path / "Volumes" / "GoogleDrive")}))
    cloud = _drive(tmp_path / "Library" / "CloudStorage" / "GoogleDrive-ann@example.com", "My Drive")
    assert drivefs.google_drives("darwin", {"HOME": str(tmp_path)}) == [cloud, mounted]


def test_with_several_accounts_the_first_is_used_and_the_others_are_named(tmp_path: Path) -> None:
    cloud = tmp_path / "Library" / "CloudStorage"
    zoe = _drive(cloud / "GoogleDrive-zoe@example.com", "My Drive")
    ann = _drive(cloud / "GoogleDrive-ann@example.com", "My Drive")
    chosen, origin = drivefs.default_destination("darwin", {"HOME": str(tmp_path)})
    assert chosen == ann / "opencode-sessions"
    assert (
        origin
        == f"auto-detected (Google Drive: the first of 2 accounts; the others: {zoe / 'opencode-sessions'})"
    )
    zoe.rename(zoe.with_name("Shared drives"))
    assert drivefs.default_destination("darwin", {"HOME": str(tmp_path)}) == (
        chosen,
        "auto-detected (Google Drive)",
    )
    assert drivefs.default_destination("linux", {"HOME": str(tmp_path)}) == (None, "")
