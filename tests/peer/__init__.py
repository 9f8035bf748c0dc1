"""Test harness that drives the real opencode CLI offline (see README.md in this folder)."""

from .opencode import (
    DEFAULT_BINARY,
    OpencodePeer,
    OpencodePeerError,
    PlantedSecrets,
    find_opencode,
    free_port,
)

__all__ = [
    "DEFAULT_BINARY",
    "OpencodePeer",
    "OpencodePeerError",
    "PlantedSecrets",
    "find_opencode",
    "free_port",
]
