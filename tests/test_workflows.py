"""The CI workflow that builds and smoke-tests the installed app on Windows, macOS and Linux runners
(.github/workflows/) cannot run here; the workflow linter checks it instead (expressions, runner labels,
action inputs, and the bash of every run: step through shellcheck)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = Path(sys.executable).with_name("actionlint")  # from the dev extra (pyproject.toml)
TOOLS = ("shellcheck",)  # in .ci/tools (tests/test_ci_tools.py checks)


def lint(*files: Path) -> subprocess.CompletedProcess[str]:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: 'bash .ci/check-tools' names its package"
    assert ACTIONLINT.is_file(), "actionlint is missing: make setup installs the dev extra"
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", "-shellcheck", shellcheck, "-pyflakes", "", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_workflows_pass_the_linter() -> None:
    assert WORKFLOWS
    done = lint(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_linter_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The check above can fail: an undefined matrix key and an unquoted shell variable are caught."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = (ROOT / ".github" / "workflows" / "build.yml").read_text()
    text = text.replace("runs-on: ${{ matrix.os }}", "runs-on: ${{ matrix.system }}")
    text = text.replace("sudo bash .ci/system-deps test", "cd $RUNNER_TEMP && sudo bash .ci/system-deps test")
    broken.write_text(text)
    done = lint(broken)
    assert done.returncode == 1
    assert 'property "system" is not defined' in done.stdout, done.stdout
    assert "SC2086" in done.stdout, done.stdout  # shellcheck ran on the run: script


def test_the_build_runs_and_smoke_tests_on_each_os() -> None:
    text = (ROOT / ".github" / "workflows" / "build.yml").read_text()
    matrix = re.search(r"os: \[([^]]*)\]", text)
    assert matrix is not None
    runners = {name.strip() for name in matrix.group(1).split(",")}
    assert runners == {"windows-latest", "macos-latest", "ubuntu-latest"}
    assert "python build/dist.py" in text  # what make dist runs
    assert "python -m pytest -p no:cacheprovider tests/test_dist.py" in text  # the Linux bundle's own tests
    # the Windows and macOS parts that cannot run here, against the real robocopy, registry and notifications
    for smoke in ("robocopy", "notify", "autostart"):
        assert f"python build/smoke.py {smoke}" in text
