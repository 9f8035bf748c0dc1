"""The artwork shipped inside the package: the icons, whose home is the top-level ``assets/icons/``
(``python -m app.ui.icons --write`` draws them), shipped as the package ``app.assets.icons``.

They are package data, so a source checkout, a wheel (``pipx install``), an sdist and an installed build all
carry them and find them the same way, through :mod:`importlib.resources` (the folder holds an empty
``__init__.py`` so that the files are one package's, in every install). This module sits below the faces
(``app.ui``) and the adapters (``app.platform``), so a login entry can name an icon file without importing
the drawing code. It imports nothing of the app and does nothing at import time.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# The icon that stands for the app itself: launchers, the login entry, the installed build's own icon.
APP_ICON = "up-to-date"
APP_ICON_SIZE = 64


def icon_dir() -> Path:
    """The folder of icon files. A real folder in every way this app is installed (never a zip), so a
    desktop entry may name a file in it by its absolute path."""
    return Path(str(resources.files(f"{__name__}.icons")))


def png_name(name: str, size: int) -> str:
    """The file name of icon ``name`` (an icon state's value) drawn at ``size`` px."""
    return f"{name}-{size}.png"


def ico_name(name: str) -> str:
    """The file name of icon ``name``'s multi-size Windows icon."""
    return f"{name}.ico"


def icns_name(name: str) -> str:
    """The file name of icon ``name`` as a macOS app icon."""
    return f"{name}.icns"


def app_icon_png() -> Path:
    """The app's own icon as a PNG (it may be missing only in a broken install; callers check)."""
    return icon_dir() / png_name(APP_ICON, APP_ICON_SIZE)
