"""QR posters a guide shares: a template (parsed and validated once) and a pure renderer returning bytes.

``render_poster`` does no I/O beyond reading the font file, keeps no state but caches of immutable
things (fonts, masks), and is CPU-bound: the service calls ``render_poster_async``, which runs it in
an executor so the event loop keeps serving. Coordinates are canvas pixels; a text box's ``y`` is the
top of its first line's em box, so CJK glyphs sit inside ``y .. y + font_size``.
"""

from __future__ import annotations

import asyncio
import functools
import io
import math
import re
import unicodedata
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Final, Literal

import qrcode
import qrcode.constants
from PIL import (
    Image,
    ImageChops,
    ImageDraw,
    ImageFont,
    ImageOps,
    UnidentifiedImageError,
)
from qrcode.exceptions import DataOverflowError

from sharing.fonts import has_glyph, load_font

PosterFormat = Literal["PNG", "JPEG"]
Align = Literal["left", "center", "right"]
Rgb = tuple[int, int, int]

MIN_CANVAS: Final = 200
MAX_CANVAS: Final = 3000
MIN_FONT_SIZE: Final = 8
MAX_FONT_SIZE: Final = 200
MIN_QR_SIZE: Final = 120
MIN_AVATAR_SIZE: Final = 24
MAX_TEXT_LINES: Final = 10
MAX_QR_DATA: Final = 1000
MAX_TEXT_LENGTH: Final = 500
# Uploaded pictures above this are refused before decoding: 25 MP is a 6000x4000 photo, ~100 MB in RGBA.
MAX_INPUT_PIXELS: Final = 25_000_000
CONTENT_TYPES: Final[dict[str, str]] = {"PNG": "image/png", "JPEG": "image/jpeg"}
JPEG_QUALITY: Final = 88
# zlib's run-length strategy suits flat-colour posters: on the default poster it encodes in about half
# the time of the default strategy (35 vs 65 ms) for a file ~7 % larger (74 vs 69 KiB), while
# optimize=True takes ~300 ms to save another 3 %. bench/posters.py prints the trade-off again.
PNG_COMPRESS_LEVEL: Final = 6
ELLIPSIS: Final = "…"
# With the baseline at 0.88 em below a line's top, ideographs (which fill roughly -0.88..+0.12 em
# around the baseline in CJK fonts) land inside the em box that starts at the line's top.
_BASELINE: Final = 0.88
_QR_BORDER_MODULES: Final = 4  # the quiet zone the QR standard asks for
_MIN_QR_MODULE_PX: Final = 2
_QR_THRESHOLD: Final = 128  # grey level below which a pixel of a QR picture counts as a dark module
# A finder pattern, one byte per module (255 = dark): a 7x7 dark ring, a light ring, a dark 3x3 centre.
_FINDER: Final = bytes(255 if max(abs(r - 3), abs(c - 3)) != 2 else 0 for r in range(7) for c in range(7))
_QR_MIN_CONTRAST: Final = 3.0  # WCAG contrast ratio; below it phone cameras start to miss codes
_SUPERSAMPLE: Final = 4  # masks for round corners and circles are drawn 4x and box-averaged down
_COLOR_RE: Final = re.compile(r"#[0-9A-Fa-f]{6}")

# Line breaking: CJK breaks between any two characters, a run of Latin letters and digits is kept
# whole where it fits, closing punctuation never starts a line and opening punctuation never ends one.
_TOKEN_RE: Final = re.compile(r"[0-9A-Za-z\u00c0-\u024f'’._%@&+#/:\-]+|\s+|.", re.DOTALL)
_NO_LINE_START: Final = frozenset("，。、！？；：）》」』】〕〉”’…·,.!?;:)]}%～—々ー")
_NO_LINE_END: Final = frozenset("（《「『【〔〈“‘([{¥￥$")
_TRAILING_PUNCTUATION: Final = "，、；：,;: "


class InvalidTemplate(ValueError):
    """A poster template that cannot be used; ``field`` is the dotted path of the offending key."""

    def __init__(self, message_zh: str, field: str) -> None:
        self.message_zh = message_zh
        self.field = field
        super().__init__(f"{field}：{message_zh}" if field else message_zh)


