"""Small helpers shared by tests that compare folders."""

from __future__ import annotations

from pathlib import Path


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` as relative POSIX path -> bytes (what a user would find there)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
