"""QR posters: template validation, the pure renderer (decoded back with Pillow and zxing-cpp), line
wrapping, CJK font discovery and the in-memory poster cache."""

from __future__ import annotations

import asyncio
import copy
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import zxingcpp
from PIL import Image, ImageChops, ImageDraw

from sharing.fonts import (
    FontNotFound,
    find_cjk_font,
    has_glyph,
    has_glyphs,
    load_font,
    missing_glyphs,
)
from sharing.poster_cache import PosterCache, PosterKey
from sharing.posters import (
    DEFAULT_TEMPLATE,
    ELLIPSIS,
    InvalidTemplate,
    PosterTemplate,
    parse_template,
    render_poster,
    render_poster_async,
    wrap_text,
)

LINK = "https://scrm.example.com/s/Ab3dE9xQ?g=1024&item=SKU-88&utm_source=poster"
TITLE = "春季新品上市：有机纯牛奶 250ml×24 盒，限时 8 折，会员再享积分翻倍！"
SUBTITLE = "添加导购企业微信，领取 20 元无门槛券。"
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture(scope="module")
def font() -> str:
    # No skip: a machine without a CJK font would ship tofu posters, and that must fail loudly.
    return find_cjk_font()


@pytest.fixture(scope="module")
def bold_font() -> str:
    return find_cjk_font(bold=True)


@pytest.fixture(scope="module")
def template() -> PosterTemplate:
    return parse_template(DEFAULT_TEMPLATE)


def render(template: PosterTemplate, font: str, **overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "qr_data": LINK, "guide_name": "王小美", "title": TITLE, "subtitle": SUBTITLE, "font_path": font,
    }
    args.update(overrides)
    return render_poster(template, **args)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def solid_png(color: tuple[int, ...], size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG")
    return out.getvalue()


def with_changes(*changes: tuple[str, Any]) -> dict[str, Any]:
    """DEFAULT_TEMPLATE with dotted keys set (or deleted, for the value DELETE)."""
    raw = copy.deepcopy(DEFAULT_TEMPLATE)
    for dotted, value in changes:
        *parents, last = dotted.split(".")
        node = raw
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return raw


DELETE = object()


# -- template validation -----------------------------------------------------------------------


def test_default_template_parses(template: PosterTemplate) -> None:
    assert (template.width, template.height) == (750, 1334)
    assert template.qr.size == 380 and template.title is not None and template.title.bold
    assert template.name is not None and template.name.text == "导购 · {name}"
    assert template.caption is not None and "长按识别二维码" in (template.caption.text or "")


def test_integral_floats_and_lowercase_colours_are_accepted() -> None:
    parsed = parse_template(with_changes(("size.width", 750.0), ("background", "#c8372d")))
    assert parsed.width == 750 and isinstance(parsed.width, int)
    assert parsed.background == "#C8372D"


def test_minimal_template_has_only_a_qr() -> None:
    parsed = parse_template({"size": {"width": 400, "height": 400}, "background": "#FFFFFF",
                             "qr": {"x": 50, "y": 50, "size": 300}})
    assert parsed.card is parsed.avatar is parsed.name is parsed.title is parsed.subtitle is parsed.caption is None


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ((("size", DELETE),), "size", "缺少"),
        ((("size.width", 199),), "size.width", "200 到 3000"),
        ((("size.height", 3001),), "size.height", "200 到 3000"),
        ((("size.width", "750"),), "size.width", "整数"),
        ((("size.width", 750.5),), "size.width", "整数"),
        ((("background", "red"),), "background", "#RRGGBB"),
        ((("background", "#12345"),), "background", "#RRGGBB"),
        ((("qr", DELETE),), "qr", "缺少"),
        ((("qr.size", 100),), "qr.size", "120"),
        ((("qr.x", 500),), "qr", "超出画布"),
        ((("qr.color", "#EEEEEE"),), "qr.color", "深于"),
        ((("qr.colour", "#000000"),), "qr.colour", "不认识的字段"),
        ((("titel", {}),), "titel", "不认识的字段"),
        ((("title.font_size", 7),), "title.font_size", "8 到 200"),
        ((("title.font_size", 201),), "title.font_size", "8 到 200"),
        ((("title.color", "#1F232"),), "title.color", "#RRGGBB"),
        ((("title.max_width", 700),), "title", "超出画布"),
        ((("title.max_width", 20),), "title.max_width", "50 到 750"),
        ((("title.max_lines", 0),), "title.max_lines", "1 到 10"),
        ((("title.line_height", 5),), "title.line_height", "1 到 3"),
        ((("title.align", "justify"),), "title.align", "left、center 或 right"),
        ((("title.bold", "yes"),), "title.bold", "true 或 false"),
        ((("subtitle.y", 700),), "subtitle", "二维码"),
        ((("subtitle.max_lines", 10),), "subtitle", "二维码"),
        ((("caption.y", 1300),), "caption", "超出画布"),
        ((("caption.text", "  "),), "caption.text", "不能为空"),
        ((("name.text", "导购"),), "name.text", "{name}"),
        ((("name.max_lines", 2),), "name.max_lines", "1 到 1"),
        ((("avatar.size", True),), "avatar.size", "整数"),
        ((("avatar.round", "yes"),), "avatar.round", "true 或 false"),
        ((("avatar.x", 700),), "avatar", "超出画布"),
        ((("card.radius", 600),), "card.radius", "0 到 375"),
        ((("card.width", 100), ("card.height", 100), ("card.radius", 60)), "card.radius", "短边的一半"),
        ((("card.height", 1200),), "card", "超出画布"),
    ],
)
def test_invalid_templates_name_the_field(changes: tuple[tuple[str, Any], ...], field: str, fragment: str) -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_template(with_changes(*changes))
    assert caught.value.field == field
    assert fragment in caught.value.message_zh
    assert str(caught.value).startswith(f"{field}：")


