"""Start at login: the entry each OS gets, its quoting, and the ``autostart`` command."""

from __future__ import annotations

import json
import plistlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app import paths
from app.__main__ import main
from app.platform import autostart
from app.platform.autostart_mac import LABEL, LaunchAgent, launch_agent_plist
from app.platform.autostart_win import RUN_KEY, RunKeyAutostart, command_line, quote_argument
from app.platform.autostart_xdg import XdgAutostart, autostart_dir, desktop_entry, exec_line

SPACED_UNIX = "/opt/My Apps/opencode backup/bin/opencode-backup"
SPACED_WIN = r"C:\Program Files\opencode backup\opencode-backup.exe"
NASTY_ARGS = ["plain", "two words", 'say "hi"', "back\\slash", "100%", "$HOME", "`tick`", "it's", "a\tb", ""]


# --- test-side readers: how a desktop launcher and Windows read the command back ---------------------


def parse_exec(value: str) -> list[str]:
    """Desktop Entry spec: undo string escapes, split on unquoted spaces, unquote, then ``%%`` -> ``%``."""
    unescaped, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in "\\ntsr":
            unescaped.append({"\\": "\\", "n": "\n", "t": "\t", "s": " ", "r": "\r"}[value[i + 1]])
            i += 2
        else:
            unescaped.append(value[i])
            i += 1
    text = "".join(unescaped)
    args: list[str] = []
    current: list[str] = []
    started = quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\" and text[i + 1] in '"`$\\':
                current.append(text[i + 1])
                i += 1
            elif c == '"':
                quoted = False
            else:
                current.append(c)
        elif c == " ":
            if started:
                args.append("".join(current))
            current, started = [], False
        elif c == '"':
            started = quoted = True
        else:
            assert c not in "\t\n'\\><~|&;$*?#()`", f"reserved {c!r} outside quotes in {value!r}"
            current.append(c)
            started = True
        i += 1
    assert not quoted, f"unterminated quote in {value!r}"
    if started:
        args.append("".join(current))
    return [a.replace("%%", "%") for a in args]


def parse_windows(line: str) -> list[str]:
    """The Microsoft C runtime's rules for arguments (backslashes count only before a quote)."""
    args: list[str] = []
    current: list[str] = []
    in_arg = quoted = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            n = len(line[i:]) - len(line[i:].lstrip("\\"))
            i += n
            if i < len(line) and line[i] == '"':
                current.append("\\" * (n // 2))
                if n % 2:
                    current.append('"')
                    i += 1
            else:
                current.append("\\" * n)
            in_arg = True
            continue
        if c == '"':
            quoted = not quoted
            in_arg = True
        elif c in " \t" and not quoted:
            if in_arg:
                args.append("".join(current))
            current, in_arg = [], False
        else:
            current.append(c)
            in_arg = True
        i += 1
    if in_arg:
        args.append("".join(current))
    return args


class FakeWinReg:
    """Same names and signatures as the winreg functions the backend uses; a dict is the registry."""

    HKEY_CURRENT_USER = 0x80000001
    KEY_READ = 0x20019
    KEY_SET_VALUE = 0x0002
    REG_SZ = 1

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, tuple[Any, int]]] = {}
        self.open_handles = 0
        self.calls: list[str] = []

    def _path(self, key: Any, sub_key: str) -> str:
        assert key == self.HKEY_CURRENT_USER
        return f"HKCU\\{sub_key}"

    def OpenKey(self, key: Any, sub_key: str, reserved: int = 0, access: int = KEY_READ) -> Any:
        self.calls.append(f"OpenKey {access:#x}")
        path = self._path(key, sub_key)
        if path not in self.keys:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        self.open_handles += 1
        return path

    def CreateKey(self, key: Any, sub_key: str) -> Any:
        path = self._path(key, sub_key)
        self.keys.setdefault(path, {})
        self.open_handles += 1
        return path

    def SetValueEx(self, key: Any, value_name: str, reserved: int, type: int, value: str) -> None:
        self.keys[key][value_name] = (value, type)

    def DeleteValue(self, key: Any, value: str) -> None:
        if value not in self.keys[key]:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        del self.keys[key][value]

    def QueryValueEx(self, key: Any, name: str) -> tuple[Any, int]:
        if name not in self.keys[key]:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return self.keys[key][name]

    def CloseKey(self, hkey: Any) -> None:
        self.open_handles -= 1


