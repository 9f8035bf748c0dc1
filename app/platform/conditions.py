"""Whether this computer runs on battery and whether its network is metered, as far as the system tells.

The switches ``uploadNotOnBattery`` and ``uploadOnlyUnmetered`` hold a remote backup's uploads back on a
laptop on battery or on a phone's hotspot; the backup itself goes on locally. What the system says:

- Linux: ``/sys/class/power_supply`` (a ``Mains`` supply online means mains power; else a ``Battery``
  discharging means battery), and NetworkManager's ``Metered`` property of the connection in use, read
  with ``busctl`` (NMMetered: 1 yes, 3 guess-yes; 2 no, 4 guess-no; 0 unknown).
- macOS: ``pmset -g batt`` ("Now drawing from 'Battery Power'"); no command tells a metered network
  (macOS keeps "Low Data Mode" for apps of its own frameworks), so it is unknown.
- Windows: ``GetSystemPowerStatus`` (ACLineStatus 0: battery, 1: mains) and the cost of the internet
  connection profile through PowerShell's WinRT (``NetworkCostType``: Unrestricted, or Fixed and Variable
  for a metered plan).

What cannot be read is None, "unknown": the upload goes ahead (a switch never stops backups because the
system would not say). Each system's branch reads through :class:`Readers`, so tests replay recorded
values of all three and mypy checks them everywhere; ``platform`` is given by the caller.
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

POWER_SUPPLY = "/sys/class/power_supply"
NM_METERED = ("busctl", "--system", "get-property", "org.freedesktop.NetworkManager",
              "/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager", "Metered")  # fmt: skip
PMSET = ("pmset", "-g", "batt")
ASK_EVERY_S = 60.0  # how long a command's answer is kept
WINDOWS_COST = (
    "powershell", "-NoProfile", "-NonInteractive", "-Command",
    "[void][Windows.Networking.Connectivity.NetworkInformation,Windows.Networking.Connectivity,"
    "ContentType=WindowsRuntime]; $p = [Windows.Networking.Connectivity.NetworkInformation]::"
    "GetInternetConnectionProfile(); if ($p) { $p.GetConnectionCost().NetworkCostType }",
)  # fmt: skip


@dataclass(frozen=True)
class Readers:
    """How the system is asked: a folder's entries and a file's text (Linux), a command's output, and
    Windows' ACLineStatus (None: not known). Each raises OSError (or a subprocess error) when it cannot."""

    list_dir: Callable[[str], list[str]]
    read_file: Callable[[str], str]
    run: Callable[[Sequence[str]], str]
    ac_line: Callable[[], int | None]


def on_battery(platform: str, readers: Readers) -> bool | None:
    """True on battery, False on mains power, None when the system does not say."""
    try:
        if platform == "win32":
            status = readers.ac_line()
            return {0: True, 1: False}.get(status if status is not None else -1)
        if platform == "darwin":
            return parse_pmset(readers.run(PMSET))
        return _linux_battery(readers)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        logger.debug("cannot tell battery from mains power: %s", exc)
        return None


def metered(platform: str, readers: Readers) -> bool | None:
    """True on a metered network, False on an unmetered one, None when the system does not say."""
    try:
        if platform == "win32":
            return parse_cost(readers.run(WINDOWS_COST))
        if platform == "darwin":
            return None
        return parse_nm_metered(readers.run(NM_METERED))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        logger.debug("cannot tell whether the network is metered: %s", exc)
        return None


def held_back(platform: str, readers: Readers, *, only_unmetered: bool, not_on_battery: bool) -> str | None:
    """Why uploads wait now under these switches (None: they need not, or the system does not say)."""
    if not_on_battery and on_battery(platform, readers):
        return "this computer runs on battery (uploadNotOnBattery)"
    if only_unmetered and metered(platform, readers):
        return "the network is metered (uploadOnlyUnmetered)"
    return None


def _linux_battery(readers: Readers) -> bool | None:
    batteries = []
    for name in readers.list_dir(POWER_SUPPLY):
        base = f"{POWER_SUPPLY}/{name}"
        kind = _field(readers, f"{base}/type")
        if kind == "Mains" and _field(readers, f"{base}/online") == "1":
            return False
        if kind == "Battery" and _field(readers, f"{base}/scope") != "Device":  # not a mouse's battery
            batteries.append(_field(readers, f"{base}/status"))
    if not batteries:
        return None  # a desktop, or a system that does not say
    return any(status == "Discharging" for status in batteries)


def _field(readers: Readers, path: str) -> str:
    try:
        return readers.read_file(path).strip()
    except OSError:
        return ""


def parse_nm_metered(text: str) -> bool | None:
    """busctl's ``u 4`` as NetworkManager's NMMetered; pure."""
    parts = text.split()
    if len(parts) != 2 or parts[0] != "u" or not parts[1].isdigit():
        return None
    return {1: True, 3: True, 2: False, 4: False}.get(int(parts[1]))


def parse_pmset(text: str) -> bool | None:
    """``pmset -g batt``'s first line: "Now drawing from 'Battery Power'" or "'AC Power'"; pure."""
    if "'Battery Power'" in text:
        return True
    if "'AC Power'" in text or "'UPS Power'" in text:
        return False
    return None


def parse_cost(text: str) -> bool | None:
    """Windows' NetworkCostType: Unrestricted is unmetered, Fixed and Variable are metered; pure."""
    word = text.strip()
    return {"Unrestricted": False, "Fixed": True, "Variable": True}.get(word)


def system_readers(clock: Callable[[], float] = time.monotonic) -> Readers:
    """The readers of the running system (each used only on its own system). A command's answer (or its
    failure) is kept for :data:`ASK_EVERY_S`: the switches are asked before every upload, and starting
    PowerShell takes a second. No command opens a console window (the windowed tray on Windows would
    flash one for each; see ``app.transfer.runner.style_for``)."""
    answers: dict[tuple[str, ...], tuple[float, str | Exception]] = {}

    def ask(argv: Sequence[str]) -> str:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # Windows only
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=20, check=True, creationflags=flags
        )
        return done.stdout

    def run(argv: Sequence[str]) -> str:
        key, now = tuple(argv), clock()
        kept = answers.get(key)
        if kept is None or now - kept[0] >= ASK_EVERY_S:
            try:
                kept = (now, ask(argv))
            except (OSError, subprocess.SubprocessError) as exc:
                kept = (now, exc)
            answers[key] = kept
        if isinstance(kept[1], Exception):
            raise kept[1]
        return kept[1]

    return Readers(
        lambda folder: sorted(os.listdir(folder)),
        lambda path: Path(path).read_text(encoding="utf-8", errors="replace"),
        run,
        _ac_line,
    )


class _PowerStatus(ctypes.Structure):
    _fields_ = [
        ("ACLineStatus", ctypes.c_ubyte),
        ("BatteryFlag", ctypes.c_ubyte),
        ("BatteryLifePercent", ctypes.c_ubyte),
        ("SystemStatusFlag", ctypes.c_ubyte),
        ("BatteryLifeTime", ctypes.c_ulong),
        ("BatteryFullLifeTime", ctypes.c_ulong),
    ]


def _ac_line() -> int | None:
    """Windows' ACLineStatus (kernel32 GetSystemPowerStatus); None where there is no such call."""
    windll = getattr(ctypes, "windll", None)  # Windows only
    if windll is None:
        return None
    status = _PowerStatus()
    if not windll.kernel32.GetSystemPowerStatus(ctypes.byref(status)):
        return None
    return int(status.ACLineStatus)