@pytest.mark.parametrize("raw", [None, [], "template", {"size": []}])
def test_non_mapping_templates_are_rejected(raw: Any) -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_template(raw)
    assert "对象" in caught.value.message_zh


# -- rendering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "pil_format"), [("PNG", "PNG"), ("JPEG", "JPEG"), ("jpg", "JPEG")])
def test_render_decodes_to_the_template_size(template: PosterTemplate, font: str, fmt: str, pil_format: str) -> None:
    image = decode(render(template, font, fmt=fmt))
    assert image.format == pil_format
    assert image.size == (750, 1334)
    assert image.mode == "RGB"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize(
    "link",
    [LINK, "https://s.example.cn/a", "https://scrm.example.com/s/" + "x" * 180 + "?g=1&item=2#frag"],
)
def test_qr_decodes_to_the_exact_link(template: PosterTemplate, font: str, fmt: str, link: str) -> None:
    results = zxingcpp.read_barcodes(decode(render(template, font, qr_data=link, fmt=fmt)))
    assert [(r.format, r.text) for r in results] == [(zxingcpp.BarcodeFormat.QRCode, link)]


def test_qr_box_is_two_crisp_colours_with_a_quiet_zone(template: PosterTemplate, font: str) -> None:
    image = decode(render(template, font))
    qr = template.qr
    box = image.crop((qr.x, qr.y, qr.x + qr.size, qr.y + qr.size))
    # NEAREST scaling by whole pixels: no grey edge pixels anywhere in the code.
    assert {color for _, color in box.getcolors(maxcolors=16) or []} == {rgb(qr.color), rgb(qr.background)}
    # The quiet zone: at least 4 modules of background on every side of the code.
    dark = box.convert("L").point(lambda v: 255 if v < 128 else 0)
    left, top, right, bottom = dark.getbbox() or (0, 0, 0, 0)
    finder_row = [dark.getpixel((x, top)) for x in range(left, right)]
    finder = finder_row.index(0)  # the top-left finder pattern is a solid run 7 modules wide
    assert finder % 7 == 0  # whole pixels per module
    module = finder // 7
    assert module >= 2
    assert min(left, top, qr.size - right, qr.size - bottom) >= 4 * module


def test_qr_too_dense_for_its_box_is_refused(font: str) -> None:
    small = parse_template({"size": {"width": 300, "height": 300}, "background": "#FFFFFF",
                            "qr": {"x": 0, "y": 0, "size": 120}})
    with pytest.raises(ValueError, match="二维码内容太长"):
        render_poster(small, qr_data="https://example.com/" + "a" * 900, guide_name="", title="", font_path=font)


def test_rendering_is_deterministic(template: PosterTemplate, font: str) -> None:
    assert render(template, font) == render(template, font)


