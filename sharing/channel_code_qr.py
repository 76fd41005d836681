"""The printable sheet of a channel code: an A5 portrait PNG with its name, the QR and 「扫码添加导购」.

A pure function of the QR image bytes and the texts, returning PNG bytes; callers run it off the
event loop. The QR is scaled with nearest-neighbour so its modules stay sharp for scanners and printers.
"""

from __future__ import annotations

import io
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from sharing.fonts import load_font

#: A5 (148 × 210 mm) at 150 dpi.
SHEET_SIZE: Final = (874, 1240)
MARGIN: Final = 60
QR_SIZE: Final = 620
CALL_TO_ACTION: Final = "扫码添加导购"
HINT: Final = "微信扫一扫，添加您的专属导购"
INK: Final = (33, 33, 33)
MUTED: Final = (120, 120, 120)
ACCENT: Final = (7, 193, 96)  # WeChat green


def _fit(font_path: str, text: str, size: int, width: int) -> ImageFont.FreeTypeFont:
    """The font at the largest size ≤ ``size`` that draws ``text`` within ``width`` pixels."""
    while True:
        font = load_font(font_path, size)
        if size <= 18 or font.getlength(text) <= width:
            return font
        size -= 2


def _centered(draw: ImageDraw.ImageDraw, y: int, text: str, font: ImageFont.FreeTypeFont,
              fill: tuple[int, int, int]) -> int:
    """Draw ``text`` centred at height ``y``; returns the y below it."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((SHEET_SIZE[0] - (right - left)) // 2 - left, y - top), text, font=font, fill=fill)
    return int(y + (bottom - top))


def render_printable(qr_image: bytes, name: str, subtitle: str, *, font_path: str, bold_font_path: str) -> bytes:
    """PNG bytes of the A5 sheet: ``name``, then ``subtitle`` (a store, a campaign), the QR, the call to action."""
    width, height = SHEET_SIZE
    sheet = Image.new("RGB", SHEET_SIZE, "white")
    draw = ImageDraw.Draw(sheet)
    inner = width - 2 * MARGIN
    y = _centered(draw, 110, name, _fit(bold_font_path, name, 60, inner), INK)
    if subtitle:
        y = _centered(draw, y + 28, subtitle, _fit(font_path, subtitle, 34, inner), MUTED)
    qr = Image.open(io.BytesIO(qr_image)).convert("RGB")
    qr = qr.resize((QR_SIZE, QR_SIZE), Image.Resampling.NEAREST)
    top = max(y + 50, 300)
    left = (width - QR_SIZE) // 2
    sheet.paste(qr, (left, top))
    draw.rectangle((left - 12, top - 12, left + QR_SIZE + 11, top + QR_SIZE + 11), outline=ACCENT, width=4)
    y = _centered(draw, top + QR_SIZE + 60, CALL_TO_ACTION, load_font(bold_font_path, 52), ACCENT)
    _centered(draw, min(y + 30, height - 80), HINT, load_font(font_path, 30), MUTED)
    out = io.BytesIO()
    sheet.save(out, format="PNG", dpi=(150, 150))
    return out.getvalue()
