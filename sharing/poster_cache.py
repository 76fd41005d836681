"""Rendered posters kept in memory, so a guide sharing the same item twice costs a dict lookup.

A poster is determined by the guide, the item and the template version (``PosterTemplate.version``
in models/poster.py, which grows on every edit; the link it encodes is the guide's link for the item),
so that triple plus the image format and the kind of QR code (link or 「加我」 contact way) is the key;
an edit to an item's title or a guide's name or avatar calls ``discard`` (or ``clear``). The cache is
bounded by the bytes it holds and evicts the least recently used poster first. It is meant for the
event loop's thread only: no locks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Final, NamedTuple

DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024  # ~900 PNG posters of 70 KB


class PosterKey(NamedTuple):
    """What a rendered poster depends on."""

    guide: str | int
    item: str | int
    template_version: int
    fmt: str = "PNG"
    # "link" (the QR code is the guide's short link; ``guide`` is the link id) or "addme" (the guide's
    # contact-way code; ``guide`` is the contact way id): the same ids mean different things in each.
    kind: str = "link"


class PosterCache:
    """A least-recently-used map of poster bytes, bounded by their total size."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        """Return the poster stored under ``key`` (marking it recently used), or None."""
        data = self._entries.get(key)
        if data is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return data

    def put(self, key: Hashable, data: bytes) -> None:
        """Store ``data`` under ``key``, evicting the least recently used posters to stay in bounds."""
        self.discard(key)
        if len(data) > self.max_bytes:
            return  # would evict everything and still not fit
        self._entries[key] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._size -= len(evicted)

    def discard(self, key: Hashable) -> None:
        """Forget the poster under ``key``, if any."""
        data = self._entries.pop(key, None)
        if data is not None:
            self._size -= len(data)

    def clear(self) -> None:
        """Forget every poster (after a template or font change, say)."""
        self._entries.clear()
        self._size = 0

    @property
    def nbytes(self) -> int:
        """The total size of the posters held."""
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
