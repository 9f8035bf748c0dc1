"""The checks of one entry of the manifest (untrusted input, see :mod:`app.backup.untrusted`): a session's,
a snapshot's, a legacy file's, the encryption record. Pure; BackupDamaged (one line) naming what is wrong."""

from __future__ import annotations

from app.backup import untrusted as u
from app.backup.manifest.model import (
    MANIFEST,
    SHARD_DIR,
    Encryption,
    FileEntry,
    SessionEntry,
    session_path,
    shard_of,
)
from app.crypt.age import is_recipient
from app.errors import BackupDamaged
from app.opencode.snapshot import parse_snapshot_name
from app.opencode.stores import BY_TAG

STORE_TAGS = frozenset(BY_TAG)
# a title or folder sealed with age (base64, a header per recipient) is ~1.4x its text and ~0.5 KB more
MAX_TITLE, MAX_DIRECTORY = 40_000, 16_384
MAX_RECIPIENTS = 64


def encryption_record(raw: object) -> Encryption:
    """The folder's encryption record: age public keys only (at most MAX_RECIPIENTS)."""
    where = f"{MANIFEST} encryption"
    doc = u.obj(raw, where)
    if doc.get("scheme") != "age":
        raise BackupDamaged(f"{where}: not an encryption this build knows ({u.short(doc.get('scheme'))})")
    recipients = age_recipients(doc.get("recipients"), where)
    rekey = doc.get("rekey")
    if rekey is None:
        return Encryption(recipients)
    rekey = u.obj(rekey, f"{where} rekey")
    done = u.text(rekey.get("done", ""), f"{where} rekey done", 4096)
    return Encryption(recipients, age_recipients(rekey.get("to"), f"{where} rekey"), done)