@dataclass(frozen=True)
class CardBox:
    """A filled rectangle, optionally with round corners, drawn under everything else."""

    x: int
    y: int
    width: int
    height: int
    color: str
    radius: int = 0


@dataclass(frozen=True)
class QrBox:
    """Where the QR code goes: a square whose side includes the quiet zone."""

    x: int
    y: int
    size: int
    color: str = "#000000"
    background: str = "#FFFFFF"


@dataclass(frozen=True)
class AvatarBox:
    """The guide's picture, square or circle-cropped; a lettered circle stands in when there is none."""

    x: int
    y: int
    size: int
    round: bool = True
    placeholder_color: str = "#E5E7EB"


@dataclass(frozen=True)
class TextBox:
    """A block of text wrapped to ``max_width`` and cut with an ellipsis after ``max_lines``."""

    x: int
    y: int
    font_size: int
    color: str
    max_width: int
    max_lines: int = 1
    line_height: float = 1.3
    align: Align = "left"
    bold: bool = False
    text: str | None = None  # fixed text (caption) or a pattern with {name} (name); None for title/subtitle

    @property
    def height(self) -> int:
        """The block's height when all its lines are used."""
        return math.ceil(self.font_size * (self.line_height * (self.max_lines - 1) + 1))


@dataclass(frozen=True)
class PosterTemplate:
    """A validated poster layout; build one with ``parse_template``."""

    width: int
    height: int
    background: str
    qr: QrBox
    card: CardBox | None = None
    avatar: AvatarBox | None = None
    name: TextBox | None = None
    title: TextBox | None = None
    subtitle: TextBox | None = None
    caption: TextBox | None = None


DEFAULT_TEMPLATE: Final[dict[str, Any]] = {
    "size": {"width": 750, "height": 1334},
    "background": "#C8372D",
    "card": {"x": 40, "y": 230, "width": 670, "height": 1044, "color": "#FFF9F2", "radius": 28},
    "avatar": {"x": 64, "y": 84, "size": 104, "round": True, "placeholder_color": "#F3B7A9"},
    "name": {"x": 192, "y": 104, "font_size": 34, "color": "#FFFFFF", "max_width": 494, "bold": True,
             "text": "导购 · {name}"},
    "title": {"x": 88, "y": 296, "font_size": 50, "color": "#1F2329", "max_width": 574, "max_lines": 2,
              "line_height": 1.32, "bold": True},
    "subtitle": {"x": 88, "y": 452, "font_size": 30, "color": "#646A73", "max_width": 574, "max_lines": 3,
                 "line_height": 1.5},
    "qr": {"x": 185, "y": 668, "size": 380, "color": "#111111", "background": "#FFFFFF"},
    "caption": {"x": 88, "y": 1092, "font_size": 30, "color": "#8F959E", "max_width": 574, "max_lines": 2,
                "line_height": 1.6, "align": "center", "text": "长按识别二维码\n添加导购，享专属服务"},
}


# -- parsing -----------------------------------------------------------------------------------


