"""Finding and loading a font that can draw Chinese, for posters.

A poster rendered with a Latin-only font shows every Chinese character as the font's "missing glyph"
box (tofu), and nothing fails: so a font is only accepted after it has actually drawn a probe string
with real glyphs. The order is: the configured file (``SCRM_POSTER_FONT``), then known system
locations, then ``fc-match``. Loaded ``FreeTypeFont`` objects are cached per (path, size, face index).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Final

from PIL import Image, ImageDraw, ImageFont

_LOGGER = logging.getLogger(__name__)

PROBE_TEXT: Final = "导购海报"
# A private-use code point no font maps, so it always draws the font's missing glyph (.notdef).
_MISSING_CODEPOINT: Final = "\U0010fffd"
_PROBE_SIZE: Final = 32
_FC_MATCH_TIMEOUT_S: Final = 5.0
# BASIC layout: CJK and Latin need no shaping, and it is the same on every machine (raqm may be absent).
_LAYOUT: Final = ImageFont.Layout.BASIC

REGULAR_SEARCH_PATHS: Final[tuple[str, ...]] = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian/Ubuntu fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/droid/DroidSansFallback.ttf",
    "/System/Library/Fonts/PingFang.ttc",  # macOS, for developers' laptops
    "/System/Library/Fonts/STHeiti Medium.ttc",
)
BOLD_SEARCH_PATHS: Final[tuple[str, ...]] = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc",
)
# In a collection (.ttc), the face whose family names one of these draws Simplified Chinese forms.
_SIMPLIFIED_MARKERS: Final = (" SC", " CN", " GB", "Simplified", "PingFang SC")


class FontNotFound(RuntimeError):
    """No usable CJK font; ``message_zh`` is the text to show an admin."""

    def __init__(self, tried: Sequence[str]) -> None:
        self.tried = tuple(tried)
        self.message_zh = "未找到可显示中文的字体：请安装 fonts-noto-cjk，或在 SCRM_POSTER_FONT 中指定字体文件路径"
        listed = ", ".join(self.tried) or "nothing"
        super().__init__(
            "no font with Chinese glyphs found for posters (tried: "
            f"{listed}); install fonts-noto-cjk or set SCRM_POSTER_FONT to a font file"
        )


def find_cjk_font(
    configured: str | None = None,
    *,
    bold: bool = False,
    search_paths: Sequence[str] | None = None,
    use_fc_match: bool = True,
) -> str:
    """Return the path of a font file that really draws Chinese, or raise ``FontNotFound``."""
    tried: list[str] = []
    if configured:
        tried.append(configured)
        if _usable(configured):
            return configured
        # A wrong setting must not take posters down while a system font can stand in; say so loudly.
        _LOGGER.warning("SCRM_POSTER_FONT=%s cannot draw Chinese; searching system fonts", configured)
    if search_paths is None:
        search_paths = (*BOLD_SEARCH_PATHS, *REGULAR_SEARCH_PATHS) if bold else REGULAR_SEARCH_PATHS
    for path in search_paths:
        if os.path.isfile(path):
            tried.append(path)
            if _usable(path):
                return path
    if use_fc_match:
        matched = _fc_match(bold=bold)
        if matched and matched not in tried:
            tried.append(matched)
            if _usable(matched):
                return matched
    raise FontNotFound(tried)


def missing_glyphs(font: ImageFont.FreeTypeFont, text: str) -> str:
    """Return the characters of ``text`` (spaces excepted) that ``font`` draws as its missing glyph."""
    notdef = _glyph_pixels(font, _MISSING_CODEPOINT)
    missing = []
    for ch in dict.fromkeys(text):  # each distinct character once, in order
        if ch.isspace():
            continue
        pixels = _glyph_pixels(font, ch)
        # An empty bitmap for a visible character is as useless as the .notdef box.
        if pixels == notdef or not any(pixels):
            missing.append(ch)
    return "".join(missing)


def has_glyphs(path: str, text: str = PROBE_TEXT) -> bool:
    """Say whether the font file at ``path`` can be opened and has real glyphs for all of ``text``."""
    return _usable(path, text)


@functools.lru_cache(maxsize=64)
def face_index(path: str) -> int:
    """Return the face of a font collection that draws Simplified Chinese (0 for a single-face file)."""
    if not path.lower().endswith((".ttc", ".otc")):
        return 0
    index = 0
    while True:
        try:
            family, _style = ImageFont.truetype(path, _PROBE_SIZE, index=index, layout_engine=_LAYOUT).getname()
        except OSError:
            return 0  # past the last face: no Simplified face is named, the first one will do
        if family and any(marker in family for marker in _SIMPLIFIED_MARKERS):
            return index
        index += 1


# Fonts are shared by every render thread. An FT_Face is not thread-safe, but Pillow calls FreeType
# with the GIL held, so this is safe on the regular (GIL) interpreter; free-threaded builds need a
# Pillow that locks each face (python-pillow/Pillow#9497).
@functools.lru_cache(maxsize=128)
def load_font(path: str, size: int, index: int | None = None) -> ImageFont.FreeTypeFont:
    """Return the font at ``path`` in ``size`` px (the Simplified face of a collection unless ``index``)."""
    return ImageFont.truetype(
        path, size, index=face_index(path) if index is None else index, layout_engine=_LAYOUT
    )


@functools.lru_cache(maxsize=8192)
def has_glyph(path: str, ch: str) -> bool:
    """Say whether the font at ``path`` draws ``ch`` with a real glyph (emoji in a nickname often not)."""
    return ch.isspace() or not missing_glyphs(load_font(path, _PROBE_SIZE), ch)


def clear_font_cache() -> None:
    """Forget every loaded font and probe result (benchmarks and tests measure a cold start with it)."""
    load_font.cache_clear()
    face_index.cache_clear()
    has_glyph.cache_clear()
    _usable.cache_clear()


@functools.lru_cache(maxsize=64)
def _usable(path: str, text: str = PROBE_TEXT) -> bool:
    try:
        font = load_font(path, _PROBE_SIZE)
    except (OSError, ValueError):
        return False
    return not missing_glyphs(font, text)


def _glyph_pixels(font: ImageFont.FreeTypeFont, ch: str) -> bytes:
    size = int(font.size)
    image = Image.new("L", (size * 2, size * 2))
    ImageDraw.Draw(image).text((size // 2, size // 2), ch, font=font, fill=255)
    return image.tobytes()


def _fc_match(*, bold: bool) -> str | None:
    if shutil.which("fc-match") is None:
        return None
    pattern = "sans-serif:lang=zh-cn" + (":weight=bold" if bold else "")
    try:
        result = subprocess.run(
            ["fc-match", "-f", "%{file}", pattern],
            capture_output=True, text=True, timeout=_FC_MATCH_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    path = result.stdout.strip()
    return path if result.returncode == 0 and path and os.path.isfile(path) else None