def age_recipients(raw: object, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_RECIPIENTS or not all(map(is_recipient, raw)):
        raise BackupDamaged(f"{where}: the recipients are not a list of age public keys")
    return tuple(raw)


def snapshot_entries(raw: object) -> dict[str, FileEntry]:
    out = {}
    for rel, value in u.obj(raw, f"{MANIFEST} files").items():
        where = f"{MANIFEST} files"
        u.relpath(rel, where, "snapshots")
        if parse_snapshot_name(rel.removeprefix("snapshots/")) is None or rel.count("/") != 1:
            raise BackupDamaged(f"{where}: not a snapshot name: {u.short(rel)}")
        entry = u.obj(value, f"{where} {rel}")
        out[rel] = FileEntry(
            size=u.integer(entry.get("size"), f"{where} {rel} size", high=u.MAX_FILE_BYTES),
            sha256=u.digest(entry.get("sha256"), f"{where} {rel}"),
            raw_size=u.integer(entry.get("raw_size", 0), f"{where} {rel} raw_size", high=u.MAX_FILE_BYTES),
        )
    return out


def session_entry(sid: str, raw: object, where: str) -> SessionEntry:
    if not u.ID.match(sid):
        raise BackupDamaged(f"{where}: not a session id: {u.short(sid)}")
    entry = plain_entry(raw)
    if entry is None:  # something does not fit: the checks one by one, to say what
        e = u.obj(raw, f"{where} {sid}")
        entry = SessionEntry(
            path=u.relpath(e.get("path"), where, "sessions"),
            project_id=u.text(e.get("project_id"), f"{where} {sid} project_id", 200),
            title=u.text(e.get("title", ""), f"{where} {sid} title", MAX_TITLE),
            directory=u.text(e.get("directory", ""), f"{where} {sid} directory", MAX_DIRECTORY),
            time_updated=u.integer(e.get("time_updated", 0), f"{where} {sid} time_updated", high=1 << 53),
            fingerprint=u.text(e.get("fingerprint", ""), f"{where} {sid} fingerprint", 400),
            size=u.integer(e.get("size"), f"{where} {sid} size", high=u.MAX_FILE_BYTES),
            sha256=u.digest(e.get("sha256"), f"{where} {sid}"),
            database=u.text(e.get("database", "opencode.db"), f"{where} {sid} database", 200),
            store=store_tag(e.get("store", "v1"), f"{where} {sid}"),
        )
    else:
        u.relpath(entry.path, where, "sessions")
    project = entry.project_id
    if entry.path != session_path(project, sid) and entry.path != v1_path(project, sid):
        raise BackupDamaged(f"{where}: session {sid} points at {u.short(entry.path)}, not its own file")
    return entry


def plain_entry(raw: object) -> SessionEntry | None:
    """The entry when every field passes the checks of :func:`_session_entry` (its path aside), else None.
    One pass without building a message per field: ``status`` reads 1,800 of these (54 ms before)."""
    if type(raw) is not dict:
        return None
    e = raw
    path, project, title = e.get("path"), e.get("project_id"), e.get("title", "")
    directory, fingerprint, database = (
        e.get("directory", ""),
        e.get("fingerprint", ""),
        e.get("database", "opencode.db"),
    )
    time_updated, size, sha = e.get("time_updated", 0), e.get("size"), e.get("sha256")
    store = e.get("store", "v1")
    texts = (
        (project, 200),
        (title, MAX_TITLE),
        (directory, MAX_DIRECTORY),
        (fingerprint, 400),
        (database, 200),
    )
    if not (
        type(path) is str
        and type(project) is str
        and all(type(t) is str and len(t) <= limit and "\x00" not in t for t, limit in texts)
        and type(time_updated) is int
        and 0 <= time_updated <= 1 << 53
        and type(size) is int
        and 0 <= size <= u.MAX_FILE_BYTES
        and type(sha) is str
        and u.SHA256.match(sha)
        and store in STORE_TAGS
    ):
        return None
    return SessionEntry(
        path, project, title, directory, time_updated, fingerprint, size, sha, database, store
    )


def store_tag(value: object, where: str) -> str:
    if value not in STORE_TAGS:
        raise BackupDamaged(f"{where}: unknown opencode store {u.short(value)} (written by a newer app?)")
    return str(value)


def v1_path(project_id: str, sid: str) -> str:
    """Format 1's name for a session file (ids are plain, so it equals today's for every real id)."""

    def old(name: str) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "_"

    return f"sessions/{old(project_id)}/{old(sid)}.json"


def session_passes_checks(sid: str, entry: SessionEntry) -> bool:
    """Whether :func:`load` would accept ``entry`` for session ``sid`` (a repair indexes only what it can
    read back)."""
    try:
        session_entry(sid, vars(entry), SHARD_DIR)
    except BackupDamaged:
        return False
    return True


def passes_checks(shard: str, rel: str, entry: FileEntry) -> bool:
    """Whether :func:`load_shard` would accept ``rel`` with ``entry`` in ``storage-<shard>`` (a sync checks
    what it adds to a checked shard, so the shard it writes counts as checked too)."""
    try:
        u.relpath(rel, SHARD_DIR, "storage")
        storage_entry(SHARD_DIR, rel, [entry.size, entry.sha256, entry.mtime_ns])
    except BackupDamaged:
        return False
    return shard_of(rel) == shard


def storage_entry(where: str, rel: str, value: object) -> FileEntry:
    """A ``[size, sha256, mtime]`` entry, checked; BackupDamaged naming what is wrong."""
    if not isinstance(value, list) or len(value) != 3:
        raise BackupDamaged(f"{where} is damaged: the entry of {u.short(rel)} is not [size, sha256, mtime]")
    return FileEntry(
        size=u.integer(value[0], f"{where} size", high=u.MAX_FILE_BYTES),
        sha256=u.digest(value[1], where),
        mtime_ns=u.integer(value[2], f"{where} mtime", low=-u.MAX_INT, high=u.MAX_INT),
    )
