"""Short share codes: a keyed permutation of the link's row id, written in a look-alike-free alphabet.

A 4-round Feistel network over 40 bits turns consecutive ids into codes that look random and cannot
be walked without the key, and being a bijection it never yields the same code for two ids: no
collision check, no retry loop. 56 symbols ** 7 > 2 ** 40, so every code is exactly 7 characters.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, Final

ALPHABET: Final = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0 O 1 l I
CODE_LENGTH: Final = 7
BITS: Final = 40
_HALF: Final = BITS // 2
_MASK: Final = (1 << _HALF) - 1
ROUNDS: Final = 4
MAX_ID: Final = (1 << BITS) - 1


@functools.lru_cache(maxsize=8)
def _rounds(secret: str) -> tuple[Any, ...]:
    """One keyed BLAKE2b state per round, copied per use (keying dominates the cost of a fresh hash)."""
    if not secret:
        raise ValueError("share codes need a secret (SCRM_SHARE_SECRET or SCRM_SESSION_SECRET)")
    key = hashlib.sha256(b"scrm-share-codes\x00" + secret.encode()).digest()
    states = []
    for index in range(ROUNDS):
        # Keyed BLAKE2b is a PRF like HMAC, several times cheaper, which matters when minting in bulk.
        state = hashlib.blake2b(key=key, digest_size=4)
        state.update(bytes((index,)))
        states.append(state)
    return tuple(states)


def _f(state: Any, value: int) -> int:
    h = state.copy()
    h.update(value.to_bytes(4, "big"))
    return int.from_bytes(h.digest(), "big") & _MASK


def permute(number: int, secret: str) -> int:
    """The keyed permutation of ``number`` within [0, 2**40)."""
    if not 0 <= number <= MAX_ID:
        raise ValueError(f"share codes cover ids 0..{MAX_ID}, got {number}")
    rounds = _rounds(secret)
    left, right = number >> _HALF, number & _MASK
    for state in rounds:
        left, right = right, left ^ _f(state, right)
    return (left << _HALF) | right


def unpermute(number: int, secret: str) -> int:
    """The inverse of :func:`permute`."""
    if not 0 <= number <= MAX_ID:
        raise ValueError(f"value outside 0..{MAX_ID}: {number}")
    rounds = _rounds(secret)
    left, right = number >> _HALF, number & _MASK
    for state in reversed(rounds):
        left, right = right ^ _f(state, left), left
    return (left << _HALF) | right


def encode(number: int) -> str:
    """``number`` in ALPHABET, zero-padded to CODE_LENGTH characters."""
    out = []
    for _ in range(CODE_LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        out.append(ALPHABET[digit])
    if number:
        raise ValueError("number too large for a share code")
    return "".join(reversed(out))


def decode(code: str) -> int:
    """The number behind a code; ValueError for anything not a well-formed code."""
    if len(code) != CODE_LENGTH:
        raise ValueError(f"a share code has {CODE_LENGTH} characters")
    number = 0
    for char in code:
        digit = ALPHABET.find(char)
        if digit < 0:
            raise ValueError(f"{char!r} is not a share-code character")
        number = number * len(ALPHABET) + digit
    return number


def code_for(link_id: int, secret: str) -> str:
    """The share code of link ``link_id``."""
    return encode(permute(link_id, secret))


def looks_like_code(text: str) -> bool:
    """Whether ``text`` could be a share code (cheap check before any lookup)."""
    return 0 < len(text) <= 16 and all(c in ALPHABET for c in text)
