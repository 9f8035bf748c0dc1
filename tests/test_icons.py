"""The tray icons: committed files match the generator, states differ by shape, and read on any panel."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from app import assets
from app.ui import icons
from app.ui.icons import ICO_SIZES, PNG_SIZES, State, render

ROOT = Path(__file__).resolve().parent.parent
WHITE = (255, 255, 255, 255)
MID_GREY = (128, 128, 128, 255)
NEAR_BLACK = (20, 20, 20, 255)


def _on(image: Image.Image, background: tuple[int, int, int, int]) -> bytes:
    """Luminance bytes of ``image`` composited over a solid panel colour (what the user sees)."""
    panel = Image.new("RGBA", image.size, background)
    panel.alpha_composite(image)
    return panel.convert("L").tobytes()


def _structure(image: Image.Image) -> list[int]:
    """Per pixel: 0 transparent, 1 lighter or 2 darker than the icon's own mean opaque luminance.

    Thresholding at each icon's *own* mean removes its colour and overall brightness; what remains is
    the silhouette and where the symbol's strokes are: the shape a colour-blind user sees.
    """
    lum = image.convert("L").tobytes()
    alpha = image.getchannel("A").tobytes()
    opaque = [v for v, a in zip(lum, alpha, strict=True) if a >= 128]
    mean = sum(opaque) / len(opaque)
    return [0 if a < 128 else 1 if v > mean else 2 for v, a in zip(lum, alpha, strict=True)]


def test_committed_files_match_the_generator() -> None:
    """assets/icons holds exactly what ``python -m app.ui.icons --write`` draws now (pixel for pixel), and
    the empty ``__init__.py`` that makes it the package ``app.assets.icons`` in every install."""
    folder = assets.icon_dir()
    assert folder == ROOT / "assets" / "icons"  # the checkout's files, not an installed copy
    expected = {icons.png_path(folder, s, n).name for s in State for n in PNG_SIZES}
    expected |= {icons.ico_path(folder, s).name for s in State} | {
        icons.icns_path(folder).name,
        "__init__.py",
    }
    assert {p.name for p in folder.iterdir()} == expected
    for state in State:
        for size in PNG_SIZES:
            with Image.open(icons.png_path(folder, state, size)) as png:
                assert png.mode == "RGBA" and png.size == (size, size)
                assert png.tobytes() == render(state, size).tobytes(), f"{state} {size}px is stale"


def test_written_files_are_byte_identical_on_rewrite(tmp_path: Path) -> None:
    """No timestamps or metadata: writing twice gives the same bytes (so a regeneration diffs cleanly)."""
    first = {p.name: p.read_bytes() for p in icons.write_assets(tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in icons.write_assets(tmp_path / "b")}
    assert first == second
    assert all(
        b"tIME" not in data and b"tEXt" not in data for name, data in first.items() if name.endswith("png")
    )


@pytest.mark.parametrize("state", list(State))
def test_ico_holds_every_size_drawn_for_that_size(state: State) -> None:
    """Windows picks a frame per DPI: each size is present and is the icon drawn for it, not a rescale."""
    with Image.open(icons.ico_path(assets.icon_dir(), state)) as ico:
        assert sorted(ico.info["sizes"]) == [(n, n) for n in ICO_SIZES]
        for n in ICO_SIZES:
            ico.size = (n, n)
            ico.load()
            assert ico.convert("RGBA").tobytes() == render(state, n).tobytes()


def test_render_is_deterministic_and_sized() -> None:
    for state in State:
        for size in (*PNG_SIZES, 48):
            image = render(state, size)
            assert image.mode == "RGBA" and image.size == (size, size)
            assert image.tobytes() == render(state, size).tobytes()


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(State, 2)))
def test_every_pair_of_states_differs_by_shape_at_16px(a: State, b: State) -> None:
    """Without colour, every two 16 px icons still differ.

    Shape: at least 20 of the 256 pixels change class in the colour-free structure map (about two
    whole symbol strokes: a 1-px stroke across the 16 px glyph's interior covers ~10 px). Measured
    minimum is 28 (check mark vs three dots); grey minimum 16.5, the same pair.
    Grey: mean luminance difference >= 10 levels on white, mid-grey and near-black panels (e.g. 20 px
    differing by half the range); a pair differing only in hue of equal brightness would score ~0.
    """
    ia, ib = render(a, 16), render(b, 16)
    changed = sum(p != q for p, q in zip(_structure(ia), _structure(ib), strict=True))
    assert changed >= 20, f"{a} and {b} differ in only {changed} px of shape at 16 px"
    for panel in (WHITE, MID_GREY, NEAR_BLACK):
        la, lb = _on(ia, panel), _on(ib, panel)
        mean = sum(abs(p - q) for p, q in zip(la, lb, strict=True)) / len(la)
        assert mean >= 10, f"{a} and {b} look alike in grey on {panel[:3]} (mean diff {mean:.1f})"


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("size", PNG_SIZES)
@pytest.mark.parametrize("panel", [WHITE, NEAR_BLACK], ids=["light-panel", "dark-panel"])
def test_icon_stands_out_on_light_and_dark_panels(
    state: State, size: int, panel: tuple[int, int, int, int]
) -> None:
    """At least 40% of the opaque pixels differ by >= 60 luminance levels from the panel behind them.

    60 levels is about the step between WCAG's 3:1 "large graphic" contrast colours in this range; 40%
    means the whole silhouette reads, not just a few symbol pixels (measured minimum: 0.53, the amber
    triangle at 16 px on near-black, whose dark outline and "!" blend into that panel).
    """
    image = render(state, size)
    seen = _on(image, panel)
    alpha = image.getchannel("A").tobytes()
    opaque = [v for v, a in zip(seen, alpha, strict=True) if a >= 128]
    assert len(opaque) >= size * size * 0.35, "glyph too small to read"
    standing_out = sum(abs(v - panel[0]) >= 60 for v in opaque) / len(opaque)
    assert standing_out >= 0.4, f"{state} at {size}px fades into the panel ({standing_out:.2f})"


def test_states_have_stable_string_values() -> None:
    """The tray and the file names use these values; renaming one breaks the committed assets."""
    assert [s.value for s in State] == [
        "not-configured",
        "up-to-date",
        "changes-pending",
        "syncing",
        "retrying",
        "failed",
        "paused",
    ]


def test_importing_icons_needs_pillow_only() -> None:
    """The headless CLI may import the icons: no pystray, plyer or tkinter gets pulled in."""
    code = (
        "import sys, app.ui.icons; "
        "bad = [m for m in ('pystray', 'plyer', 'tkinter', '_tkinter') if m in sys.modules]; "
        "print(*bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_write_command_regenerates_into_a_folder(tmp_path: Path) -> None:
    out = tmp_path / "icons"
    assert icons.main(["--write", str(out)]) == 0
    assert len(list(out.iterdir())) == len(State) * (len(PNG_SIZES) + 1) + 1  # and the macOS app icon
    assert icons.main([]) == 2


def test_the_app_icon_is_one_of_the_drawn_states() -> None:
    """Launchers, the login entry and the installed builds show the "up to date" icon, a file that exists."""
    assert State(assets.APP_ICON) is State.UP_TO_DATE and assets.APP_ICON_SIZE in PNG_SIZES
    assert assets.app_icon_png() == icons.png_path(assets.icon_dir(), State.UP_TO_DATE, assets.APP_ICON_SIZE)
    assert assets.app_icon_png().is_file()


def test_the_readme_shows_the_committed_icons() -> None:
    """Every icon picture the README links to is a committed file (the links moved with the icons once)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", readme)
    icon_links = [link for link in links if "icons/" in link]
    assert len(icon_links) == len(State), icon_links
    assert all((ROOT / link).is_file() for link in icon_links), icon_links
