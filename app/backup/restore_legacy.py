"""``restore --legacy``: put the backup's ``storage/`` tree (opencode <= 1.1 JSON files) back.

Add-only and replace-changed: files missing in opencode's ``storage/`` are copied back, files that
differ are first copied aside (into the app's data dir) and then replaced; files the backup does
not have are never touched. Runs on the caller's thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from app.backup import backup_reader as br
from app.backup import guard
from app.backup.legacy import walk
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupDamaged
from app.fsutil import atomic_writer, make_private_dirs, sha256_file

logger = logging.getLogger(__name__)

MAX_LEGACY_FILE_BYTES = br.MAX_SESSION_BYTES


@dataclass
class LegacyPlan:
    """Relative paths (``storage/...``) to add and to replace, with their total size."""

    add: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"mode": "legacy", "add": self.add, "replace": self.replace, "bytes": self.bytes}


def plan_legacy(machine_dir: Path, data_dir: Path, seal: Seal = PLAIN) -> LegacyPlan:
    """Compare the backup's storage/ with opencode's (the backup's files decrypted with ``seal`` where
    they are encrypted); refuses symlinks and oversized files. Writes nothing."""
    root = machine_dir / "storage"
    plan = LegacyPlan()
    if not root.is_dir():
        return plan
    br.check_tree(root)
    for rel, st in sorted(walk(root)):
        if st.st_size > MAX_LEGACY_FILE_BYTES:
            raise BackupDamaged(f"refusing {rel}: {st.st_size} bytes is larger than any real file")
        target = data_dir / rel
        try:
            tst = target.lstat()
        except FileNotFoundError:
            plan.add.append(rel)
            plan.bytes += st.st_size
            continue
        if not target.is_file() or target.is_symlink():
            raise BackupDamaged(f"refusing to write {target}: it is not a regular file")
        if _differs(seal, root / rel[len("storage/") :], st.st_size, target, tst.st_size):
            plan.replace.append(rel)
            plan.bytes += st.st_size
    return plan


def _differs(seal: Seal, backed_up: Path, size: int, target: Path, target_size: int) -> bool:
    """Whether opencode's file differs from the backup's content (decrypted when it is encrypted)."""
    data = br.opened(seal, br.read_bytes_capped(backed_up, MAX_LEGACY_FILE_BYTES), backed_up)
    if len(data) == size and size != target_size:
        return True  # a plain copy of another size: no need to hash opencode's file
    return len(data) != target_size or hashlib.sha256(data).hexdigest() != sha256_file(target)


def apply_legacy(
    plan: LegacyPlan,
    machine_dir: Path,
    data_dir: Path,
    aside_root: Path,
    now: datetime,
    *,
    seal: Seal = PLAIN,
) -> Path | None:
    """Copy changed files aside (returns that folder, or None), then add and replace from the backup."""
    aside: Path | None = None
    if plan.replace:
        aside = aside_root / f"storage-before-restore-{guard.stamp(now)}"
        for rel in plan.replace:
            dst = aside / rel
            make_private_dirs(dst.parent)
            shutil.copy2(data_dir / rel, dst)
    for rel in (*plan.add, *plan.replace):
        src = machine_dir / rel
        data = br.opened(seal, br.read_bytes_capped(src, MAX_LEGACY_FILE_BYTES), src)
        target = data_dir / rel
        with atomic_writer(target) as fh:
            fh.write(data)
        st = src.stat()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    logger.info("legacy restore: %d added, %d replaced", len(plan.add), len(plan.replace))
    return aside
