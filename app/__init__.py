"""opencode-session-backup: continuous, versioned, secret-free backups of opencode sessions."""

__version__ = "0.1.0"
APP_NAME = "opencode-session-backup"
