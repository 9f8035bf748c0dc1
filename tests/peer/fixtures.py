"""pytest fixtures around :class:`~.opencode.OpencodePeer`; import them from ``tests/conftest.py``::

    from tests.peer.fixtures import make_opencode_peer, opencode_binary, opencode_peer  # noqa: F401

- ``opencode_binary`` (session): the opencode binary path; skips when it is missing, but
  *fails* when ``CI`` is set (CI installs it with ``make peer``).
- ``opencode_peer`` (module): one started peer shared by the tests of a module.
- ``make_opencode_peer`` (function): a factory for fresh, started peers, all stopped at teardown.

Every peer is stopped (processes terminated and reaped) even when a test fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .opencode import DEFAULT_BINARY, OpencodePeer, find_opencode

INSTALL_HINT = "make peer"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_opencode() -> Path:
    """Return the opencode binary; skip the test if missing (fail instead when ``CI`` is set)."""
    binary = find_opencode()
    if binary is not None:
        return binary
    where = os.environ.get("OPENCODE_BIN") or str(DEFAULT_BINARY)
    reason = f"opencode CLI not installed at {where} (run: {INSTALL_HINT})"
    if _in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def opencode_binary() -> Path:
    """The pinned opencode binary (skip/fail as :func:`require_opencode`)."""
    return require_opencode()


@pytest.fixture(scope="module")
def opencode_peer(opencode_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpencodePeer]:
    """A started :class:`OpencodePeer` (fake LLM + ``opencode serve``) shared within a module."""
    peer = OpencodePeer(tmp_path_factory.mktemp("opencode-peer"), binary=opencode_binary)
    try:
        peer.start()
        yield peer
    finally:
        peer.stop()


@pytest.fixture
def make_opencode_peer(
    opencode_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], OpencodePeer]]:
    """Factory fixture: ``make_opencode_peer()`` returns a new started peer (own HOME and DB)."""
    peers: list[OpencodePeer] = []

    def make() -> OpencodePeer:
        peer = OpencodePeer(tmp_path_factory.mktemp("opencode-peer"), binary=opencode_binary)
        peers.append(peer)
        return peer.start()

    try:
        yield make
    finally:
        for peer in peers:
            peer.stop()
