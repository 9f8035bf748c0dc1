"""Find opencode's databases and legacy JSON tree inside its data dir.

Only ``stat``-level calls here: never open opencode's database files outside ``sqlite3``
(closing any descriptor on them drops SQLite's POSIX locks held by this process).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """What there is to back up. ``databases`` are sorted, ``storage`` is None when absent."""

    data_dir: Path
    databases: tuple[Path, ...]
    storage: Path | None

    @property
    def exists(self) -> bool:
        return bool(self.databases) or self.storage is not None


def find_databases(data_dir: Path, override: Path | None = None) -> tuple[Path, ...]:
    """``opencode.db`` and channel builds' ``opencode-<channel>.db``; ``override`` (OPENCODE_DB) wins.

    A relative override is relative to the data dir, as opencode itself resolves it.
    """
    if override is not None:
        db = override if override.is_absolute() else data_dir / override
        return (db,) if db.is_file() else ()
    if not data_dir.is_dir():
        return ()
    found = [data_dir / "opencode.db"] if (data_dir / "opencode.db").is_file() else []
    found += sorted(p for p in data_dir.glob("opencode-*.db") if p.is_file())
    return tuple(found)


def restore_target(data_dir: Path, override: Path | None = None) -> Path:
    """The database a restore writes into: the first one found, else where opencode would create it."""
    dbs = find_databases(data_dir, override)
    return dbs[0] if dbs else (override or data_dir / "opencode.db")


def locate(data_dir: Path, db_override: Path | None = None) -> Source:
    """Describe the source found in ``data_dir`` (which may not exist)."""
    storage = data_dir / "storage"
    return Source(
        data_dir=data_dir,
        databases=find_databases(data_dir, db_override),
        storage=storage if storage.is_dir() else None,
    )


def database_label(db: Path) -> str:
    """Short name used in snapshot names and session entries: ``opencode`` or ``opencode-<channel>``."""
    return db.name[:-3] if db.name.endswith(".db") else db.name