# --- the command the entry starts -----------------------------------------------------------------


def test_frozen_build_starts_its_own_executable() -> None:
    argv = autostart.launch_command(
        frozen=True, executable=SPACED_WIN, which=lambda n, f: "/x/opencode-backup"
    )
    assert argv == [SPACED_WIN, "run"]


def test_a_frozen_windows_build_logs_in_with_its_windowed_tray_executable() -> None:
    """No console window at login, whichever of the two executables turned the entry on."""
    folder = r"C:\Program Files\opencode backup"
    tray = folder + r"\opencode-backup-tray.exe"
    asked: list[tuple[str, str | None]] = []

    def which(name: str, where: str | None) -> str | None:
        asked.append((name, where))
        return tray if (name, where) == ("opencode-backup-tray", folder) else r"C:\other\found-on-path.exe"

    for running in (SPACED_WIN, tray):  # the console CLI (`autostart enable`) or the tray's menu
        argv = autostart.launch_command(frozen=True, executable=running, which=which, windows=True)
        assert argv == [tray, "run"]
    assert {where for _name, where in asked} == {folder}  # never another install's, found on PATH
    # a build whose tray executable is gone (a partial copy) still starts itself
    argv = autostart.launch_command(frozen=True, executable=SPACED_WIN, which=lambda n, f: None, windows=True)
    assert argv == [SPACED_WIN, "run"]


def which_on_windows_311(files: set[str], cwd: str) -> Callable[[str, str | None], str | None]:
    """``shutil.which`` as Python 3.11 documents it on Windows: "the current directory is always
    prepended to the path whether or not you use the default or provide your own", each name tried with
    the PATHEXT endings, and a hit in the current directory answered relative (``.\\name.EXE``, as
    ``os.path.join(os.curdir, ...)`` makes it). ``files``: the absolute paths that exist."""

    def which(name: str, path: str | None) -> str | None:
        folders = [".", *(path.split(";") if path else [])]
        for folder in folders:
            for ext in (".COM", ".EXE", ".BAT"):
                where = cwd if folder == "." else folder
                if f"{where}\\{name}{ext}".casefold() in {f.casefold() for f in files}:
                    return f".\\{name}{ext}" if folder == "." else f"{folder}\\{name}{ext}"
        return None

    return which


def test_a_build_double_clicked_in_explorer_logs_in_by_an_absolute_path() -> None:
    """Explorer starts a double-clicked exe with its own folder as the current directory, so ``which``
    answers ``.\\opencode-backup-tray.EXE``; stored as is, the Run value fails at the next login (Windows
    starts it from another directory). The entry names the program by its absolute path, always."""
    folder = r"C:\Program Files\opencode backup"
    files = {folder + r"\opencode-backup-tray.EXE", folder + r"\opencode-backup.EXE"}
    which = which_on_windows_311(files, cwd=folder)
    assert which(autostart.GUI_SCRIPT_NAME, folder) == r".\opencode-backup-tray.EXE"  # the trap
    for running in (folder + r"\opencode-backup.exe", folder + r"\opencode-backup-tray.exe"):
        argv = autostart.launch_command(
            frozen=True, executable=running, which=which, windows=True, cwd=folder
        )
        assert argv == [folder + r"\opencode-backup-tray.EXE", "run"]
    venv = r"C:\Users\me\proj\.venv\Scripts"
    which = which_on_windows_311({venv + r"\opencode-backup-tray.EXE", venv + r"\python.exe"}, cwd=venv)
    argv = autostart.launch_command(
        frozen=False, executable=venv + r"\python.exe", which=which, windows=True, cwd=venv
    )
    assert argv == [venv + r"\opencode-backup-tray.EXE", "run"]