def test_chinese_glyphs_are_real_not_missing_glyph_boxes(template: PosterTemplate, font: str, bold_font: str) -> None:
    text = "导购海报"
    image = decode(render(template, font, title=text, bold_font_path=bold_font))
    box = template.title
    assert box is not None
    # CJK ideographs advance exactly one em, so character i occupies [x + i*size, x + (i+1)*size).
    cells = [
        image.crop((box.x + i * box.font_size, box.y, box.x + (i + 1) * box.font_size, box.y + box.font_size))
        for i in range(len(text))
    ]
    card = rgb(DEFAULT_TEMPLATE["card"]["color"])
    for cell in cells:
        ink = ImageChops.difference(cell, Image.new("RGB", cell.size, card)).convert("L")
        assert sum(ink.point(lambda v: 255 if v else 0).histogram()[1:]) > box.font_size  # a real glyph each
    # Missing-glyph boxes all look alike; real ideographs all differ.
    assert len({cell.tobytes() for cell in cells}) == len(text)
    # And none looks like what this very font draws for a code point it lacks.
    tofu = Image.new("RGB", (box.font_size, box.font_size), card)
    ImageDraw.Draw(tofu).text((0, round(box.font_size * 0.88)), "\U0010fffd",
                              font=load_font(bold_font, box.font_size), fill=rgb(box.color), anchor="ls")
    assert all(cell.tobytes() != tofu.tobytes() for cell in cells)


def test_title_text_changes_the_title_area_only(template: PosterTemplate, font: str) -> None:
    first = decode(render(template, font, title="导购"))
    second = decode(render(template, font, title="海报"))
    box = template.title
    assert box is not None
    area = (box.x, box.y, box.x + box.max_width, box.y + box.height)
    assert first.crop(area).tobytes() != second.crop(area).tobytes()
    assert first.crop((0, area[3], 750, 1334)).tobytes() == second.crop((0, area[3], 750, 1334)).tobytes()


def test_characters_the_font_lacks_are_dropped_not_drawn_as_boxes(template: PosterTemplate, font: str) -> None:
    assert not has_glyph(font, "\U0010fffd")
    assert render(template, font, guide_name="王小美\U0010fffd") == render(template, font, guide_name="王小美")


