"""What shows the tray app: the pystray binding (:class:`app.ui.tray.icon.TrayIcon`), or a test's. Its calls
come on the tray's thread."""

from __future__ import annotations

from typing import Protocol

from app.ui.icons import State


class Face(Protocol):
    def show(self, state: State, tooltip: str) -> None: ...

    def menu_changed(self) -> None: ...

    def stop(self) -> None: ...


class NoFace:
    """A face that shows nothing (a tray app nobody sees: tests of its logic)."""

    def show(self, state: State, tooltip: str) -> None:
        pass

    def menu_changed(self) -> None:
        pass

    def stop(self) -> None:
        pass