def test_the_run_value_never_holds_a_relative_program() -> None:
    reg = FakeWinReg()
    with pytest.raises(autostart.AutostartError, match="absolute path"):
        RunKeyAutostart(reg, [r".\opencode-backup-tray.EXE", "run"]).enable()
    assert reg.keys.get(f"HKCU\\{RUN_KEY}", {}) == {} and reg.open_handles == 0


def test_console_script_beside_the_interpreter_wins_over_path(tmp_path: Path) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    found = {str(venv_bin): str(venv_bin / "opencode-backup"), None: "/usr/bin/opencode-backup"}
    argv = autostart.launch_command(
        frozen=False, executable=str(venv_bin / "python"), which=lambda n, folder: found.get(folder)
    )
    assert argv == [str(venv_bin / "opencode-backup"), "run"]
    argv = autostart.launch_command(
        frozen=False, executable="/elsewhere/python", which=lambda n, folder: found.get(folder)
    )
    assert argv == ["/usr/bin/opencode-backup", "run"]


def test_on_windows_the_login_entry_starts_without_a_console_window() -> None:
    scripts = {"opencode-backup-tray": r"C:\venv\Scripts\opencode-backup-tray.exe",
               "opencode-backup": r"C:\venv\Scripts\opencode-backup.exe"}  # fmt: skip
    argv = autostart.launch_command(
        frozen=False,
        executable=r"C:\venv\Scripts\python.exe",
        which=lambda n, f: scripts.get(n),
        windows=True,
    )
    assert argv[0].endswith("opencode-backup-tray.exe") and argv[1:] == ["run"]
    argv = autostart.launch_command(
        frozen=False,
        executable=r"C:\py\python.exe",
        which=lambda n, f: r"C:\py\pythonw.exe" if n == "pythonw" else None,
        windows=True,
    )
    assert argv == [r"C:\py\pythonw.exe", "-m", "app", "run"]


def test_without_a_console_script_python_runs_the_package() -> None:
    argv = autostart.launch_command(frozen=False, executable="/py/python3", which=lambda n, f: None)
    assert argv == ["/py/python3", "-m", "app", "run"]


# --- Linux / XDG ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [[SPACED_UNIX, "run"], NASTY_ARGS, ["/usr/bin/opencode-backup", "run"], ["/a\\b/c d", "x\ny"]]
)
def test_exec_line_reads_back_as_the_same_argv(argv: list[str]) -> None:
    assert parse_exec(exec_line(argv)) == argv


def test_exec_quotes_a_path_with_spaces_and_leaves_simple_ones_bare() -> None:
    assert exec_line([SPACED_UNIX, "run"]) == f'"{SPACED_UNIX}" run'
    assert exec_line(["/usr/bin/opencode-backup", "run"]) == "/usr/bin/opencode-backup run"
    assert exec_line(["/a\\b"]) == '"/a\\\\\\\\b"'  # spec: a literal backslash in quotes is four


def test_desktop_entry_has_the_keys_a_session_needs() -> None:
    text = desktop_entry([SPACED_UNIX, "run"], "/icons/up-to-date-64.png")
    lines = text.splitlines()
    assert lines[0] == "[Desktop Entry]"
    keys = dict(line.split("=", 1) for line in lines[1:])
    assert keys["Type"] == "Application"
    assert keys["Exec"] == f'"{SPACED_UNIX}" run'
    assert keys["Icon"] == "/icons/up-to-date-64.png"
    assert keys["Terminal"] == "false"
    assert keys["X-GNOME-Autostart-enabled"] == "true"
    assert keys["Categories"] == "Utility;"
    assert keys["Name"] and keys["Comment"]