@pytest.mark.parametrize("radius", [0, 28])
def test_card_corners_are_rounded_over_the_background(font: str, radius: int) -> None:
    template = parse_template(with_changes(("card.radius", radius)))
    card = template.card
    assert card is not None
    image = decode(render(template, font))
    background, fill = rgb(DEFAULT_TEMPLATE["background"]), rgb(card.color)
    right, bottom = card.x + card.width - 1, card.y + card.height - 1
    for x, y in ((card.x, card.y), (right, card.y), (card.x, bottom), (right, bottom)):
        assert image.getpixel((x, y)) == (background if radius else fill)
    assert image.getpixel((card.x + radius, card.y + radius)) == fill
    assert image.getpixel((card.x - 1, card.y + card.height // 2)) == background


def test_round_avatar_leaves_corners_as_background(template: PosterTemplate, font: str) -> None:
    green = (20, 160, 60)
    avatar = template.avatar
    assert avatar is not None and avatar.round
    image = decode(render(template, font, avatar=solid_png(green, (300, 200))))
    background = rgb(DEFAULT_TEMPLATE["background"])
    near, far = 2, avatar.size - 3
    for dx, dy in ((near, near), (far, near), (near, far), (far, far)):
        assert image.getpixel((avatar.x + dx, avatar.y + dy)) == background
    assert image.getpixel((avatar.x + avatar.size // 2, avatar.y + avatar.size // 2)) == green
    assert image.getpixel((avatar.x + avatar.size // 2, avatar.y + 2)) == green  # the circle reaches the edge


def test_square_avatar_fills_its_corners(font: str) -> None:
    green = (20, 160, 60)
    square = parse_template(with_changes(("avatar.round", False)))
    assert square.avatar is not None
    image = decode(render(square, font, avatar=solid_png(green, (120, 120))))
    assert image.getpixel((square.avatar.x + 1, square.avatar.y + 1)) == green


def test_missing_avatar_draws_a_round_placeholder(template: PosterTemplate, font: str) -> None:
    avatar = template.avatar
    assert avatar is not None
    image = decode(render(template, font, avatar=None))
    assert image.getpixel((avatar.x + 2, avatar.y + 2)) == rgb(DEFAULT_TEMPLATE["background"])
    assert image.getpixel((avatar.x + avatar.size // 2, avatar.y + 4)) == rgb(avatar.placeholder_color)


def test_background_image_covers_the_canvas(template: PosterTemplate, font: str) -> None:
    blue = (10, 40, 200)
    # A wide picture: cover-fit crops its sides and still reaches every edge of the tall canvas.
    image = decode(render(template, font, background=solid_png(blue, (1600, 400))))
    for point in ((0, 0), (749, 0), (0, 1333), (749, 1333), (375, 200)):
        assert image.getpixel(point) == blue


def test_transparent_background_shows_the_template_colour(template: PosterTemplate, font: str) -> None:
    image = decode(render(template, font, background=solid_png((0, 0, 0, 0), (100, 100), "RGBA")))
    assert image.getpixel((5, 5)) == rgb(DEFAULT_TEMPLATE["background"])


def test_jpeg_background_decodes_at_reduced_scale_and_still_covers(template: PosterTemplate, font: str) -> None:
    photo = Image.new("RGB", (4000, 3000), (200, 120, 30))
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90)
    image = decode(render(template, font, background=out.getvalue()))
    pixel = image.getpixel((2, 2))
    assert isinstance(pixel, tuple)
    assert all(abs(a - b) <= 3 for a, b in zip(pixel, (200, 120, 30), strict=True))


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"qr_data": ""}, "二维码内容不能为空"),
        ({"qr_data": "   "}, "二维码内容不能为空"),
        ({"qr_data": "x" * 1001}, "二维码内容不能超过"),
        ({"fmt": "GIF"}, "PNG 或 JPEG"),
        ({"title": " "}, "标题不能为空"),
        ({"title": "长" * 501}, "标题不能超过"),
        ({"guide_name": ""}, "导购姓名不能为空"),
        ({"avatar": b"not an image"}, "头像不是可识别的图片"),
        ({"avatar": b""}, "头像为空"),
        ({"background": b"\x89PNG\r\n\x1a\n garbage"}, "背景图不是可识别的图片"),
        ({"font_path": "/nonexistent/font.ttc"}, "cannot open font"),
    ],
)
def test_invalid_inputs_raise_value_error(
    template: PosterTemplate, font: str, overrides: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        render(template, font, **overrides)


def test_huge_pictures_are_refused_before_decoding(template: PosterTemplate, font: str) -> None:
    out = io.BytesIO()
    Image.new("1", (6000, 5000)).save(out, "PNG")  # 30 MP, a few KB compressed
    with pytest.raises(ValueError, match="太大"):
        render(template, font, background=out.getvalue())


async def test_async_render_runs_off_the_loop(template: PosterTemplate, font: str) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> bytes:
        threads.append(threading.get_ident())
        return render_poster(*args, **kwargs)

    with ThreadPoolExecutor(max_workers=1) as pool:
        data = await render_poster_async(template, qr_data=LINK, guide_name="王小美", title=TITLE,
                                         subtitle=SUBTITLE, font_path=font, executor=pool)
        await asyncio.get_running_loop().run_in_executor(pool, lambda: spy(
            template, qr_data=LINK, guide_name="王小美", title=TITLE, subtitle=SUBTITLE, font_path=font))
    assert data == render(template, font)
    assert threads and threads[0] != loop_thread
    assert decode(await render_poster_async(template, qr_data=LINK, guide_name="王", title="标题",
                                            font_path=font, fmt="JPEG")).format == "JPEG"


# -- wrapping ----------------------------------------------------------------------------------


def one_per_char(text: str) -> float:
    return float(len(text))


@pytest.mark.parametrize(
    ("text", "max_width", "max_lines", "expected"),
    [
        ("一二三四五六七", 5, 3, ["一二三四五", "六七"]),
        ("hello world foo", 11, 3, ["hello world", "foo"]),
        ("hello world foo", 8, 3, ["hello", "world", "foo"]),
        ("买iPhone15送壳", 8, 3, ["买", "iPhone15", "送壳"]),
        ("abcdefghij", 4, 3, ["abcd", "efgh", "ij"]),
        ("一二三四，五", 4, 3, ["一二三", "四，五"]),  # a comma never starts a line
        ("一二三「四五", 4, 3, ["一二三", "「四五"]),  # an opening bracket never ends one
        ("一二三四五六七八九十", 4, 2, ["一二三四", "五六七" + ELLIPSIS]),
        ("一二三四五六，七八", 3, 2, ["一二三", "四五" + ELLIPSIS]),
        ("第一行\n第二行", 10, 3, ["第一行", "第二行"]),
        ("第一行\n第二行\n第三行", 10, 2, ["第一行", "第二行" + ELLIPSIS]),
        ("  前后空格  ", 10, 1, ["前后空格"]),
        ("", 10, 2, [""]),
    ],
)
def test_wrap_text(text: str, max_width: float, max_lines: int, expected: list[str]) -> None:
    assert wrap_text(text, one_per_char, max_width, max_lines) == expected


def test_wrap_with_a_real_font_fits_and_keeps_the_text(font: str) -> None:
    measure = load_font(font, 40).getlength
    long_text = "全场满 299 减 50，Member Day 会员日积分双倍，iPhone 配件买一送一，" * 3
    lines = wrap_text(long_text, measure, 400, 4)
    assert len(lines) == 4 and lines[-1].endswith(ELLIPSIS)
    assert all(measure(line) <= 400 for line in lines)
    # Nothing but line breaks and the ellipsis was changed: the lines are the text, in order.
    squeezed = "".join(lines)[: -len(ELLIPSIS)].replace(" ", "")
    assert long_text.replace(" ", "").startswith(squeezed)
    assert "Member" in "".join(lines) and not any(line.endswith("Mem") for line in lines)


# -- fonts -------------------------------------------------------------------------------------


def test_found_font_draws_chinese(font: str) -> None:
    assert has_glyphs(font, "导购海报长按识别二维码")
    assert missing_glyphs(load_font(font, 32), "导购\U0010fffd海报") == "\U0010fffd"


def test_a_latin_only_font_is_detected_as_missing_chinese() -> None:
    if not has_glyphs(DEJAVU, "Poster"):
        pytest.skip("DejaVu Sans is not installed")
    assert not has_glyphs(DEJAVU)
    assert missing_glyphs(load_font(DEJAVU, 32), "A导B") == "导"
    with pytest.raises(FontNotFound):
        find_cjk_font(search_paths=[DEJAVU], use_fc_match=False)


def test_bogus_configured_font_without_fallback_raises() -> None:
    with pytest.raises(FontNotFound) as caught:
        find_cjk_font("/nonexistent/fonts/poster.ttf", search_paths=[], use_fc_match=False)
    assert "fonts-noto-cjk" in caught.value.message_zh and "SCRM_POSTER_FONT" in caught.value.message_zh
    assert caught.value.tried == ("/nonexistent/fonts/poster.ttf",)
    assert "SCRM_POSTER_FONT" in str(caught.value)


def test_bogus_configured_font_falls_back_to_the_search_list(font: str) -> None:
    assert find_cjk_font("/nonexistent/fonts/poster.ttf", search_paths=[font], use_fc_match=False) == font


def test_configured_font_wins(font: str, bold_font: str) -> None:
    assert find_cjk_font(bold_font, search_paths=[font], use_fc_match=False) == bold_font


def test_fonts_are_cached_per_path_size_and_face(font: str) -> None:
    assert load_font(font, 30) is load_font(font, 30)
    assert load_font(font, 30) is not load_font(font, 31)
    if font.endswith(".ttc"):
        assert "SC" in (load_font(font, 30).getname()[0] or "")  # Simplified forms in a collection
        assert load_font(font, 30, 0) is not load_font(font, 30)


# -- cache -------------------------------------------------------------------------------------


def test_poster_cache_evicts_least_recently_used_by_bytes() -> None:
    cache = PosterCache(max_bytes=10)
    a, b, c = PosterKey("g1", "i1", 1), PosterKey("g1", "i2", 1), PosterKey("g2", "i1", 1)
    cache.put(a, b"aaaa")
    cache.put(b, b"bbbb")
    assert cache.get(a) == b"aaaa"  # a is now the most recently used
    cache.put(c, b"cccc")  # 12 bytes > 10: b goes
    assert b not in cache and cache.get(b) is None
    assert cache.get(a) == b"aaaa" and cache.get(c) == b"cccc"
    assert cache.nbytes == 8 and len(cache) == 2
    assert (cache.hits, cache.misses) == (3, 1)


def test_poster_cache_replaces_and_refuses_oversized_entries() -> None:
    cache = PosterCache(max_bytes=10)
    key = PosterKey("g", "i", 1, "JPEG")
    cache.put(key, b"12345")
    cache.put(key, b"123")
    assert cache.nbytes == 3 and cache.get(key) == b"123"
    cache.put(PosterKey("g", "big", 1), b"x" * 11)
    assert PosterKey("g", "big", 1) not in cache and cache.nbytes == 3
    assert PosterKey("g", "i", 2, "JPEG") not in cache  # a new template version is a new poster
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
    with pytest.raises(ValueError):
        PosterCache(max_bytes=0)
