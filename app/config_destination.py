"""Whether a backup destination can be used, before anything is tried: a folder (where it is, whether it
can be written) or an rclone remote (rclone installed, the remote in the user's config). Each refusal is a
:class:`~app.errors.ConfigError` with one line (exit 2, nothing written). Used by :mod:`app.config`."""

from __future__ import annotations

import os
from pathlib import Path

from app import paths
from app.errors import ConfigError, TransferError
from app.transfer.rclone_spec import INSTALL_HINT, RemoteSpec


def check_folder(dest: Path, source: Path, tail: str, *, allow_unmounted: bool) -> None:
    """Raise ConfigError unless ``dest`` can hold backups: outside opencode's data folder ``source`` (and
    not containing it, symlinks resolved), a folder or creatable in an existing parent, writable. With
    ``allow_unmounted`` a missing parent is accepted (a drive not mounted yet: the service retries).
    Writability is ``os.access`` only: root and Windows ACLs can still refuse the first write later."""
    real_dest = resolve(dest, "backupPath")
    real_src = resolve(source, "source")
    if real_dest == real_src or real_src in real_dest.parents:
        raise ConfigError(
            f"backupPath {dest} is inside opencode's data folder {source}; choose a folder outside it "
            f"({tail})"
        )
    if real_dest in real_src.parents:
        raise ConfigError(
            f"backupPath {dest} contains opencode's data folder {source}; choose a folder outside it ({tail})"
        )
    try:
        if dest.is_symlink() and not dest.exists():
            raise ConfigError(f"backupPath {dest} is a broken symbolic link ({tail})")
        exists = dest.exists()
        if exists and not dest.is_dir():
            raise ConfigError(f"backupPath {dest} is a file, not a folder ({tail})")
        target = dest if exists else dest.parent
        if not exists and allow_unmounted and not target.exists():
            return
        if not exists and not target.is_dir():
            state = "is not a folder" if target.exists() else "does not exist"
            raise ConfigError(f"backupPath {dest} cannot be created: {target} {state} ({tail})")
    except OSError as exc:
        raise ConfigError(f"backupPath {dest} cannot be checked: {exc.strerror} ({tail})") from None
    if not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(f"backupPath {dest} is not writable: no write permission on {target} ({tail})")


def check_remote(spec: RemoteSpec, tail: str) -> None:
    """Raise ConfigError unless rclone is installed and ``spec``'s remote is one of the user's (rclone
    reads its config for that and connects to nothing: a remote that is down is not refused here)."""
    from app.transfer import rclone  # noqa: PLC0415 - every command loads the settings; this only with a remote

    binary = rclone_binary(spec, tail)
    try:
        remotes = rclone.list_remotes(binary)
    except TransferError as exc:
        raise ConfigError(f"backupPath {spec.text}: {exc} ({tail})") from None
    if spec.remote not in remotes:
        known = ", ".join(sorted(remotes)) or "none yet"
        raise ConfigError(
            f"backupPath {spec.text}: rclone has no remote named '{spec.remote}' (yours: {known}); add it "
            f"with 'rclone config' ({tail})"
        )


def rclone_binary(spec: RemoteSpec, tail: str) -> str:
    """The rclone program to reach ``spec`` with; ConfigError saying how to install it when it is not on
    PATH (the commands that write check it with the settings, those that read when they reach the remote)."""
    from app.transfer import rclone  # noqa: PLC0415 - as in check_remote

    binary = rclone.find_binary()
    if binary is None:
        how = INSTALL_HINT.get(paths.current_platform(), INSTALL_HINT["linux"])
        raise ConfigError(f"backupPath {spec.text} needs rclone, which is not installed: {how} ({tail})")
    return binary


def resolve(path: Path, key: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        raise ConfigError(f"{key} {path} cannot be resolved: {exc}") from None
