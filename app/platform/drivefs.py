"""Where Google Drive for desktop says it puts each account's files, read from its own settings.

Drive keeps its settings in ``HKEY_CURRENT_USER\\Software\\Google\\DriveFS`` on Windows and in
``~/Library/Preferences/com.google.drivefs.settings.plist`` on macOS (Google's "Configure Drive for desktop"
for administrators). ``DefaultMountPoint`` is the streaming location it starts with (a drive letter on
Windows, a folder on macOS); ``PerAccountPreferences`` is a JSON text whose
``per_account_preferences[].value.mount_point_path`` is each signed-in account's own: a drive letter, or
the folder chosen under "Google Drive streaming location: Folder". Nothing here writes; a setting that
is missing or unreadable counts as not there.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import plistlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

from app import paths
from app.platform.autostart_win import WinReg

logger = logging.getLogger(__name__)

AUTO_DETECTED = "auto-detected (Google Drive)"
SETTINGS_KEY = r"Software\Google\DriveFS"
SETTINGS_PLIST = ("Library", "Preferences", "com.google.drivefs.settings.plist")
VALUES = ("PerAccountPreferences", "DefaultMountPoint")


def mount_points(settings: Mapping[str, object]) -> list[str]:
    """The streaming locations named in Drive's settings (the ``VALUES``), accounts first; pure."""
    found: list[str] = []
    text = settings.get("PerAccountPreferences")
    try:
        accounts = json.loads(text)["per_account_preferences"] if isinstance(text, str) else []
    except (ValueError, TypeError, KeyError) as exc:
        logger.debug("Drive's PerAccountPreferences cannot be read: %s", exc)
        accounts = []
    for account in accounts if isinstance(accounts, list) else []:
        value = account.get("value") if isinstance(account, dict) else None
        point = value.get("mount_point_path") if isinstance(value, dict) else None
        if isinstance(point, str) and point:
            found.append(point)
    default = settings.get("DefaultMountPoint")
    if isinstance(default, str) and default:
        found.append(default)
    return list(dict.fromkeys(found))


def stream_roots(
    platform: str | None = None, env: Mapping[str, str] | None = None, *, winreg: WinReg | None = None
) -> list[Path]:
    """The folders Drive streams into on ``platform`` (default: this one), as roots that hold "My Drive".
    ``winreg``: the registry module (tests pass a stand-in); read only on Windows."""
    platform = platform or paths.current_platform()
    if platform == "win32":
        return [_windows_root(point) for point in mount_points(_registry(winreg))]
    if platform == "darwin":
        home = paths.home_dir(os.environ if env is None else env, platform)
        return [Path(point) for point in mount_points(_plist(home.joinpath(*SETTINGS_PLIST)))]
    return []


def google_drives(
    platform: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    drive_roots: Sequence[Path] | None = None,
    winreg: WinReg | None = None,
) -> list[Path]:
    """:func:`app.paths.google_drives` with the streaming locations Drive's settings name."""
    roots = stream_roots(platform, env, winreg=winreg)
    return paths.google_drives(platform, env, drive_roots=drive_roots, stream_roots=roots)


def default_destination(
    platform: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    drive_roots: Sequence[Path] | None = None,
    winreg: WinReg | None = None,
) -> tuple[Path | None, str]:
    """Where backups go when nobody said (``opencode-sessions`` in the first of :func:`google_drives`) and
    where that came from, naming the other accounts' folders when there are several; (None, "") if none."""
    drives = google_drives(platform, env, drive_roots=drive_roots, winreg=winreg)
    if not drives:
        return None, ""
    chosen, others = drives[0] / paths.DEST_FOLDER, [str(d / paths.DEST_FOLDER) for d in drives[1:]]
    if not others:
        return chosen, AUTO_DETECTED
    logger.info("Google Drive folders of %d accounts; backing up to %s", len(drives), chosen)
    return (
        chosen,
        f"{AUTO_DETECTED[:-1]}: the first of {len(drives)} accounts; the others: {'; '.join(others)})",
    )


def _windows_root(point: str) -> Path:
    """A drive letter ("G", "G:") as its root ``G:\\``; a folder as itself."""
    letter = point.rstrip(":\\")
    if len(letter) == 1 and letter.isalpha():
        return Path(f"{letter.upper()}:\\")
    return Path(point)


def _registry(winreg: WinReg | None) -> dict[str, object]:
    try:
        reg = winreg or cast(WinReg, importlib.import_module("winreg"))
        key = reg.OpenKey(reg.HKEY_CURRENT_USER, SETTINGS_KEY, 0, reg.KEY_READ)
    except (ImportError, OSError):
        return {}  # Drive for desktop was never installed for this user
    try:
        values: dict[str, object] = {}
        for name in VALUES:
            try:
                values[name] = reg.QueryValueEx(key, name)[0]
            except OSError:
                continue
        return values
    finally:
        reg.CloseKey(key)


def _plist(path: Path) -> dict[str, object]:
    try:
        with open(path, "rb") as fh:
            loaded = plistlib.load(fh)
    except (OSError, ValueError, plistlib.InvalidFileException) as exc:
        logger.debug("Drive's settings %s cannot be read: %s", path, exc)
        return {}
    return {name: loaded.get(name) for name in VALUES} if isinstance(loaded, dict) else {}