def parse_template(raw: Mapping[str, Any]) -> PosterTemplate:
    """Validate a template dict (as stored or sent by an admin) into a ``PosterTemplate``."""
    fields = _Fields(raw, "")
    size = _Fields(fields.required("size"), "size")
    width = size.integer("width", MIN_CANVAS, MAX_CANVAS)
    height = size.integer("height", MIN_CANVAS, MAX_CANVAS)
    size.done()
    canvas = (width, height)
    background = fields.color("background")

    qr_fields = _Fields(fields.required("qr"), "qr")
    qr = QrBox(
        x=qr_fields.integer("x", 0, width),
        y=qr_fields.integer("y", 0, height),
        size=qr_fields.integer("size", MIN_QR_SIZE, min(width, height)),
        color=qr_fields.color("color", "#000000"),
        background=qr_fields.color("background", "#FFFFFF"),
    )
    qr_fields.done()
    _check_inside("qr", qr.x, qr.y, qr.size, qr.size, canvas)
    if not _darker_enough(qr.color, qr.background):
        raise InvalidTemplate("二维码颜色需明显深于二维码底色，否则手机扫不出来", "qr.color")

    card = None
    if (raw_card := fields.optional("card")) is not None:
        card_fields = _Fields(raw_card, "card")
        card = CardBox(
            x=card_fields.integer("x", 0, width),
            y=card_fields.integer("y", 0, height),
            width=card_fields.integer("width", 1, width),
            height=card_fields.integer("height", 1, height),
            color=card_fields.color("color"),
            radius=card_fields.integer("radius", 0, min(width, height) // 2, default=0),
        )
        card_fields.done()
        _check_inside("card", card.x, card.y, card.width, card.height, canvas)
        if card.radius * 2 > min(card.width, card.height):
            raise InvalidTemplate("圆角半径不能超过卡片短边的一半", "card.radius")

    avatar = None
    if (raw_avatar := fields.optional("avatar")) is not None:
        avatar_fields = _Fields(raw_avatar, "avatar")
        avatar = AvatarBox(
            x=avatar_fields.integer("x", 0, width),
            y=avatar_fields.integer("y", 0, height),
            size=avatar_fields.integer("size", MIN_AVATAR_SIZE, min(width, height)),
            round=avatar_fields.boolean("round", True),
            placeholder_color=avatar_fields.color("placeholder_color", "#E5E7EB"),
        )
        avatar_fields.done()
        _check_inside("avatar", avatar.x, avatar.y, avatar.size, avatar.size, canvas)
        _check_clear_of_qr("avatar", (avatar.x, avatar.y, avatar.size, avatar.size), qr)

    texts: dict[str, TextBox | None] = {}
    for key, default_lines, text_rule in (
        ("name", 1, "pattern"), ("title", 2, "none"), ("subtitle", 2, "none"), ("caption", 1, "fixed"),
    ):
        raw_box = fields.optional(key)
        texts[key] = None if raw_box is None else _parse_text_box(raw_box, key, default_lines, text_rule, canvas, qr)
    fields.done()

    return PosterTemplate(
        width=width, height=height, background=background, qr=qr, card=card, avatar=avatar,
        name=texts["name"], title=texts["title"], subtitle=texts["subtitle"], caption=texts["caption"],
    )


def _parse_text_box(
    raw: Any, key: str, default_lines: int, text_rule: str, canvas: tuple[int, int], qr: QrBox
) -> TextBox:
    width, height = canvas
    fields = _Fields(raw, key)
    font_size = fields.integer("font_size", MIN_FONT_SIZE, MAX_FONT_SIZE)
    # The name is a one-liner by nature; the others may take a few lines.
    max_lines = fields.integer("max_lines", 1, 1 if key == "name" else MAX_TEXT_LINES, default=default_lines)
    text: str | None = None
    if text_rule == "pattern":
        text = fields.text("text", "{name}")
        if "{name}" not in text:
            raise InvalidTemplate("必须包含 {name}，用来填入导购姓名", f"{key}.text")
    elif text_rule == "fixed":
        text = fields.text("text")
        if not text.strip():
            raise InvalidTemplate("文字不能为空", f"{key}.text")
    align = fields.text("align", "left")
    if align not in ("left", "center", "right"):
        raise InvalidTemplate("对齐方式必须是 left、center 或 right", f"{key}.align")
    box = TextBox(
        x=fields.integer("x", 0, width),
        y=fields.integer("y", 0, height),
        font_size=font_size,
        color=fields.color("color"),
        max_width=fields.integer("max_width", font_size, width),
        max_lines=max_lines,
        line_height=fields.number("line_height", 1.0, 3.0, default=1.3),
        align=align,  # type: ignore[arg-type]  # checked just above
        bold=fields.boolean("bold", False),
        text=text,
    )
    fields.done()
    _check_inside(key, box.x, box.y, box.max_width, box.height, canvas)
    _check_clear_of_qr(key, (box.x, box.y, box.max_width, box.height), qr)
    return box


class _Fields:
    """Reads typed values out of one mapping, naming the dotted field in every error."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise InvalidTemplate("必须是一个对象（键值对）", path or "模板")
        self._raw = raw
        self._path = path
        self._seen: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def optional(self, key: str) -> Any:
        self._seen.add(key)
        return self._raw.get(key)

    def required(self, key: str) -> Any:
        value = self.optional(key)
        if value is None:
            raise InvalidTemplate("缺少必填项", self._name(key))
        return value

    def integer(self, key: str, low: int, high: int, *, default: int | None = None) -> int:
        value = self.optional(key)
        if value is None:
            if default is None:
                raise InvalidTemplate("缺少必填项", self._name(key))
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON editors write 750.0 at times
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidTemplate("必须是整数（像素）", self._name(key))
        if not low <= value <= high:
            raise InvalidTemplate(f"必须在 {low} 到 {high} 之间，当前为 {value}", self._name(key))
        return value

    def number(self, key: str, low: float, high: float, *, default: float) -> float:
        value = self.optional(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidTemplate("必须是数字", self._name(key))
        if not low <= value <= high:
            raise InvalidTemplate(f"必须在 {low:g} 到 {high:g} 之间，当前为 {value:g}", self._name(key))
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.optional(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidTemplate("必须是 true 或 false", self._name(key))
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self.optional(key)
        if value is None:
            if default is None:
                raise InvalidTemplate("缺少必填项", self._name(key))
            return default
        if not isinstance(value, str):
            raise InvalidTemplate("必须是文字", self._name(key))
        if len(value) > MAX_TEXT_LENGTH:
            raise InvalidTemplate(f"不能超过 {MAX_TEXT_LENGTH} 个字", self._name(key))
        return value

    def color(self, key: str, default: str | None = None) -> str:
        value = self.text(key, default)
        if not _COLOR_RE.fullmatch(value):
            raise InvalidTemplate(f"颜色必须是 #RRGGBB 格式（例如 #1F2329），当前为 {value!r}", self._name(key))
        return value.upper()

    def done(self) -> None:
        unknown = sorted(str(k) for k in self._raw if k not in self._seen)
        if unknown:
            raise InvalidTemplate(f"不认识的字段：{'、'.join(unknown)}", self._name(unknown[0]))


def _check_inside(key: str, x: int, y: int, w: int, h: int, canvas: tuple[int, int]) -> None:
    width, height = canvas
    if x + w > width or y + h > height:
        raise InvalidTemplate(
            f"超出画布范围：区域为 ({x}, {y}) 起 {w}×{h}，画布为 {width}×{height}", key
        )


def _check_clear_of_qr(key: str, box: tuple[int, int, int, int], qr: QrBox) -> None:
    x, y, w, h = box
    if x < qr.x + qr.size and qr.x < x + w and y < qr.y + qr.size and qr.y < y + h:
        raise InvalidTemplate("与二维码区域重叠，会导致二维码无法识别", key)


def _rgb(color: str) -> Rgb:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _luminance(color: str) -> float:
    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in _rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _darker_enough(dark: str, light: str) -> bool:
    dark_l, light_l = _luminance(dark), _luminance(light)
    return dark_l < light_l and (light_l + 0.05) / (dark_l + 0.05) >= _QR_MIN_CONTRAST


# -- text layout -------------------------------------------------------------------------------


def wrap_text(text: str, measure: Callable[[str], float], max_width: float, max_lines: int) -> list[str]:
    """Break ``text`` into at most ``max_lines`` lines no wider than ``max_width``, with … if cut."""
    lines: list[str] = []
    for paragraph in text.strip().split("\n"):
        lines.extend(_wrap_paragraph(paragraph.strip(), measure, max_width, max_lines + 1 - len(lines)) or [""])
        if len(lines) > max_lines:
            break
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1].rstrip()
    while last and measure(last + ELLIPSIS) > max_width:
        last = last[:-1].rstrip()
    return [*lines[: max_lines - 1], last.rstrip(_TRAILING_PUNCTUATION) + ELLIPSIS]


def _tokens(paragraph: str) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(paragraph):
        token = match.group()
        if token.isspace():
            tokens.append(" ")
        elif tokens and tokens[-1] != " " and (token[0] in _NO_LINE_START or tokens[-1][-1] in _NO_LINE_END):
            tokens[-1] += token
        else:
            tokens.append(token)
    return tokens


def _wrap_paragraph(paragraph: str, measure: Callable[[str], float], max_width: float, limit: int) -> list[str]:
    widths: dict[str, float] = {}

    def width(token: str) -> float:
        if token not in widths:
            widths[token] = measure(token)
        return widths[token]

    # Measuring each token once and adding up is several times cheaper than re-measuring the growing
    # line (FreeType loads every glyph again per call); kerning across a token boundary could make the
    # sum a pixel short, so the finished lines are measured for real and, rarely, wrapped exactly.
    tokens = _tokens(paragraph)
    lines = _greedy_lines(tokens, width, max_width, limit, summed=True)
    if all(measure(line) <= max_width for line in lines):
        return lines
    return _greedy_lines(tokens, measure, max_width, limit, summed=False)


def _greedy_lines(
    tokens: list[str],
    width: Callable[[str], float],
    max_width: float,
    limit: int,
    *,
    summed: bool,
) -> list[str]:
    """Fill lines greedily; a line's width is the sum of its pieces' when ``summed``, else measured whole."""
    lines: list[str] = []
    line, line_width = "", 0.0

    def fits(piece: str) -> tuple[bool, float]:
        new_width = line_width + width(piece) if summed else width(line + piece)
        return new_width <= max_width, new_width

    for token in tokens:
        if len(lines) >= limit:
            return lines  # the caller only needs to know that more text follows
        if token == " " and not line:
            continue  # no line starts with a space
        ok, new_width = fits(token)
        if ok:
            line, line_width = line + token, new_width
            continue
        if line.strip():
            lines.append(line.rstrip())
        line, line_width = "", 0.0
        if token == " ":
            continue
        ok, new_width = fits(token)
        if ok:
            line, line_width = token, new_width
            continue
        for ch in token:  # wider than a whole line on its own (a long URL or number): break anywhere
            ok, new_width = fits(ch)
            if line and not ok:
                lines.append(line)
                line, line_width = "", 0.0
                ok, new_width = fits(ch)
            line, line_width = line + ch, new_width
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _clean_text(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what}必须是文字")
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"{what}不能超过 {MAX_TEXT_LENGTH} 个字")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Control and format characters (zero-width joiners, bidi marks) have no glyph and only confuse layout.
    return "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf"))


# -- rendering ---------------------------------------------------------------------------------


def render_poster(
    template: PosterTemplate,
    *,
    qr_data: str | None = None,
    qr_image: bytes | None = None,
    guide_name: str,
    title: str,
    subtitle: str = "",
    avatar: bytes | None = None,
    background: bytes | None = None,
    fmt: PosterFormat = "PNG",
    font_path: str,
    bold_font_path: str | None = None,
) -> bytes:
    """Render a poster to PNG or JPEG bytes; a pure function, to be run off the event loop.

    The QR area holds a code made from ``qr_data`` (a link), or ``qr_image``, a QR code picture made
    elsewhere (WeCom's 「联系我」 code), redrawn crisp in the template's colours; give exactly one.
    """
    if not isinstance(template, PosterTemplate):
        raise TypeError("template must be a PosterTemplate; build it with parse_template")
    image_format = _image_format(fmt)
    if (qr_data is None) == (qr_image is None):
        raise TypeError("give exactly one of qr_data and qr_image")
    if qr_data is not None:
        if not isinstance(qr_data, str) or not qr_data.strip():
            raise ValueError("二维码内容不能为空")
        if len(qr_data) > MAX_QR_DATA:
            raise ValueError(f"二维码内容不能超过 {MAX_QR_DATA} 个字符")
    guide_name = _clean_text(guide_name, "导购姓名").strip()
    title = _clean_text(title, "标题")
    subtitle = _clean_text(subtitle, "副标题")
    if template.name is not None and not guide_name:
        raise ValueError("导购姓名不能为空")
    if template.title is not None and not title.strip():
        raise ValueError("标题不能为空")

    fonts = _Fonts(font_path, bold_font_path or font_path)
    canvas = _canvas(template, background)
    draw = ImageDraw.Draw(canvas)
    if template.card is not None:
        _draw_card(canvas, draw, template.card)
    if qr_data is not None:
        qr = _qr_image(qr_data, template.qr)
    else:
        assert qr_image is not None  # exactly one was given, checked above
        qr = _qr_from_picture(qr_image, template.qr)
    canvas.paste(qr, (template.qr.x, template.qr.y))
    if template.avatar is not None:
        _draw_avatar(canvas, template.avatar, avatar, guide_name, font_path)

    if template.name is not None and template.name.text is not None:
        _draw_text(draw, template.name, template.name.text.replace("{name}", guide_name), fonts)
    if template.title is not None:
        _draw_text(draw, template.title, title, fonts)
    if template.subtitle is not None and subtitle.strip():
        _draw_text(draw, template.subtitle, subtitle, fonts)
    if template.caption is not None and template.caption.text is not None:
        _draw_text(draw, template.caption, template.caption.text, fonts)

    out = io.BytesIO()
    if image_format == "JPEG":
        # 4:4:4 keeps coloured text and QR edges sharp; 4:2:0 smears red text on light cards.
        canvas.save(out, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    else:
        canvas.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL, compress_type=zlib.Z_RLE)
    return out.getvalue()


async def render_poster_async(
    template: PosterTemplate,
    *,
    qr_data: str | None = None,
    qr_image: bytes | None = None,
    guide_name: str,
    title: str,
    subtitle: str = "",
    avatar: bytes | None = None,
    background: bytes | None = None,
    fmt: PosterFormat = "PNG",
    font_path: str,
    bold_font_path: str | None = None,
    executor: Executor | None = None,
) -> bytes:
    """Run ``render_poster`` in ``executor`` (the loop's default when None) and return its bytes."""
    call = functools.partial(
        render_poster, template, qr_data=qr_data, qr_image=qr_image, guide_name=guide_name, title=title,
        subtitle=subtitle, avatar=avatar, background=background, fmt=fmt, font_path=font_path,
        bold_font_path=bold_font_path,
    )
    return await asyncio.get_running_loop().run_in_executor(executor, call)


def _image_format(fmt: str) -> PosterFormat:
    normalised = str(fmt).upper()
    if normalised == "JPG":
        normalised = "JPEG"
    if normalised not in CONTENT_TYPES:
        raise ValueError(f"海报格式必须是 PNG 或 JPEG，当前为 {fmt!r}")
    return normalised  # type: ignore[return-value]  # one of the two, checked above


class _Fonts:
    """The regular and bold font at each size a render asks for."""

    def __init__(self, regular: str, bold: str) -> None:
        for path in dict.fromkeys((regular, bold)):
            try:
                load_font(path, MIN_FONT_SIZE)  # fail here, before any drawing, on a wrong path
            except OSError as exc:
                raise ValueError(f"cannot open font file {path!r}: {exc}") from exc
        self.regular = regular
        self.bold = bold

    def path(self, box: TextBox) -> str:
        return self.bold if box.bold else self.regular

    def get(self, box: TextBox) -> ImageFont.FreeTypeFont:
        return load_font(self.path(box), box.font_size)


def _draw_text(draw: ImageDraw.ImageDraw, box: TextBox, text: str, fonts: _Fonts) -> None:
    font = fonts.get(box)
    path = fonts.path(box)
    # Characters the font lacks (emoji in a WeChat nickname, mostly) would draw as tofu boxes: drop them.
    text = "".join(ch for ch in text if has_glyph(path, ch))
    lines = wrap_text(text, font.getlength, box.max_width, box.max_lines)
    fill = _rgb(box.color)
    top = box.y + round(box.font_size * _BASELINE)
    for number, line in enumerate(lines):
        x: float = box.x
        if box.align != "left":
            spare = box.max_width - font.getlength(line)
            x += spare / 2 if box.align == "center" else spare
        draw.text((round(x), top + round(number * box.font_size * box.line_height)), line,
                  font=font, fill=fill, anchor="ls")


def _open_image(data: bytes, what: str) -> Image.Image:
    if not isinstance(data, (bytes, bytearray, memoryview)) or not data:
        raise ValueError(f"{what}为空")
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{what}不是可识别的图片") from exc
    if image.width * image.height > MAX_INPUT_PIXELS:
        raise ValueError(f"{what}太大（{image.width}×{image.height}），请压缩到 2500 万像素以内")
    return image


def _load(image: Image.Image, what: str) -> Image.Image:
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data surfaces on load
        raise ValueError(f"{what}已损坏，无法读取") from exc
    # Transparent pixels are composited over the caller's backdrop, not turned black.
    return image.convert("RGBA") if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info \
        else image.convert("RGB")


def _canvas(template: PosterTemplate, background: bytes | None) -> Image.Image:
    size = (template.width, template.height)
    canvas = Image.new("RGB", size, _rgb(template.background))
    if background is None:
        return canvas
    image = _open_image(background, "背景图")
    # JPEG can decode at 1/2, 1/4 or 1/8 scale: a 12 MP photo then decodes in a fraction of the time.
    # Ask for the long side both ways so an EXIF rotation still leaves enough pixels to cover.
    side = max(size)
    image.draft("RGB", (side, side))
    image = ImageOps.fit(_load(image, "背景图"), size, Image.Resampling.LANCZOS)
    if image.mode == "RGBA":
        canvas.paste(image, (0, 0), image)
    else:
        canvas.paste(image, (0, 0))
    return canvas


def _qr_image(data: str, box: QrBox) -> Image.Image:
    # Q survives a scuffed print or a logo sticker; M only when Q would make modules too small.
    for level in (qrcode.constants.ERROR_CORRECT_Q, qrcode.constants.ERROR_CORRECT_M):
        code = qrcode.QRCode(error_correction=level, box_size=1, border=_QR_BORDER_MODULES)
        code.add_data(data)
        try:
            code.make(fit=True)
        except DataOverflowError:  # more than a version 40 code holds
            continue
        matrix = code.get_matrix()
        modules = len(matrix)
        module_px = box.size // modules
        if module_px >= _MIN_QR_MODULE_PX:
            break
    else:
        raise ValueError(f"二维码内容太长，放不进 {box.size} 像素的二维码区域")
    mask = Image.frombytes("L", (modules, modules), bytes(255 if cell else 0 for row in matrix for cell in row))
    return _paint_modules(mask, module_px, box)


def _paint_modules(mask: Image.Image, module_px: int, box: QrBox) -> Image.Image:
    """The QR box with ``mask`` (one pixel per module, 255 = dark, quiet zone included) in the box's colours."""
    # Whole pixels per module keep every module the same width (crisp edges, reliable decoding);
    # the few leftover pixels become extra quiet zone around the code.
    mask = mask.resize((mask.width * module_px, mask.height * module_px), Image.Resampling.NEAREST)
    image = Image.new("RGB", (box.size, box.size), _rgb(box.background))
    offset = (box.size - mask.width) // 2
    image.paste(_rgb(box.color), (offset, offset, offset + mask.width, offset + mask.height), mask)
    return image


def _qr_from_picture(data: bytes, box: QrBox) -> Image.Image:
    """A QR code picture made elsewhere (WeCom's contact-way code), redrawn into the box.

    The picture is thresholded and cropped to the code; the module grid is read off the top-left finder
    pattern (7 modules wide) and each module sampled at its centre, then drawn like our own codes: whole
    pixels per module, a 4-module quiet zone, the template's colours. A picture whose grid cannot be read
    (not a plain QR code) is scaled nearest-neighbour into the box instead, which keeps its edges hard.
    """
    picture = _load(_open_image(data, "二维码图片"), "二维码图片")
    if picture.mode == "RGBA":  # a transparent backdrop is white paper to a scanner
        flat = Image.new("RGBA", picture.size, (255, 255, 255, 255))
        picture = Image.alpha_composite(flat, picture)
    dark = picture.convert("L").point(lambda v: 255 if v < _QR_THRESHOLD else 0)
    bbox = dark.getbbox()
    if bbox is None:
        raise ValueError("二维码图片里没有二维码")
    code = dark.crop(bbox)
    grid = _sample_grid(code)
    if grid is not None and (module_px := box.size // (grid.width + 2 * _QR_BORDER_MODULES)) >= _MIN_QR_MODULE_PX:
        return _paint_modules(ImageOps.expand(grid, _QR_BORDER_MODULES, fill=0), module_px, box)
    # Unknown grid: keep the picture's proportions, with a quiet zone of 4 modules even for the smallest code.
    inner = box.size * 21 // (21 + 2 * _QR_BORDER_MODULES)
    scale = inner / max(code.size)
    if scale * min(code.size) < 1:
        raise ValueError("二维码图片的比例不对，无法放进二维码区域")
    mask = code.resize((max(1, round(code.width * scale)), max(1, round(code.height * scale))),
                       Image.Resampling.NEAREST)
    image = Image.new("RGB", (box.size, box.size), _rgb(box.background))
    x, y = (box.size - mask.width) // 2, (box.size - mask.height) // 2
    image.paste(_rgb(box.color), (x, y, x + mask.width, y + mask.height), mask)
    return image


def _sample_grid(code: Image.Image) -> Image.Image | None:
    """One pixel per module (255 = dark) of a QR code cropped to its dark extent, or None if it is not one."""
    width, height = code.size
    if abs(width - height) > max(2, width // 50):
        return None
    pixels = code.load()
    assert pixels is not None
    # The top edge of the top-left finder pattern is a run of 7 dark modules, then a light separator.
    run = 0
    while run < width and pixels[run, 0]:
        run += 1
    if run >= width:
        return None
    # Versions 1-40 have 21, 25, ..., 177 modules per side: snap the estimate to the nearest of them.
    modules = 17 + 4 * round((width * 7 / run - 17) / 4)
    if not 21 <= modules <= 177:
        return None
    step_x, step_y = width / modules, height / modules
    cells = bytes(pixels[int((c + 0.5) * step_x), int((r + 0.5) * step_y)]
                  for r in range(modules) for c in range(modules))
    grid = Image.frombytes("L", (modules, modules), cells)
    # A wrong grid would scramble the code: all three finder patterns must come out exactly.
    for x, y in ((0, 0), (modules - 7, 0), (0, modules - 7)):
        if grid.crop((x, y, x + 7, y + 7)).tobytes() != _FINDER:
            return None
    return grid


def _draw_avatar(canvas: Image.Image, box: AvatarBox, data: bytes | None, guide_name: str, font_path: str) -> None:
    if data is None:
        picture = Image.new("RGBA", (box.size, box.size), (*_rgb(box.placeholder_color), 255))
        initial = next((ch for ch in guide_name if not ch.isspace() and has_glyph(font_path, ch)), "")
        if initial:
            font = load_font(font_path, max(MIN_FONT_SIZE, box.size * 9 // 20))
            ImageDraw.Draw(picture).text((box.size / 2, box.size / 2), initial.upper(), font=font,
                                         fill=(255, 255, 255, 255), anchor="mm")
    else:
        image = _open_image(data, "头像")
        image.draft("RGB", (box.size, box.size))
        picture = ImageOps.fit(_load(image, "头像"), (box.size, box.size), Image.Resampling.LANCZOS)
        picture = picture.convert("RGBA")
    alpha = picture.getchannel("A")
    if box.round:
        alpha = ImageChops.multiply(alpha, _circle_mask(box.size))
    canvas.paste(picture.convert("RGB"), (box.x, box.y), alpha)


@functools.lru_cache(maxsize=32)
def _circle_mask(size: int) -> Image.Image:
    big = Image.new("L", (size * _SUPERSAMPLE, size * _SUPERSAMPLE), 0)
    ImageDraw.Draw(big).ellipse((0, 0, big.width - 1, big.height - 1), fill=255)
    return big.reduce(_SUPERSAMPLE)


def _draw_card(canvas: Image.Image, draw: ImageDraw.ImageDraw, card: CardBox) -> None:
    # A plain fill plus four anti-aliased corners: pasting through a full-size mask costs ~10 ms.
    r = card.radius
    corners = ((card.x, card.y), (card.x + card.width - r, card.y),
               (card.x, card.y + card.height - r), (card.x + card.width - r, card.y + card.height - r))
    behind = [canvas.crop((x, y, x + r, y + r)) for x, y in corners] if r else []
    draw.rectangle((card.x, card.y, card.x + card.width - 1, card.y + card.height - 1), fill=_rgb(card.color))
    if r == 0:
        return
    for (x, y), patch, outside in zip(corners, behind, _corner_masks(r), strict=True):
        canvas.paste(patch, (x, y), outside)  # what was there shows through outside the quarter circle


@functools.lru_cache(maxsize=16)
def _corner_masks(radius: int) -> tuple[Image.Image, ...]:
    """Masks of the part of each corner square (top-left, top-right, bottom-left, bottom-right) off the card."""
    big = Image.new("L", (radius * _SUPERSAMPLE, radius * _SUPERSAMPLE), 255)
    ImageDraw.Draw(big).pieslice((0, 0, big.width * 2 - 1, big.height * 2 - 1), 180, 270, fill=0)
    top_left = big.reduce(_SUPERSAMPLE)
    return (top_left, top_left.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            top_left.transpose(Image.Transpose.FLIP_TOP_BOTTOM), top_left.transpose(Image.Transpose.ROTATE_180))
