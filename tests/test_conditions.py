"""Battery and metered network, as each system tells them: recorded answers of Linux (sysfs, NetworkManager
through busctl), macOS (pmset) and Windows (GetSystemPowerStatus, the connection cost from WinRT), and the
real system here. What cannot be read is unknown, and unknown never holds an upload back."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from app.platform import conditions as c

PMSET_BATTERY = """Now drawing from 'Battery Power'
 -InternalBattery-0 (id=4653155)	87%; discharging; 5:12 remaining present: true
"""
PMSET_AC = """Now drawing from 'AC Power'
 -InternalBattery-0 (id=4653155)	100%; charged; 0:00 remaining present: true
"""


def readers(
    files: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
    ac_line: int | None = None,
) -> c.Readers:
    """Readers that answer from recorded values (a missing one fails as the system's would)."""
    files, outputs = files or {}, outputs or {}

    def list_dir(folder: str) -> list[str]:
        names = sorted({p[len(folder) + 1 :].split("/")[0] for p in files if p.startswith(folder + "/")})
        if not names:
            raise FileNotFoundError(folder)
        return names

    def read_file(path: str) -> str:
        if path not in files:
            raise FileNotFoundError(path)
        return files[path]

    def run(argv: Sequence[str]) -> str:
        if argv[0] not in outputs:
            raise FileNotFoundError(argv[0])
        return outputs[argv[0]]

    return c.Readers(list_dir, read_file, run, lambda: ac_line)


LAPTOP_ON_BATTERY = {
    "/sys/class/power_supply/AC/type": "Mains\n",
    "/sys/class/power_supply/AC/online": "0\n",
    "/sys/class/power_supply/BAT0/type": "Battery\n",
    "/sys/class/power_supply/BAT0/status": "Discharging\n",
    "/sys/class/power_supply/hid-mouse/type": "Battery\n",
    "/sys/class/power_supply/hid-mouse/scope": "Device\n",
    "/sys/class/power_supply/hid-mouse/status": "Charging\n",
}


@pytest.mark.parametrize(
    ("platform", "r", "battery"),
    [
        ("linux", readers(LAPTOP_ON_BATTERY), True),
        ("linux", readers({**LAPTOP_ON_BATTERY, "/sys/class/power_supply/AC/online": "1\n"}), False),
        ("linux", readers({"/sys/class/power_supply/hid-mouse/type": "Battery\n",
                           "/sys/class/power_supply/hid-mouse/scope": "Device\n"}), None),  # a desktop
        ("linux", readers(), None),  # no sysfs at all (a container)
        ("darwin", readers(outputs={"pmset": PMSET_BATTERY}), True),
        ("darwin", readers(outputs={"pmset": PMSET_AC}), False),
        ("darwin", readers(), None),
        ("win32", readers(ac_line=0), True),
        ("win32", readers(ac_line=1), False),
        ("win32", readers(ac_line=255), None),
    ],
)  # fmt: skip
def test_battery_as_each_system_tells_it(platform: str, r: c.Readers, battery: bool | None) -> None:
    assert c.on_battery(platform, r) is battery


@pytest.mark.parametrize(
    ("platform", "r", "metered"),
    [
        ("linux", readers(outputs={"busctl": "u 1\n"}), True),
        ("linux", readers(outputs={"busctl": "u 3\n"}), True),  # guessed: a phone's hotspot
        ("linux", readers(outputs={"busctl": "u 4\n"}), False),
        ("linux", readers(outputs={"busctl": "u 0\n"}), None),
        ("linux", readers(), None),  # no NetworkManager
        ("win32", readers(outputs={"powershell": "Variable\r\n"}), True),
        ("win32", readers(outputs={"powershell": "Fixed\r\n"}), True),
        ("win32", readers(outputs={"powershell": "Unrestricted\r\n"}), False),
        ("win32", readers(outputs={"powershell": ""}), None),  # no internet profile
        ("darwin", readers(outputs={"pmset": PMSET_BATTERY}), None),  # macOS has no command that says
    ],
)
def test_a_metered_network_as_each_system_tells_it(platform: str, r: c.Readers, metered: bool | None) -> None:
    assert c.metered(platform, r) is metered


def test_uploads_wait_only_for_what_the_switches_ask_and_the_system_says() -> None:
    hotspot_on_battery = readers(LAPTOP_ON_BATTERY, {"busctl": "u 3\n"})
    assert c.held_back("linux", hotspot_on_battery, only_unmetered=False, not_on_battery=False) is None
    assert "battery" in (
        c.held_back("linux", hotspot_on_battery, only_unmetered=True, not_on_battery=True) or ""
    )
    assert "metered" in (
        c.held_back("linux", hotspot_on_battery, only_unmetered=True, not_on_battery=False) or ""
    )
    unknown = readers()
    assert c.held_back("linux", unknown, only_unmetered=True, not_on_battery=True) is None


def test_the_readers_of_this_system_never_raise() -> None:
    """Here (a container without NetworkManager or a battery) both are unknown, and nothing fails."""
    here = c.system_readers()
    assert c.on_battery("linux", here) in (None, False, True)
    assert c.metered("linux", here) in (None, False, True)
    missing = ["a-command-this-system-has-not"]
    with pytest.raises((OSError, subprocess.SubprocessError)):
        here.run(missing)


class _Ran:
    """subprocess.run as the readers call it: counts the calls and keeps their keyword arguments."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def __call__(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        self.calls.append(kwargs)
        return subprocess.CompletedProcess(argv, 0, "Unrestricted\n", "")


def test_a_command_that_asks_the_system_opens_no_console_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The windowed tray starting PowerShell would flash a console per upload without CREATE_NO_WINDOW."""
    ran = _Ran()
    monkeypatch.setattr(subprocess, "run", ran)
    monkeypatch.setattr(subprocess, "CREATE_NO_WINDOW", 0x08000000, raising=False)
    assert c.metered("win32", c.system_readers()) is False
    assert [call["creationflags"] for call in ran.calls] == [0x08000000]


def test_an_answer_of_the_system_is_asked_again_only_after_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    ran, now = _Ran(), [100.0]
    monkeypatch.setattr(subprocess, "run", ran)
    here = c.system_readers(clock=lambda: now[0])
    assert [c.metered("win32", here) for _ in range(3)] == [False, False, False]
    assert len(ran.calls) == 1
    now[0] += c.ASK_EVERY_S
    assert c.metered("win32", here) is False
    assert len(ran.calls) == 2
