"""The list of outside programs (.ci/tools) stays true: every program a test or the app starts is on it,
and the check that CI runs before pytest names a missing or stand-in program instead of passing."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from tests.desktop import TOOLS as DESKTOP_TOOLS
from tests.test_dist import TOOLS as DIST_TOOLS
from tests.test_workflows import TOOLS as WORKFLOW_TOOLS

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / ".ci"
# A literal program name as the first item of an argv list given to subprocess, or as the first
# argument of the Desktop.run/xdo helpers.
_ARGV = re.compile(r"""(?:run|Popen|check_output|check_call)\(\s*\[\s*["']([A-Za-z][\w.+-]*)["']""")
_DESKTOP_RUN = re.compile(r"""\b(?:d|self|desktop)\.run\(\s*["']([A-Za-z][\w.+-]*)["']""")
_WHICH = re.compile(r"""which\(\s*["']([A-Za-z][\w.+-]*)["']""")
# Started on purpose where they may be missing (skipped or handled by the code under test).
_NOT_REQUIRED = {"bash", "robocopy", "pythonw", "lsof", "sleep", "xdg-open", "open"}


def listed(need: str | None = None) -> dict[str, str]:
    """Program -> package of .ci/tools (only those needed by ``need`` when given)."""
    out: dict[str, str] = {}
    for line in (CI / "tools").read_text().splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        assert len(fields) == 4, f"bad line in .ci/tools: {line!r}"
        program, package, who, _identity = fields
        assert who in ("run", "test"), line
        if need in (None, who, "test"):
            out[program] = package
    return out


def started_programs() -> set[str]:
    found: set[str] = set()
    for folder in ("tests", "app", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for pattern in (_ARGV, _DESKTOP_RUN, _WHICH):
                found.update(pattern.findall(text))
    return found


def test_every_program_the_code_starts_is_listed() -> None:
    programs = started_programs() - _NOT_REQUIRED
    assert {"rsync", "chattr", "xdotool", "import", "dunstctl"} <= programs  # the scan itself works
    missing = sorted(programs - set(listed()))
    assert not missing, f"programs started by the code but not in .ci/tools: {missing}"


def test_the_desktop_fixture_needs_only_listed_programs() -> None:
    assert "convert" not in DESKTOP_TOOLS  # the tests never run it, and a stand-in shadows it here
    assert set(DESKTOP_TOOLS) <= set(listed("test"))


def test_the_build_and_the_workflow_check_need_only_listed_programs() -> None:
    """PyInstaller starts binutils and ldd while tests/test_dist.py builds; actionlint starts shellcheck."""
    assert set(DIST_TOOLS) <= set(listed("test"))
    assert set(WORKFLOW_TOOLS) <= set(listed("test"))


def _fake(folder: Path, name: str, output: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_check_tools_names_a_missing_program_and_a_stand_in(tmp_path: Path) -> None:
    """With a PATH holding only fakes: a stand-in `import` and no rsync at all."""
    fakes = tmp_path / "bin"
    fakes.mkdir()
    for program in listed():
        words = "ImageMagick rsync GNU util-linux git v1.0 -displayfd xdpyinfo xdotool Dunst D-Bus"
        words += " objcopy objdump strip ldd ShellCheck gnome-keyring go/version"
        _fake(fakes, program, words)
    (fakes / "rsync").unlink()
    _fake(fakes, "import", "usage: import [options]")  # a stand-in that is not ImageMagick's
    for tool in ("bash", "grep", "timeout"):
        real = shutil.which(tool)
        assert real is not None
        os.symlink(real, fakes / tool)
    done = subprocess.run(
        ["bash", str(CI / "check-tools"), "test"],
        env={"PATH": str(fakes)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert any(line.startswith("check-tools: rsync (missing; package rsync)") for line in lines), lines
    assert any("import" in line and "not the real one" in line and "imagemagick" in line for line in lines)
    assert len(lines) == 2, lines


def test_check_tools_passes_here() -> None:
    """This machine ran .ci/system-deps (make test does, before pytest): everything is really here."""
    done = subprocess.run(
        ["bash", str(CI / "check-tools"), "test"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
