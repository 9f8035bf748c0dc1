"""Reading the manifest and its shards: untrusted input (see :mod:`app.backup.untrusted`).

Sizes are capped, every number bounded, every path checked to stay inside the machine folder and every
entry checked to sit in its shard; anything else is one BackupDamaged line. Format 1 (fixed shard names,
written before the commit point existed) is still read; a count that does not match its shards (what a
crash between its writes left) is recounted instead of refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.backup import untrusted as u
from app.backup.manifest.cache import ManifestCache
from app.backup.manifest.entries import (
    encryption_record,
    session_entry,
    snapshot_entries,
    storage_entry,
)
from app.backup.manifest.model import (
    MANIFEST,
    MANIFEST_FORMAT,
    PLAIN,
    SEALED_FORMAT,
    SHARD_DIR,
    SHARD_FILE,
    SHARD_NAME,
    V1_FORMAT,
    V2_FORMAT,
    FileEntry,
    Manifest,
    ShardRef,
    all_shards,
    session_shard_of,
    shard_of,
)
from app.backup.manifest.shard_text import ShardText, canonical
from app.errors import BackupDamaged, BackupMoved

logger = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 8 << 20  # 1,800 sessions and 100,000 legacy files need ~40 KB
MAX_SHARD_BYTES = 64 << 20


def load(machine_dir: Path, machine: str, cache: ManifestCache | None = None) -> Manifest:
    """Read the manifest and its session shards, or an empty one when there is none yet; ``cache`` gets
    the shards' texts and entries as committed (its owner saves faster with them).

    Anything damaged or hostile raises BackupDamaged (one line). A shard that vanished because a sync
    committed a newer manifest meanwhile is read again from that newer manifest (still missing after
    three tries: BackupMoved, worth reading again later)."""
    for attempt in range(3):
        try:
            return _load(machine_dir, machine, cache if cache is not None else ManifestCache())
        except _ShardGone:
            if attempt == 2:
                raise BackupMoved(f"{MANIFEST} names shards that are missing (still syncing?)") from None
    raise AssertionError("unreachable")


class _ShardGone(Exception):
    pass


def _load(machine_dir: Path, machine: str, cache: ManifestCache) -> Manifest:
    path = machine_dir / MANIFEST
    cache.committed, cache.base = {}, {}
    try:
        path.lstat()
    except FileNotFoundError:
        return Manifest(machine=machine)
    except OSError as exc:
        raise BackupDamaged(f"cannot read {MANIFEST}: {exc.strerror or exc}") from None
    doc = u.obj(u.parse_json(u.read_capped(path, MAX_MANIFEST_BYTES, MANIFEST), MANIFEST), MANIFEST)
    fmt = doc.get("format")
    if fmt not in (SEALED_FORMAT, MANIFEST_FORMAT, V2_FORMAT, V1_FORMAT):
        raise BackupDamaged(f"{MANIFEST}: not a manifest of this format ({u.short(fmt)})")
    man = Manifest(
        machine=u.text(doc.get("machine", machine), f"{MANIFEST} machine", 200),
        app_version=u.text(doc.get("app_version", ""), f"{MANIFEST} app_version", 100),
        opencode_schema=u.text(doc.get("opencode_schema"), f"{MANIFEST} opencode_schema", 200, optional=True)
        or None,
        updated=u.text(doc.get("updated", ""), f"{MANIFEST} updated", 100),
        files=snapshot_entries(doc.get("files", {})),
        storage_files=u.integer(doc.get("storage_files", 0), f"{MANIFEST} storage_files"),
        storage_bytes=u.integer(doc.get("storage_bytes", 0), f"{MANIFEST} storage_bytes"),
        last_result=u.obj(doc.get("last_result", {}), f"{MANIFEST} last_result"),
        last_full_thinning=u.text(doc.get("last_full_thinning", ""), f"{MANIFEST} last_full_thinning", 100),
        encryption=encryption_record(doc.get("encryption")) if fmt == SEALED_FORMAT else PLAIN,
    )
    man.shards = _shard_refs(machine_dir, doc) if fmt != V1_FORMAT else _v1_refs(machine_dir)
    for name, ref in man.shards.items():
        if name.startswith("sessions-"):
            text = _read_shard(machine_dir, name, ref)
            cache.committed[name] = text
            base = cache.base[name] = {}
            for sid, raw in u.obj(u.parse_json(text.encode(), ref.file), ref.file).items():
                base[sid] = man.sessions[sid] = session_entry(sid, raw, f"{SHARD_DIR}/{ref.file}")
                if session_shard_of(sid) != name:
                    raise BackupDamaged(
                        f"{SHARD_DIR}/{ref.file} lists session {u.short(sid)} of another shard"
                    )
    if fmt in (MANIFEST_FORMAT, SEALED_FORMAT):
        _apply_delta(man, u.obj(doc.get("delta", {}), f"{MANIFEST} delta"))
    expected = u.integer(doc.get("session_count", len(man.sessions)), f"{MANIFEST} session_count")
    if expected != len(man.sessions):
        if fmt != V1_FORMAT:
            raise BackupDamaged(
                f"{MANIFEST} lists {expected} sessions but its shards hold {len(man.sessions)}"
            )
        logger.warning(
            "%s: format 1 counts %d sessions but its shards hold %d (an interrupted sync); using the shards",
            machine_dir / MANIFEST, expected, len(man.sessions),
        )  # fmt: skip
    return man


def _apply_delta(man: Manifest, delta: dict[str, Any]) -> None:
    """The committed changes not yet folded into the shards: session entries (or None: gone) over the
    shards' sessions; storage entries kept by shard for :func:`load_shard`. Each checked as a shard's."""
    where = f"{MANIFEST} delta"
    for sid, raw in u.obj(delta.get("sessions", {}), where).items():
        if raw is None:
            if not u.ID.match(sid):
                raise BackupDamaged(f"{where}: not a session id: {u.short(sid)}")
            man.sessions.pop(sid, None)
        else:
            man.sessions[sid] = session_entry(sid, raw, where)
    for rel, raw in u.obj(delta.get("storage", {}), where).items():
        u.relpath(rel, where, "storage")
        entry = None if raw is None else storage_entry(where, rel, raw)
        man.storage_delta.setdefault(shard_of(rel), {})[rel] = entry


def _shard_refs(machine_dir: Path, doc: dict[str, Any]) -> dict[str, ShardRef]:
    refs = {}
    for name, value in u.obj(doc.get("shards", {}), f"{MANIFEST} shards").items():
        entry = u.obj(value, f"{MANIFEST} shards")
        file = entry.get("file")
        m = SHARD_FILE.match(file) if isinstance(file, str) else None
        if not SHARD_NAME.match(name) or m is None or m["name"] != name:
            raise BackupDamaged(f"{MANIFEST}: refusing the shard {u.short(name)}: {u.short(file)}")
        refs[name] = ShardRef(
            file=file,  # type: ignore[arg-type]  # matched above
            size=u.integer(entry.get("size"), f"{MANIFEST} shard {name} size", high=MAX_SHARD_BYTES),
            sha256=u.digest(entry.get("sha256"), f"{MANIFEST} shard {name}"),
        )
    return refs


def _v1_refs(machine_dir: Path) -> dict[str, ShardRef]:
    refs = {}
    with (
        contextlib.suppress(FileNotFoundError, NotADirectoryError),
        os.scandir(machine_dir / SHARD_DIR) as it,
    ):
        for entry in it:
            m = SHARD_FILE.match(entry.name)
            if m is not None and m["h"] is None:
                refs[m["name"]] = ShardRef(entry.name)
    return refs


def _read_shard(machine_dir: Path, name: str, ref: ShardRef) -> str:
    """The shard's text; when the manifest gives its hash, its bytes have that hash (checked here)."""
    path = machine_dir / SHARD_DIR / ref.file
    try:
        data = u.read_capped(path, MAX_SHARD_BYTES, f"{SHARD_DIR}/{ref.file}")
    except BackupMoved:
        if ref.sha256 is not None:
            raise _ShardGone(name) from None
        raise
    if ref.sha256 is not None and (len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256):
        raise BackupDamaged(f"{SHARD_DIR}/{ref.file} does not match {MANIFEST} (damaged, or still syncing)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BackupDamaged(f"{SHARD_DIR}/{ref.file} is damaged: not UTF-8") from None


def load_shard(
    machine_dir: Path, man: Manifest, shard: str, checked: set[tuple[str, str]] | None = None
) -> dict[str, FileEntry]:
    """The entries of ``storage-<shard>`` (``{}`` when the manifest names none). ``checked``: the (shard,
    sha256) of shard bytes that passed every check before (its owner's, see ``cache.ManifestCache``)."""
    checked = set() if checked is None else checked
    name = f"storage-{shard}"
    ref = man.shards.get(name)
    entries: dict[str, FileEntry] = {}
    if ref is not None:
        text = _storage_text(machine_dir, name, ref)
        if ref.sha256 is not None and (name, ref.sha256) in checked:
            # bytes with this very hash passed every check before (_read_shard hashed what it read)
            entries = {rel: FileEntry(v[0], v[1], v[2]) for rel, v in json.loads(text).items()}
        else:
            entries = _checked_entries(checked, shard, ref, text)
    for rel, entry in man.storage_delta.get(shard, {}).items():
        if entry is None:
            entries.pop(rel, None)
        else:
            entries[rel] = entry
    return entries


def load_shard_text(
    machine_dir: Path, man: Manifest, shard: str, checked: set[tuple[str, str]] | None = None
) -> ShardText:
    """:func:`load_shard` for a sync that changes a few entries: the shard as its checked, canonical
    text (a shard of another form is checked and re-encoded)."""
    checked = set() if checked is None else checked
    name = f"storage-{shard}"
    ref = man.shards.get(name)
    if ref is None:
        text = "{}"
    else:
        text = _storage_text(machine_dir, name, ref)
        if ref.sha256 is None or (name, ref.sha256) not in checked:
            entries = _checked_entries(checked, shard, ref, text)
            text = text if (name, ref.sha256) in checked else canonical(entries)
    return ShardText(text, man.storage_delta.get(shard, {}))


def _storage_text(machine_dir: Path, name: str, ref: ShardRef) -> str:
    try:
        return _read_shard(machine_dir, name, ref)
    except _ShardGone:
        raise BackupMoved(f"{SHARD_DIR}/{ref.file} is missing (a sync is committing; try again)") from None


def _checked_entries(
    checked: set[tuple[str, str]], shard: str, ref: ShardRef, text: str
) -> dict[str, FileEntry]:
    """Every entry of a storage shard's text, each checked; a text that passes and is canonical is
    remembered in ``checked`` (by name and hash: read again, it is not checked again)."""
    name = f"storage-{shard}"
    where = f"{SHARD_DIR}/{ref.file}"
    doc = u.obj(u.parse_json(text.encode(), where), where)
    out = {}
    for rel, value in doc.items():
        u.relpath(rel, where, "storage")
        if shard_of(rel) != shard:
            raise BackupDamaged(f"{where} lists {u.short(rel)}, which belongs in another shard")
        # the checks of _storage_entry, inline for the entries that pass them (all of them, unless the
        # folder is damaged): a shard lists ~400 files and a sync touching 5 reads 5 shards
        if (
            type(value) is list
            and len(value) == 3
            and type(size := value[0]) is int
            and 0 <= size <= u.MAX_FILE_BYTES
            and type(digest := value[1]) is str
            and u.SHA256.match(digest)
            and type(mtime := value[2]) is int
            and -u.MAX_INT <= mtime <= u.MAX_INT
        ):
            out[rel] = FileEntry(size, digest, mtime)
        else:
            out[rel] = storage_entry(where, rel, value)
    if ref.sha256 is not None and canonical(out) == text:
        checked.add((name, ref.sha256))
    return out


def load_storage_index(
    machine_dir: Path, man: Manifest, shards: Iterable[str] | None = None
) -> dict[str, dict[str, FileEntry]]:
    """Shard -> {relpath: entry} for the given shards (all when None)."""
    checked: set[tuple[str, str]] = set()
    return {s: load_shard(machine_dir, man, s, checked) for s in (all_shards() if shards is None else shards)}
