"""``damaged/<stamp>/``: where the backup keeps what it cannot use, instead of deleting it.

A file that fails its checks (a hostile or torn session file, a snapshot that fails ``integrity_check``,
a symlink where a file belongs), the index a repair replaced, or a writer lease that is a folder, is
moved here under its own relative path, by rename (the same folder tree: nothing is copied, nothing is
lost). Nothing reads this folder back, syncs never write into it and only the user removes it; restore
and ``verify`` skip it. Runs on the caller's thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.fsutil import make_private_dirs

DAMAGED = "damaged"


def aside_path(machine_dir: Path, stamp: str, rel: str) -> Path:
    """Where ``rel`` of ``machine_dir`` goes when it is set aside at ``stamp``."""
    return machine_dir / DAMAGED / stamp / rel


def set_aside(machine_dir: Path, rel: str, stamp: str) -> Path:
    """Move ``rel`` (a file, a symlink itself, or a folder) into ``damaged/<stamp>/``; returns where it
    went. A name already taken there (set aside twice in one millisecond) gets a numbered one."""
    target = aside_path(machine_dir, stamp, rel)
    make_private_dirs(target.parent)
    n = 1
    while target.exists() or target.is_symlink():
        n += 1
        target = target.with_name(f"{Path(rel).name}.{n}")
    os.replace(machine_dir / rel, target)
    return target
