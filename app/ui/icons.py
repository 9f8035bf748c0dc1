"""The tray icon for each service state, drawn with Pillow (and nothing else: no pystray, plyer or Tk).

Every state has its own silhouette *and* its own symbol, so the states differ by shape, not only by
colour: up to date = green circle with a check mark; changes pending = blue circle with three dots;
syncing = blue circle with two circular arrows; retrying = amber triangle with "!"; failed = red
octagon with an X; paused = grey rounded square with two bars; not configured = pale circle with "?".
Each glyph has a near-black outline around a mid-to-light fill, so it reads on light and dark panels.

``python -m app.ui.icons --write`` regenerates the top-level ``assets/icons/`` (shipped as the package data
``app.assets.icons``, see :mod:`app.assets`; the tests check the committed files match): each state's PNGs
and Windows icon, and the macOS app icon.
"""

from __future__ import annotations

import argparse
import enum
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from app import assets

logger = logging.getLogger(__name__)

PNG_SIZES: tuple[int, ...] = (16, 22, 32, 64)
ICO_SIZES: tuple[int, ...] = (16, 24, 32, 48, 64, 256)
ICNS_SIZES: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024)  # every size an .icns holds

_CANVAS = 1024  # drawn at up to 16x the target size (at least this), then LANCZOS-downsampled
_INK = (24, 24, 24, 255)  # outline and dark symbols
_LIGHT = (255, 255, 255, 255)  # light symbols

RGBA = tuple[int, int, int, int]
Point = tuple[float, float]


class State(enum.StrEnum):
    """The states the tray shows; values are stable names (used in file names)."""

    NOT_CONFIGURED = "not-configured"
    UP_TO_DATE = "up-to-date"
    CHANGES_PENDING = "changes-pending"
    SYNCING = "syncing"
    RETRYING = "retrying"
    FAILED = "failed"
    PAUSED = "paused"


class _Pen:
    """Draws in unit coordinates (0..1) on a square canvas; widths are in target-size pixels."""

    def __init__(self, draw: ImageDraw.ImageDraw, canvas: int, size: int) -> None:
        self.draw = draw
        self.canvas = canvas
        # Strokes are 1 px at 16 px and grow slowly with the size, so small icons stay crisp.
        self.px = canvas / size * max(1.0, size / 20)

    def xy(self, points: Sequence[Point]) -> list[tuple[float, float]]:
        return [(x * self.canvas, y * self.canvas) for x, y in points]

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        c = self.canvas
        return (x0 * c, y0 * c, x1 * c, y1 * c)

    def width(self, target_px: float) -> int:
        return max(1, round(target_px * self.px))

    def line(self, points: Sequence[Point], fill: RGBA, target_px: float) -> None:
        w = self.width(target_px)
        pts = self.xy(points)
        self.draw.line(pts, fill=fill, width=w, joint="curve")
        for x, y in (pts[0], pts[-1]):  # round caps
            self.draw.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=fill)

    def dot(self, cx: float, cy: float, r: float, fill: RGBA) -> None:
        self.draw.ellipse(self.box(cx - r, cy - r, cx + r, cy + r), fill=fill)


def _circle(pen: _Pen, fill: RGBA) -> None:
    pen.draw.ellipse(pen.box(0.03, 0.03, 0.97, 0.97), fill=fill, outline=_INK, width=pen.width(1))


def _polygon(pen: _Pen, points: Sequence[Point], fill: RGBA) -> None:
    pen.draw.polygon(pen.xy(points), fill=fill, outline=_INK, width=pen.width(1))


def _regular(n: int, radius: float, turn: float) -> list[Point]:
    angles = [turn + 2 * math.pi * i / n for i in range(n)]
    return [(0.5 + radius * math.cos(a), 0.5 + radius * math.sin(a)) for a in angles]


def _up_to_date(pen: _Pen) -> None:
    _circle(pen, (40, 160, 70, 255))
    pen.line([(0.27, 0.52), (0.43, 0.68), (0.74, 0.33)], _LIGHT, 2.2)


def _changes_pending(pen: _Pen) -> None:
    _circle(pen, (45, 125, 225, 255))
    for cx in (0.27, 0.5, 0.73):
        pen.dot(cx, 0.5, 0.085, _LIGHT)


def _syncing(pen: _Pen) -> None:
    _circle(pen, (45, 125, 225, 255))
    w = pen.width(1.8)
    r = 0.27
    box = pen.box(0.5 - r, 0.5 - r, 0.5 + r, 0.5 + r)
    for start in (200.0, 20.0):  # two arcs, each ending in an arrowhead (clockwise)
        pen.draw.arc(box, start, start + 120, fill=_LIGHT, width=w)
        end = math.radians(start + 130)
        tip = (0.5 + r * math.cos(end), 0.5 + r * math.sin(end))
        back = math.radians(start + 100)
        base = (0.5 + r * math.cos(back), 0.5 + r * math.sin(back))
        nx, ny = math.cos(back) * 0.13, math.sin(back) * 0.13
        head = [tip, (base[0] + nx, base[1] + ny), (base[0] - nx, base[1] - ny)]
        pen.draw.polygon(pen.xy(head), fill=_LIGHT)


