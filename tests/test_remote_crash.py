"""A kill at every step of an upload to a remote leaves a remote that ``verify`` passes, and the next sync
finishes the upload (the issue's "every moment" guarantee, the remote's side of guarantee 7).

The world of the test: a backup on ``rclone serve sftp`` after a first sync, then a change of every kind
in opencode (sessions replaced, added, deleted and moved to another project, legacy files changed, added
and deleted, a new snapshot with the old one pruned, the index's delta folded into new shard files). A
child process runs ``opencode-backup sync`` and ends itself with ``os._exit`` at the k-th boundary of the
upload: after each rclone command and after each write of the ledger (just before a command is the state
just after the boundary before it; an rclone killed mid-work dies with its parent, as the runner binds it,
and a kill in the middle of one is the last test). Then the served folder itself is verified, the
next sync is run and the remote must hold exactly the mirror's committed backup.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.backup import intent
from app.backup import manifest as mf
from app.backup.remote.ledger import ledger_file
from app.backup.verify import verify
from app.transfer.rclone import RemoteSpec
from tests import dbfactory as f
from tests.remotes import Servers, use_config
from tests.test_crash_points import home_env

ROOT = Path(__file__).resolve().parent.parent
MACHINE = "box"

DRIVER = textwrap.dedent(
    """
    import os, sys, threading
    K, COUNT_FILE = int(sys.argv[1]), sys.argv[2]
    seen = [0]

    def hit():
        seen[0] += 1
        if seen[0] == K:
            os._exit(77)

    if os.environ.get("FOLD_EVERY_SAVE"):
        import app.backup.manifest.write as write
        write.MAX_DELTA_BYTES = 0
    from app import wiring
    from app.backup.remote.ledger import Ledger
    from app.backup.remote.push import Pusher
    from app.transfer.rclone import Rclone
    if os.environ.get("RESIDENT"):  # as the live service runs it: one rclone kept, a request a file
        context_for = wiring.context_for
        wiring.context_for = lambda settings, resident=False: context_for(settings, resident=True)
    pushing = [False]
    real_push, real_record = Pusher.push, Ledger.record

    def push(self, *args, **kwargs):
        pushing[0] = True
        return real_push(self, *args, **kwargs)

    def after(real):  # just before a step is the state just after the boundary before it
        def step(self, *args, **kwargs):
            result = real(self, *args, **kwargs)
            if pushing[0]:
                hit()
            return result
        return step

    def record(self, *args, **kwargs):
        real_record(self, *args, **kwargs)
        if pushing[0]:
            hit()

    Pusher.push, Ledger.record = push, record
    for name in ("upload", "move", "moveto", "delete"):
        setattr(Rclone, name, after(getattr(Rclone, name)))
    if os.environ.get("KILL_AFTER"):  # a kill in the middle of rclone's work, wherever it is
        threading.Timer(float(os.environ["KILL_AFTER"]), lambda: os._exit(77)).start()
    from app.cli import main
    code = main(sys.argv[3:])
    with open(COUNT_FILE, "w") as fh:
        fh.write(str(seen[0]))
    os._exit(code)
    """
)


def sync_cli(base: Path, path: str, *extra: str, k: int = 0, env: dict[str, str] | None = None) -> int:
    """``opencode-backup sync --snapshot`` of ``base``'s world to ``t-sftp:path``, in a child that ends
    itself at boundary ``k`` of the upload (0: never); its exit code."""
    args = ["sync", "--snapshot", "--backup-path", f"rclone:t-sftp:{path}",
            "--source", str(base / "opencode"), "--machine-name", MACHINE, *extra]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(k), str(base / "boundaries"), *args],
        env={**os.environ, **home_env(base / "home"), "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 77), done.stderr
    return done.returncode


@pytest.fixture(scope="module")
def template(rclone_servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world after a first sync to ``t-sftp:template``, with a change of every kind made since."""
    base = tmp_path_factory.mktemp("remote-world")
    config = base / "home" / ".config" / "opencode" / "session-backup.json"
    config.parent.mkdir(parents=True)
    config.write_text('{"keepSnapshots": 1}')
    (base / "rclone.conf").write_text(rclone_servers.config_text())
    conn = f.seed(base / "opencode", sessions=6, legacy=4)
    assert sync_cli(base, "template", env={"RCLONE_CONFIG": str(base / "rclone.conf")}) == 0
    f.change_every_kind(conn, base / "opencode")
    return base