@pytest.mark.parametrize("argv", [[SPACED_UNIX, "run"], NASTY_ARGS, [sys.executable, "-m", "app", "run"]])
def test_enabled_entry_passes_desktop_file_validate(tmp_path: Path, argv: list[str]) -> None:
    entry = autostart.for_platform("linux", env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")}, command=argv)
    entry.enable()
    path = tmp_path / "cfg" / "autostart" / "opencode-session-backup.desktop"
    assert shutil.which("desktop-file-validate"), "install desktop-file-utils (.ci/system-deps does)"
    assert entry.location == str(path)
    done = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_entry_icon_is_the_committed_64px_png() -> None:
    entry = autostart.for_platform("linux", env={}, command=["x", "run"])
    assert isinstance(entry, XdgAutostart)
    assert Path(entry.icon).is_absolute() and Path(entry.icon).is_file()
    assert entry.icon.endswith("up-to-date-64.png")


def test_autostart_dir_respects_xdg_config_home_only_when_absolute(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert autostart_dir({"XDG_CONFIG_HOME": str(tmp_path / "c")}, home) == tmp_path / "c" / "autostart"
    assert autostart_dir({"XDG_CONFIG_HOME": "relative"}, home) == home / ".config" / "autostart"
    assert autostart_dir({}, home) == home / ".config" / "autostart"


def test_cli_enable_status_disable_round_trip(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(paths, "current_platform", lambda: "linux")
    entry_file = isolated_home / ".config" / "autostart" / "opencode-session-backup.desktop"

    assert main(["autostart", "status"]) == 0
    assert capsys.readouterr().out == f"start at login: disabled ({entry_file})\n"

    assert main(["autostart", "enable"]) == 0
    assert capsys.readouterr().out == f"start at login: enabled ({entry_file})\n"
    assert "Exec=" in entry_file.read_text() and parse_exec(_exec_of(entry_file))[-1] == "run"
    assert main(["autostart", "enable"]) == 0  # idempotent
    capsys.readouterr()

    assert main(["autostart", "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["enabled"] is True and data["supported"] is True
    assert data["location"] == str(entry_file)
    assert data["command"] == parse_exec(_exec_of(entry_file))

    assert main(["autostart", "disable"]) == 0
    assert capsys.readouterr().out == f"start at login: disabled ({entry_file})\n"
    assert not entry_file.exists()
    assert main(["autostart", "disable"]) == 0  # nothing to remove is fine


def _exec_of(path: Path) -> str:
    return next(line[5:] for line in path.read_text().splitlines() if line.startswith("Exec="))


def test_cli_reports_an_unwritable_folder_in_one_line(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(paths, "current_platform", lambda: "linux")
    (isolated_home / ".config").mkdir(parents=True)
    (isolated_home / ".config" / "autostart").write_text("a file where the folder should be")
    assert main(["autostart", "enable"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("opencode-backup: cannot write ") and err.count("\n") == 1


def test_cli_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["autostart", "sometimes"]) == 2
    assert "invalid choice" in capsys.readouterr().err


# --- unsupported platforms -----------------------------------------------------------------------------


def test_unsupported_platform_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(paths, "current_platform", lambda: "sunos5")
    assert main(["autostart", "status"]) == 0
    assert capsys.readouterr().out == "start at login: not supported on this platform\n"
    assert main(["autostart", "enable"]) == 1
    assert (
        capsys.readouterr().err
        == "opencode-backup: start at login is not supported on this platform (sunos5)\n"
    )
    assert main(["autostart", "disable"]) == 0


# --- macOS -----------------------------------------------------------------------------------------------


def test_launch_agent_plist_runs_the_command_at_login() -> None:
    data = plistlib.loads(launch_agent_plist([SPACED_UNIX, "run"]))
    assert data["Label"] == LABEL == "com.github.opencode-session-backup"
    assert data["ProgramArguments"] == [SPACED_UNIX, "run"]  # a list: no shell, no quoting needed
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] is False
    assert launch_agent_plist(["a"]) == launch_agent_plist(["a"])


def test_launch_agent_lives_in_the_users_library(tmp_path: Path) -> None:
    entry = autostart.for_platform("darwin", env={"HOME": str(tmp_path)}, command=[SPACED_UNIX, "run"])
    assert isinstance(entry, LaunchAgent)
    expected = tmp_path / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    assert entry.location == str(expected) and not entry.is_enabled()
    entry.enable()
    assert entry.is_enabled()
    assert plistlib.loads(expected.read_bytes())["ProgramArguments"] == [SPACED_UNIX, "run"]
    entry.disable()
    assert not expected.exists() and not entry.is_enabled()


# --- Windows -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [SPACED_WIN, "run"],
        [r"C:\Python 3\python.exe", "-m", "app", "run"],
        [r"C:\dir with space\\", 'quote"inside', r"trail\\", "", "tab\there", r"a\\\"b"],
    ],
)
def test_windows_command_line_reads_back_as_the_same_argv(argv: list[str]) -> None:
    line = command_line(argv)
    assert parse_windows(line) == argv
    assert parse_windows(subprocess.list2cmdline(argv)) == argv  # the reader agrees with CPython's writer


def test_windows_quotes_a_path_with_spaces() -> None:
    assert command_line([SPACED_WIN, "run"]) == f'"{SPACED_WIN}" run'
    assert quote_argument(r"C:\simple\opencode-backup.exe") == r"C:\simple\opencode-backup.exe"
    assert quote_argument("ends in backslash\\") == '"ends in backslash\\\\"'


def test_windows_enable_writes_the_run_value() -> None:
    reg = FakeWinReg()
    entry = RunKeyAutostart(reg, [SPACED_WIN, "run"])
    assert not entry.is_enabled()
    entry.enable()
    assert reg.keys == {f"HKCU\\{RUN_KEY}": {"opencode-session-backup": (f'"{SPACED_WIN}" run', reg.REG_SZ)}}
    assert RUN_KEY == r"Software\Microsoft\Windows\CurrentVersion\Run"
    assert entry.is_enabled()
    assert entry.location == r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run\opencode-session-backup"
    entry.disable()
    assert reg.keys[f"HKCU\\{RUN_KEY}"] == {} and not entry.is_enabled()
    entry.disable()  # already gone: fine
    assert reg.open_handles == 0, "every opened key is closed"
    assert f"OpenKey {reg.KEY_SET_VALUE:#x}" in reg.calls  # deleting asks for write access


def test_windows_registry_refusal_is_an_autostart_error() -> None:
    class Refusing(FakeWinReg):
        def SetValueEx(self, key: Any, value_name: str, reserved: int, type: int, value: str) -> None:
            raise PermissionError(5, "Access is denied")

    reg = Refusing()
    with pytest.raises(autostart.AutostartError, match="cannot write the registry value"):
        RunKeyAutostart(reg, [SPACED_WIN, "run"]).enable()
    assert reg.open_handles == 0


def test_factory_uses_winreg_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeWinReg()
    monkeypatch.setitem(sys.modules, "winreg", fake)
    entry = autostart.for_platform("win32", env={}, command=[SPACED_WIN, "run"])
    assert isinstance(entry, RunKeyAutostart)
    entry.enable()
    assert fake.keys[f"HKCU\\{RUN_KEY}"]["opencode-session-backup"][0] == f'"{SPACED_WIN}" run'


def test_importing_autostart_loads_no_platform_backend() -> None:
    code = (
        "import sys, app.platform.autostart; "
        "backends = ('xdg', 'mac', 'win', 'files'); "
        "bad = [m for m in sys.modules if m.rpartition('autostart_')[2] in backends or m == 'winreg']; "
        "print(*bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_login_entry_names_its_icon_without_the_drawing_code() -> None:
    """The adapter finds the icon file through app.assets: it never imports the tray's face (app.ui)."""
    code = (
        "import sys; from app.platform import autostart; icon = autostart.default_icon(); "
        "print(icon); sys.exit(1 if any(m.startswith('app.ui') for m in sys.modules) else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path(done.stdout.strip()).is_file()
