"""The pystray binding: the icon on the main thread, its menu built from the tray's published MenuView.

pystray calls the menu's callbacks on its own thread; they only post to the tray. Each state's image
is drawn once per process.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from PIL import Image

from app.ui.icons import State, render
from app.ui.tray.app import TrayApp
from app.ui.tray.model import Menu, MenuItem, menu_items

logger = logging.getLogger(__name__)

ICON_SIZE = 64


@functools.cache
def image(state: State) -> Image.Image:
    """Each state's tray image, drawn once per process."""
    return render(state, ICON_SIZE)


class TrayIcon:
    """The tray's face: a pystray Icon on the main thread, made by :meth:`run` for the TrayApp it shows.
    ``pystray`` is the imported module."""

    def __init__(self, pystray: Any) -> None:
        self._ps = pystray
        self._app: TrayApp | None = None
        self._state: State | None = None
        self.icon: Any = None  # pystray's Icon, once run() made it
        self._failed = False

    def show(self, state: State, tooltip: str) -> None:
        if self.icon is None:
            return
        if state is not self._state:  # the tooltip's "2 min ago" changes alone most of the time
            self._state = state
            self.icon.icon = image(state)
        if tooltip != self.icon.title:  # a long sync's progress rewrites it a few times a second at most
            self.icon.title = tooltip
        logger.debug("tray shows %s: %s", state.value, tooltip)

    def menu_changed(self) -> None:
        if self.icon is None:
            return
        try:
            self.icon.update_menu()
        except Exception:
            logger.debug("menu update failed", exc_info=True)

    def stop(self) -> None:
        if self.icon is not None:
            self.icon.stop()

    def _items(self) -> list[Any]:
        """pystray's items for the menu the tray published last (pystray's thread)."""
        if self._app is None:
            return []
        items = menu_items(self._app.menu)
        greyed = ", ".join(i.label for i in items if i is not None and not i.enabled)
        logger.debug("menu built; greyed: %s", greyed or "none")
        return [self._item(i) if i is not None else self._ps.Menu.SEPARATOR for i in items]

    def _item(self, item: MenuItem) -> Any:
        app = self._app

        def post(_icon: Any, _item: Any) -> None:
            if app is not None:
                app.post(Menu(item.action))

        checked = None if item.checked is None else (lambda _i, on=item.checked: on)
        ps_item = self._ps.MenuItem
        return ps_item(item.label, post, enabled=item.enabled, checked=checked, default=item.default)

    def run(self, app: TrayApp) -> None:
        """Make the icon for ``app`` and run pystray's loop (main thread); the tray starts once it runs."""
        self._app = app
        self._state, tip = app.view()
        menu = self._ps.Menu(self._items)
        self.icon = self._ps.Icon("opencode-session-backup", image(self._state), tip, menu=menu)

        def setup(icon: Any) -> None:
            if self._failed:
                return
            icon.visible = True
            logger.info("tray icon shown (pystray backend %s)", type(icon).__module__)
            app.start()

        try:
            self.icon.run(setup=setup)
        except BaseException:
            self._failed = True
            # pystray's setup thread waits for a loop that never ran, and it is not a daemon: let it go
            try:
                self.icon._mark_ready()
            except Exception:
                logger.debug("pystray's setup thread could not be released", exc_info=True)
            raise