def _retrying(pen: _Pen) -> None:
    _polygon(pen, [(0.5, 0.04), (0.97, 0.93), (0.03, 0.93)], (245, 185, 20, 255))
    pen.line([(0.5, 0.36), (0.5, 0.62)], _INK, 2.0)
    pen.dot(0.5, 0.78, 0.07, _INK)


def _failed(pen: _Pen) -> None:
    _polygon(pen, _regular(8, 0.49, math.pi / 8), (225, 55, 55, 255))
    pen.line([(0.31, 0.31), (0.69, 0.69)], _LIGHT, 2.2)
    pen.line([(0.69, 0.31), (0.31, 0.69)], _LIGHT, 2.2)


def _paused(pen: _Pen) -> None:
    pen.draw.rounded_rectangle(
        pen.box(0.06, 0.06, 0.94, 0.94), radius=0.2 * pen.canvas, fill=(125, 125, 125, 255),
        outline=_INK, width=pen.width(1),
    )  # fmt: skip
    pen.draw.rectangle(pen.box(0.28, 0.26, 0.42, 0.74), fill=_LIGHT)
    pen.draw.rectangle(pen.box(0.58, 0.26, 0.72, 0.74), fill=_LIGHT)


def _not_configured(pen: _Pen) -> None:
    _circle(pen, (190, 190, 190, 255))
    w = pen.width(2.0)
    pen.draw.arc(pen.box(0.33, 0.2, 0.67, 0.52), 180, 90, fill=_INK, width=w)
    pen.line([(0.5, 0.52), (0.5, 0.62)], _INK, 2.0)
    pen.dot(0.5, 0.79, 0.075, _INK)


_GLYPHS: dict[State, Callable[[_Pen], None]] = {
    State.NOT_CONFIGURED: _not_configured,
    State.UP_TO_DATE: _up_to_date,
    State.CHANGES_PENDING: _changes_pending,
    State.SYNCING: _syncing,
    State.RETRYING: _retrying,
    State.FAILED: _failed,
    State.PAUSED: _paused,
}


def render(state: State, size: int) -> Image.Image:
    """A new ``size``x``size`` RGBA image of ``state``'s icon; the same pixels on every call."""
    canvas = size * max(4, min(16, _CANVAS // size))
    image = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    _GLYPHS[state](_Pen(ImageDraw.Draw(image), canvas, size))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def png_path(directory: Path, state: State, size: int) -> Path:
    """Where :func:`write_assets` puts ``state``'s PNG at ``size`` px."""
    return directory / assets.png_name(state.value, size)


def ico_path(directory: Path, state: State) -> Path:
    """Where :func:`write_assets` puts ``state``'s multi-size Windows icon."""
    return directory / assets.ico_name(state.value)


def icns_path(directory: Path) -> Path:
    """Where :func:`write_assets` puts the macOS app icon (the app's own icon's glyph)."""
    return directory / assets.icns_name(assets.APP_ICON)


def write_assets(directory: Path) -> list[Path]:
    """Write every state's PNGs (:data:`PNG_SIZES`) and ICO (:data:`ICO_SIZES`) into ``directory``, and the
    app's own icon as a macOS .icns (:data:`ICNS_SIZES`).

    Files carry no metadata or timestamps, so the same Pillow writes the same bytes. Returns the paths.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for state in State:
        for size in PNG_SIZES:
            path = png_path(directory, state, size)
            render(state, size).save(path, format="PNG", optimize=False, compress_level=9)
            written.append(path)
        frames = [render(state, size) for size in ICO_SIZES]
        path = ico_path(directory, state)
        frames[-1].save(path, format="ICO", sizes=[(s, s) for s in ICO_SIZES], append_images=frames[:-1])
        written.append(path)
    frames = [render(State(assets.APP_ICON), size) for size in ICNS_SIZES]
    frames[-1].save(icns_path(directory), format="ICNS", append_images=frames[:-1])
    written.append(icns_path(directory))
    logger.info("wrote %d icon files to %s", len(written), directory)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m app.ui.icons --write [DIR]``: regenerate the icon files (default: the package's own)."""
    parser = argparse.ArgumentParser(prog="python -m app.ui.icons", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help="write the PNG, ICO and ICNS files")
    parser.add_argument("dir", nargs="?", type=Path, default=None, help="target folder")
    args = parser.parse_args(argv)
    if not args.write:
        parser.print_help()
        return 2
    for path in write_assets(args.dir or assets.icon_dir()):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
