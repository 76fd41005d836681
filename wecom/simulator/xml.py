"""Builds the decrypted plaintext XML of WeCom callbacks (PROTOCOL.md §3): strings in CDATA, ints bare."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

# A field value: str -> CDATA, int -> bare number, list of str -> <Item> children in CDATA.
XmlValue: TypeAlias = "str | int | list[str]"


def _cdata(text: str) -> str:
    # "]]>" cannot appear inside one CDATA section; split it across two sections.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_xml(fields: Sequence[tuple[str, XmlValue]]) -> str:
    """Render (element, value) pairs as a WeCom callback plaintext document."""
    parts = ["<xml>"]
    for name, value in fields:
        if isinstance(value, bool):  # bool is an int subclass; WeCom never sends booleans here
            raise TypeError(f"{name}: booleans are not valid callback values")
        if isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        elif isinstance(value, str):
            parts.append(f"<{name}>{_cdata(value)}</{name}>")
        else:
            items = "".join(f"<Item>{_cdata(item)}</Item>" for item in value)
            parts.append(f"<{name}>{items}</{name}>")
    parts.append("</xml>")
    return "".join(parts)