def world(template: Path, servers: Servers, where: Path, path: str) -> None:
    """A copy of the template's world whose remote folder is ``t-sftp:path`` (a folder the server has
    never listed: nothing is changed behind its back)."""
    shutil.copytree(template, where, symlinks=True)
    shutil.copytree(servers.sftp.root / "template", servers.sftp.root / path)
    remotes = where / "home" / ".cache" / "opencode-session-backup" / "remotes"
    old, new = RemoteSpec("t-sftp", "template"), RemoteSpec("t-sftp", path)
    os.rename(remotes / old.slug, remotes / new.slug)
    db = sqlite3.connect(ledger_file(remotes / new.slug, MACHINE))
    db.execute("UPDATE meta SET value = ? WHERE key = 'target'", (f"{new.text}/{MACHINE}",))
    db.commit()
    db.close()


def remote_is_the_mirror(base: Path, served: Path, *, deleted: bool = True) -> None:
    """The remote holds exactly the mirror's committed backup, and it is opencode's (``deleted``: with the
    last copy of the session deleted since the first sync)."""
    mirror = (
        next((base / "home" / ".cache" / "opencode-session-backup" / "remotes").glob("*/mirror")) / MACHINE
    )
    assert (served / mf.MANIFEST).read_bytes() == (mirror / mf.MANIFEST).read_bytes()
    man = mf.load(served, MACHINE)
    assert set(man.sessions) == {"ses_0", "ses_1", "ses_2", "ses_4", "ses_5", "ses_new"}
    assert man.sessions["ses_4"].path == "sessions/proj2/ses_4.json"
    assert list((served / "versions").rglob("ses_3.json")) or not deleted  # the deleted session is kept
    assert len(man.snapshots()) == 1 and intent.load(served) is None
    assert not [p for p in (served.parent / ".incoming").rglob("*") if p.is_file()]  # nothing staged is left


def test_a_kill_at_every_step_of_an_upload_leaves_a_remote_verify_passes(
    template: Path, rclone_servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the live service uploads (a resident rclone, a request a file; the steps and what the ledger
    learns are those of a command each, so the boundaries are too). The index's delta is folded at this
    commit: new shard files go up too (and the old ones are kept for the readers of the replaced
    manifest)."""
    use_config(rclone_servers, template, monkeypatch)
    fold = {"FOLD_EVERY_SAVE": "1", "RESIDENT": "1"}
    world(template, rclone_servers, tmp_path / "count", "count")
    assert sync_cli(tmp_path / "count", "count", env=fold) == 0
    total = int((tmp_path / "count" / "boundaries").read_text())
    assert total >= 8, total  # put, replace, commit, clean: each a command, and what the ledger learnt
    remote_is_the_mirror(tmp_path / "count", rclone_servers.sftp.root / "count" / MACHINE)
    for k in range(1, total + 1):
        base, path = tmp_path / f"k{k}", f"k{k}"
        world(template, rclone_servers, base, path)
        assert sync_cli(base, path, k=k, env=fold) == 77, f"boundary {k} of {total} was never reached"
        served = rclone_servers.sftp.root / path / MACHINE
        report = verify(served, MACHINE, base / "verify-work")
        assert report.ok, f"killed at boundary {k} of {total}: {report.problems}"
        assert sync_cli(base, path, env=fold) == 0, f"killed at boundary {k} of {total}: the next sync failed"
        assert verify(served, MACHINE, base / "verify-work").ok
        remote_is_the_mirror(base, served)
        shutil.rmtree(base)
    print(f"{total} boundaries in one upload; a kill at each left a remote verify passes")


def test_a_kill_in_the_middle_of_a_first_upload_is_finished_by_the_next_sync(
    template: Path, rclone_servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_config(rclone_servers, template, monkeypatch)
    base = tmp_path / "first"
    shutil.copytree(template / "opencode", base / "opencode")
    shutil.copytree(template / "home" / ".config", base / "home" / ".config")
    slow = {"KILL_AFTER": "1.2", "RCLONE_BWLIMIT": "100k"}  # rclone reads its flags from RCLONE_*
    assert sync_cli(base, "mid-upload", env=slow) == 77
    served = rclone_servers.sftp.root / "mid-upload" / MACHINE
    assert verify(served, MACHINE, base / "verify-work").ok or not (served / mf.MANIFEST).exists()
    assert sync_cli(base, "mid-upload") == 0
    remote_is_the_mirror(base, served, deleted=False)
