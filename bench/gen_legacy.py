#!/usr/bin/env python3
"""Generate a legacy opencode JSON storage tree (opencode <= 1.1, before the SQLite database).

Layout under ``OUT/storage/`` (files are ``JSON.stringify(x, null, 2)`` like opencode wrote them)::

    migration                          legacy storage migration counter
    project/<projectID>.json
    session/<projectID>/<sessionID>.json
    message/<sessionID>/<messageID>.json
    part/<messageID>/<partID>.json
    todo/<sessionID>.json
    session_diff/<sessionID>.json

Exactly ``--files`` files are written (default 100,000; plain writes, no fsync). ``--junk K``
makes K of them broken the way crashes leave them: alternately 0-byte and NUL-filled files
(at message, part and session paths).

Usage::

    bench/gen_legacy.py OUT [--files N] [--junk K] [--part-kb KB] [--seed S] [--force]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from gen_db import BASE62, DAY_MS, MODELS, Corpus, IdGen  # noqa: E402

VERSIONS = ["0.15.31", "1.0.25", "1.0.150", "1.1.12", "1.1.21"]


@dataclass
class LegacyStats:
    """What was written."""

    files: int = 0
    bytes: int = 0
    sessions: int = 0
    junk: list[Path] = field(default_factory=list)
    elapsed: float = 0.0


def _pretty(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)


class LegacyWriter:
    """Writes files, stops at the file budget and turns some files into junk."""

    def __init__(self, root: Path, budget: int, junk: int, rng: random.Random) -> None:
        self.root = root
        self.budget = budget
        self.rng = rng
        self.stats = LegacyStats()
        self.made_dirs: set[Path] = set()
        # spread the junk over the whole tree: every `junk_every`-th message/part/session file
        self.junk_left = min(junk, budget)
        self.junk_every = max(1, int(budget * 0.9) // max(1, junk)) if junk else 0
        self.junkable_seen = 0

    @property
    def full(self) -> bool:
        return self.stats.files >= self.budget

    def write(self, rel: str, obj: Any, junkable: bool = False) -> bool:
        """Write ``storage/rel``; return False (and write nothing) once the budget is used up."""
        if self.full:
            return False
        path = self.root / rel
        parent = path.parent
        if parent not in self.made_dirs:
            parent.mkdir(parents=True, exist_ok=True)
            self.made_dirs.add(parent)
        data: bytes
        if junkable and self.junk_left and self.junk_every:
            self.junkable_seen += 1
            if self.junkable_seen % self.junk_every == 0:
                self.junk_left -= 1
                data = b"" if len(self.stats.junk) % 2 == 0 else b"\0" * self.rng.randrange(64, 4096)
                self.stats.junk.append(path)
                return self._put(path, data)
        return self._put(path, _pretty(obj).encode())

    def _put(self, path: Path, data: bytes) -> bool:
        with open(path, "wb") as f:
            f.write(data)
        self.stats.files += 1
        self.stats.bytes += len(data)
        return True


def generate(
    out: Path,
    *,
    files: int = 100_000,
    junk: int = 0,
    part_kb: float = 1.5,
    seed: int = 7,
    force: bool = False,
) -> LegacyStats:
    """Create ``out/storage`` with exactly ``files`` files; return :class:`LegacyStats`."""
    t0 = time.monotonic()
    root = out.resolve() / "storage"
    if root.exists():
        if not force:
            raise FileExistsError(f"{root} exists (use --force)")
        shutil.rmtree(root)
    rng = random.Random(seed)
    gen = LegacyGen(LegacyWriter(root, files, junk, rng), rng, part_kb)
    stats = gen.run()
    stats.elapsed = time.monotonic() - t0
    return stats


class LegacyGen:
    """Builds projects and sessions (messages, parts, todos, diffs) until the writer is full."""

    def __init__(self, w: LegacyWriter, rng: random.Random, part_kb: float) -> None:
        self.w = w
        self.rng = rng
        self.ids = IdGen(rng)
        self.corpus = Corpus(rng, size=2 << 20)
        self.part_kb = part_kb
        self.projects: list[tuple[str, str]] = [("global", "/")]

    def run(self) -> LegacyStats:
        w, rng = self.w, self.rng
        w.write("migration", 2)
        now = int(time.time() * 1000)
        span = 300 * DAY_MS
        start = now - 500 * DAY_MS
        for name in ("webapp", "api-server", "infra", "cli-tool"):
            self.projects.append((f"{rng.getrandbits(160):040x}", f"/home/dev/src/{name}"))
        for pid, wt in self.projects:
            vcs = None if pid == "global" else "git"
            info: dict[str, Any] = {"id": pid, "worktree": wt, "vcs": vcs, "sandboxes": []}
            w.write(f"project/{pid}.json", {**info, "time": {"created": start, "updated": start}})
        step = span / max(1, w.budget // 130)
        i = 0
        while not w.full:
            self.session(int(start + i * step + rng.random() * step * 0.5))
            i += 1
        w.stats.sessions = i
        return w.stats

    def _assistant(self, mid: str, sid: str, user_id: str, wt: str, t: int) -> dict[str, Any]:
        rng = self.rng
        provider, model = rng.choice(MODELS)
        tokens: dict[str, Any] = {"input": rng.randrange(1000, 50000), "output": rng.randrange(10, 3000)}
        tokens["reasoning"] = 0
        tokens["cache"] = {"read": rng.randrange(0, 40000), "write": 0}
        return {
            "id": mid,
            "sessionID": sid,
            "role": "assistant",
            "parentID": user_id,
            "mode": "build",
            "path": {"cwd": wt, "root": wt},
            "cost": round(rng.random() / 50, 6),
            "tokens": tokens,
            "modelID": model,
            "providerID": provider,
            "time": {"created": t, "completed": t + rng.randrange(500, 20000)},
        }

    def _content(self, wt: str, t: int, diffs: list[dict[str, Any]]) -> dict[str, Any]:
        rng, corpus = self.rng, self.corpus
        if rng.random() >= 0.5:
            return {
                "type": "text",
                "text": corpus.take(rng.randrange(50, 1500)),
                "time": {"start": t, "end": t + 40},
            }
        size = max(20, int(self.part_kb * 1024 * rng.lognormvariate(-0.5, 1.0)))
        tool = rng.choice(["read", "bash", "grep", "edit"])
        path = f"{wt}/src/{rng.choice(Corpus.WORDS)}.ts"
        state = {
            "status": "completed",
            "input": {"filePath": path},
            "output": corpus.take(size),
            "metadata": {},
            "title": path,
            "time": {"start": t, "end": t + 50},
        }
        if tool == "edit" and len(diffs) < 5:
            before = corpus.take(rng.randrange(200, 3000))
            diff = {
                "file": path,
                "before": before,
                "after": before + "\n// edited",
                "additions": 1,
                "deletions": 0,
            }
            diffs.append(diff)
        call_id = "toolu_" + "".join(rng.choices(BASE62, k=24))
        return {"type": "tool", "tool": tool, "callID": call_id, "state": state}

    def session(self, t_start: int) -> None:
        """Write one session: messages and parts first, then the session, todo and diff files."""
        w, rng, ids, corpus = self.w, self.rng, self.ids, self.corpus
        pid, wt = rng.choice(self.projects)
        sid = ids.descending("ses", t_start)
        t = t_start + 100
        user_id = ""
        diffs: list[dict[str, Any]] = []
        wrote_any = False
        for mi in range(max(2, int(rng.lognormvariate(3.0, 0.9)))):
            mid = ids.ascending("msg", t)
            if mi == 0 or rng.random() < 0.3:
                user_id = mid
                info: dict[str, Any] = {"id": mid, "sessionID": sid, "role": "user", "time": {"created": t}}
                parts: list[dict[str, Any]] = [{"type": "text", "text": corpus.take(rng.randrange(30, 800))}]
            else:
                info = self._assistant(mid, sid, user_id, wt, t)
                parts = [{"type": "step-start"}]
                parts += [self._content(wt, t, diffs) for _ in range(rng.randrange(1, 5))]
                parts.append({"type": "step-finish", "tokens": info["tokens"], "cost": info["cost"]})
                t = info["time"]["completed"]
            if not w.write(f"message/{sid}/{mid}.json", info, junkable=True):
                break
            wrote_any = True
            for pd in parts:
                prt = ids.ascending("prt", t)
                if not w.write(
                    f"part/{mid}/{prt}.json", {"id": prt, "sessionID": sid, "messageID": mid, **pd}, True
                ):
                    break
                t += 3
            t += rng.randrange(1000, 60000)
        if not wrote_any:
            return
        session = {
            "id": sid,
            "version": rng.choice(VERSIONS),
            "projectID": pid,
            "directory": wt,
            "title": corpus.take(50).strip()[:50] or "New session",
            "time": {"created": t_start, "updated": t},
            "summary": {"additions": len(diffs), "deletions": 0, "files": len(diffs)},
        }
        w.write(f"session/{pid}/{sid}.json", session, junkable=True)
        if rng.random() < 0.4:
            statuses = ["completed", "pending"]
            todos = [
                {
                    "content": f"step {k}: {corpus.take(40).strip()}",
                    "status": rng.choice(statuses),
                    "priority": "medium",
                }
                for k in range(rng.randrange(1, 6))
            ]
            w.write(f"todo/{sid}.json", [dict(td, id=str(k + 1)) for k, td in enumerate(todos)])
        if diffs or rng.random() < 0.3:
            w.write(f"session_diff/{sid}.json", diffs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("out", type=Path, help="data directory; the tree goes to OUT/storage")
    ap.add_argument("--files", type=int, default=100_000, help="total number of files (default 100000)")
    ap.add_argument("--junk", type=int, default=0, help="how many of them are 0-byte / NUL-filled")
    ap.add_argument("--part-kb", type=float, default=1.5, help="mean tool output size in KB")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--force", action="store_true", help="replace an existing OUT/storage")
    args = ap.parse_args(argv)
    try:
        st = generate(
            args.out, files=args.files, junk=args.junk, part_kb=args.part_kb, seed=args.seed, force=args.force
        )
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{args.out}/storage: {st.files} files ({st.sessions} sessions, {len(st.junk)} junk), "
        f"{st.bytes / 1e6:.1f} MB in {st.elapsed:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
