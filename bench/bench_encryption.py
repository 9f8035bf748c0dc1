#!/usr/bin/env python3
"""Encryption's targets (the issue "Backups only you can read"), each measured against the same work
without encryption, side by side in one run.

    python bench/bench_encryption.py [--work /tmp/ocb-bench] [--rounds 2] [--skip NAME ...]

The data: the bench's heavy user (``gen_db.py``: 1,800 sessions, ~800 MB), made once under ``--work``.

first     a first ``opencode-backup sync`` into an empty folder, as its own process, with encryption on
          (age to this install's key and a recovery key) vs off, in turn. Target <= 1.15x.
restore   ``restore --missing --yes`` of all 1,800 sessions into an empty opencode from the encrypted
          backup vs from the plain one, in turn. Target <= 1.15x.
p1        one new message synced as the warm service does (median of 31, in this process), with
          encryption vs without, the two syncs in turn on two backups of the same database. Target 1.2x.
enable    ``encryption enable`` on a copy of the plain backup (it backs up what changed, nothing here,
          and re-encrypts every file in place) vs copying that backup folder (``shutil.copytree``), in
          turn. Target <= 2x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import bench_sync  # noqa: E402
import bench_targets as bt  # noqa: E402

from app.backup.sync import SyncOptions, run_sync  # noqa: E402
from app.crypt import age  # noqa: E402
from app.crypt.keys import KeyStore, Recipients  # noqa: E402
from app.crypt.seal import Seal  # noqa: E402

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def encrypted_home(work: Path, name: str) -> dict[str, str]:
    """A home whose install encrypts: its keys (in the 0600 file) and the setting on."""
    env = {**bt.app_env(work, name), **NO_KEYRING, "OPENCODE_BACKUP_ENCRYPTION": "1"}
    store = KeyStore(Path(env["XDG_CONFIG_HOME"]) / "opencode-session-backup", keyring=None)
    if store.recipients() is None:
        own_secret, own = age.new_identity()
        _recovery_secret, recovery = age.new_identity()
        os.environ.update(NO_KEYRING)
        store.add_identity(own_secret)
        store.save_recipients(Recipients(own, recovery))
    return env


def plain_home(work: Path, name: str) -> dict[str, str]:
    return {**bt.app_env(work, name), **NO_KEYRING, "OPENCODE_BACKUP_ENCRYPTION": "0"}


def sync_args(dest: Path, db: Path) -> list[str]:
    return ["--backup-path", str(dest), "--source", str(db.parent), "--machine-name", "bench", "sync"]


def medians(ours: list[float], refs: list[float], ratios: list[float]) -> dict[str, float]:
    """What a measurement prints: the medians of ours, of the reference and of their ratios."""
    return {
        "ours": statistics.median(ours),
        "ref": statistics.median(refs),
        "ratio": statistics.median(ratios),
    }


def in_turn(work: Path, rounds: int, job: Callable[[str, dict[str, str]], float]) -> dict[str, float]:
    """``job(name, env)`` timed plain and encrypted in turn, ``rounds`` times, which goes first alternating
    (the second of a pair finds the first's file pages cached): medians and the ratio."""
    ours, refs, ratios = [], [], []
    for n in range(rounds):
        if n % 2:
            sealed = job("sealed", encrypted_home(work, "enc-sealed"))
            plain = job("plain", plain_home(work, "enc-plain"))
        else:
            plain = job("plain", plain_home(work, "enc-plain"))
            sealed = job("sealed", encrypted_home(work, "enc-sealed"))
        ours.append(sealed)
        refs.append(plain)
        ratios.append(sealed / plain)
    return medians(ours, refs, ratios)


def first(work: Path, rounds: int) -> dict[str, float]:
    db = bt.database(work)

    def job(name: str, env: dict[str, str]) -> float:
        dest = work / "enc" / name
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        shutil.rmtree(Path(env["XDG_STATE_HOME"]), ignore_errors=True)
        shutil.rmtree(Path(env["XDG_DATA_HOME"]), ignore_errors=True)
        os.sync()
        return bt.timed([*bt.command(), *sync_args(dest, db)], env)[0]

    return in_turn(work, rounds, job)


def restore(work: Path, rounds: int) -> dict[str, float]:
    if not (work / "enc" / "sealed" / "bench" / "manifest.json").exists():
        first(work, 1)

    def job(name: str, env: dict[str, str]) -> float:
        target = bt.empty_opencode(work / "enc" / f"restore-{name}")
        where = ["--backup-path", str(work / "enc" / name), "--source", str(target.parent)]
        wall = bt.timed(
            [*bt.command(), *where, "--machine-name", "bench", "restore", "--missing", "--yes"], env
        )[0]
        restored = sqlite3.connect(target).execute("SELECT count(*) FROM session").fetchone()[0]
        assert restored == 1800, (name, restored)
        return wall

    return in_turn(work, rounds, job)


def p1(work: Path) -> dict[str, float]:
    data = work / "p1" / "opencode"
    db = bt.database(work)
    assert db.parent == data
    sid = (
        (work / "p1" / bench_sync.KEEP).read_text().strip()
        if (work / "p1" / bench_sync.KEEP).exists()
        else None
    )
    if sid is not None:
        bench_sync.drop_bench_messages(db, sid)
    secret, public = age.new_identity()
    _r, recovery = age.new_identity()
    contexts = {}
    for name, seal in (("plain", Seal()), ("sealed", Seal([public, recovery], lambda: [secret]))):
        dest = work / "enc-p1" / name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(work / "enc-p1" / f"app-{name}", ignore_errors=True)
        c = bench_sync.ctx(data, dest, work / "enc-p1" / f"app-{name}")
        from dataclasses import replace

        c = replace(c, seal=seal)
        assert run_sync(c).ok
        contexts[name] = c
    os.sync()
    sid = sid or bench_sync.bench_session(work / "p1", work / "enc-p1" / "plain" / "bench" / "sessions")
    elapsed: dict[str, list[float]] = {"plain": [], "sealed": []}
    for n in range(bench_sync.P1_SYNCS):
        bench_sync.add_message(db, sid, n)
        for name in ("plain", "sealed") if n % 2 else ("sealed", "plain"):
            t0 = time.perf_counter()
            r = run_sync(contexts[name], SyncOptions(dirty=()))
            elapsed[name].append(time.perf_counter() - t0)
            assert r.ok and r.sessions_exported == 1, r
    ours, ref = statistics.median(elapsed["sealed"]), statistics.median(elapsed["plain"])
    return {"ours": ours, "ref": ref, "ratio": ours / ref}


def enable(work: Path, rounds: int) -> dict[str, float]:
    db = bt.database(work)
    plain = work / "enc" / "plain"
    if not (plain / "bench" / "manifest.json").exists():
        first(work, 1)
    ours, refs, ratios = [], [], []
    for i in range(rounds):
        copy = work / "enc" / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        os.sync()
        t0 = time.perf_counter()
        shutil.copytree(plain, copy)
        os.sync()
        ref = time.perf_counter() - t0
        env = plain_home(work, "enc-plain")
        env.pop("OPENCODE_BACKUP_ENCRYPTION")
        shutil.rmtree(Path(env["XDG_CONFIG_HOME"]) / "opencode-session-backup", ignore_errors=True)
        settings = Path(env["XDG_CONFIG_HOME"]) / "opencode" / "session-backup.json"
        settings.unlink(missing_ok=True)
        args = ["--backup-path", str(copy), "--source", str(db.parent), "--machine-name", "bench"]
        recovery = work / "enc" / f"recovery-{i}.txt"
        recovery.unlink(missing_ok=True)
        os.sync()
        t0 = time.perf_counter()
        bt.timed(
            [*bt.command(), "encryption", "enable", "--yes", "--recovery-file", str(recovery), *args], env
        )
        os.sync()
        wall = time.perf_counter() - t0
        settings.unlink(missing_ok=True)  # this home's other runs are plain
        manifest = (copy / "bench" / "manifest.json").read_text()
        assert '"rekey"' not in manifest and '"encryption"' in manifest, "enable did not finish"
        ours.append(wall)
        refs.append(ref)
        ratios.append(wall / ref)
    return medians(ours, refs, ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ocb-bench"))
    ap.add_argument("--rounds", type=int, default=2)
    names = ["first", "restore", "p1", "enable"]
    ap.add_argument("--skip", choices=names, action="append", default=[])
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    say(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at the start")
    if "first" not in args.skip:
        r = first(args.work, args.rounds)
        say(
            f"first sync, encrypted {r['ours']:.1f} s vs plain {r['ref']:.1f} s -> ratio {r['ratio']:.2f} "
            "(target <= 1.15)"
        )
    if "restore" not in args.skip:
        r = restore(args.work, args.rounds)
        say(
            f"restore --missing of 1,800 sessions, from the encrypted backup {r['ours']:.1f} s vs the plain "
            f"one {r['ref']:.1f} s -> ratio {r['ratio']:.2f} (target <= 1.15)"
        )
    if "p1" not in args.skip:
        r = p1(args.work)
        say(
            f"P1, one new message, encrypted {r['ours'] * 1000:.1f} ms vs plain {r['ref'] * 1000:.1f} ms "
            f"(medians of {bench_sync.P1_SYNCS}) -> ratio {r['ratio']:.2f} (target <= 1.2)"
        )
    if "enable" not in args.skip:
        r = enable(args.work, args.rounds)
        say(
            f"encryption enable on the bench backup {r['ours']:.1f} s vs copying that backup "
            f"{r['ref']:.1f} s -> ratio {r['ratio']:.2f} (target <= 2)"
        )
    say(f"load {os.getloadavg()[0]:.2f} at the end")


def say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    main()
