"""``manifest.json`` and ``manifest.d/``: what the backup holds, with one commit point per sync.

    manifest.json                    {"format": "opencode-session-backup-manifest/3", "machine",
                                      "app_version", "opencode_schema", "updated", "session_count",
                                      "files": {relpath: {"size", "sha256", "raw_size"}}, "storage_files",
                                      "storage_bytes", "last_result", "last_full_thinning",
                                      "delta": {"sessions": {id: SessionEntry | null},
                                                "storage": {relpath: [size, sha256, mtime_ns] | null}},
                                      "shards": {name: {"file", "size", "sha256"}}}
    manifest.d/sessions-XX.<h>.json  {session_id: SessionEntry} in 64 shards by hash of the id
    manifest.d/storage-XX.<h>.json   {relpath: [size, sha256, source mtime_ns]}, 256 shards by path hash

The entries are the shards' with the delta over them (null: gone). A sync's changed entries go into the
delta, so its commit is one write of ``manifest.json`` whatever it touched; when the delta passes
MAX_DELTA_BYTES (32 KiB) a save folds it: each shard it touches is written again and the delta is empty.
A shard is written under a new name (``<h>``: the start of its sha256), flushed, and only
``manifest.json``, replaced atomically last, names the shards in force: that rename is the commit. A crash
before it leaves the old manifest naming the old shards, which are still there; a crash after it, the new
one. Shards no longer named are removed after the commit, except those the replaced manifest named (a
reader that loaded it a moment ago can still read them).

Everything read here is untrusted (see :mod:`app.backup.untrusted`): sizes are capped, every number
bounded, every path checked to stay inside the machine folder, every entry checked to sit in its shard.
Formats 2 (no delta) and 1 (fixed shard names, written before this commit point existed) are still read;
a format 1 count that does not match its shards (what a crash between its writes left) is recounted
instead of refused.
"""

from app.backup.manifest.cache import ManifestCache
from app.backup.manifest.entries import passes_checks, session_passes_checks
from app.backup.manifest.model import (
    MANIFEST,
    MANIFEST_FORMAT,
    PLAIN,
    SESSION_SHARDS,
    SHARD_DIR,
    Encryption,
    FileEntry,
    Manifest,
    SessionEntry,
    ShardRef,
    all_shards,
    marks,
    safe_name,
    session_path,
    session_shard_of,
    shard_of,
)
from app.backup.manifest.read import (
    load,
    load_shard,
    load_shard_text,
    load_storage_index,
)
from app.backup.manifest.shard_text import ShardText
from app.backup.manifest.store import ManifestStore
from app.backup.manifest.write import save

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "PLAIN",
    "SESSION_SHARDS",
    "SHARD_DIR",
    "Encryption",
    "FileEntry",
    "Manifest",
    "ManifestCache",
    "ManifestStore",
    "SessionEntry",
    "ShardRef",
    "ShardText",
    "all_shards",
    "load",
    "load_shard",
    "load_shard_text",
    "load_storage_index",
    "marks",
    "passes_checks",
    "safe_name",
    "save",
    "session_passes_checks",
    "session_path",
    "session_shard_of",
    "shard_of",
]
