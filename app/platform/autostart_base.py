"""What the autostart factory and its backends share (kept apart so the backends never import the factory)."""

from __future__ import annotations

from app.errors import BackupError


class AutostartError(BackupError):
    """Start at login could not be changed (unsupported platform, unwritable folder, registry refused)."""
