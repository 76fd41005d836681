"""Safe, small XML parsing for callback envelopes and decrypted payloads."""

from __future__ import annotations

import xml.etree.ElementTree as ET


class MalformedXML(ValueError):
    """The body is not the XML WeCom sends."""


def parse_xml(text: str | bytes) -> ET.Element:
    """Parse ``text``, refusing DTDs (no entity tricks) and anything but an <xml> root."""
    head = text[:512] if isinstance(text, str) else text[:512].decode("utf-8", "replace")
    if "<!DOCTYPE" in head.upper() or "<!ENTITY" in head.upper():
        raise MalformedXML("XML with a DOCTYPE/ENTITY is not accepted")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise MalformedXML(f"not well-formed XML ({exc})") from exc
    if root.tag != "xml":
        raise MalformedXML(f"root element is <{root.tag}>, expected <xml>")
    return root


def flat_fields(root: ET.Element) -> dict[str, str]:
    """Top-level element texts by name (stripped); repeated names keep the first."""
    fields: dict[str, str] = {}
    for child in root:
        fields.setdefault(child.tag, (child.text or "").strip())
    return fields


def item_list(root: ET.Element, name: str) -> tuple[str, ...]:
    """Texts of <Item> children of element ``name`` (e.g. MemChangeList)."""
    parent = root.find(name)
    if parent is None:
        return ()
    return tuple((item.text or "").strip() for item in parent.findall("Item") if (item.text or "").strip())
