"""WeCom callback crypto (PROTOCOL.md §2.4-§2.5): signatures, AES-256-CBC, 32-byte PKCS#7.

wechatpy's ``WeChatCipher`` does the AES; the framing around it is checked strictly here because
wechatpy's own ``decrypt`` accepts bad padding silently and cannot tell a wrong EncodingAESKey from a
wrong corp id -- and telling those apart is what an admin needs when console verification fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from typing import Final

from wechatpy.crypto.base import WeChatCipher

BLOCK: Final = 32
_RANDOM_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class CallbackCryptoError(Exception):
    """A callback could not be authenticated or decrypted; ``reason`` says what to fix."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """SHA-1 over the sorted, concatenated four strings (lowercase hex)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def aes_key_from_encoding_key(encoding_aes_key: str) -> bytes:
    """Decode a 43-character EncodingAESKey into the 32-byte AES key."""
    if len(encoding_aes_key) != 43:
        raise ValueError(f"EncodingAESKey must be exactly 43 characters, got {len(encoding_aes_key)}")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ValueError("EncodingAESKey is not valid base64 (letters and digits only)") from exc
    if len(key) != 32:
        raise ValueError("EncodingAESKey does not decode to 32 bytes")
    return key


def _random_prefix() -> bytes:
    return bytes(_RANDOM_ALPHABET[b % len(_RANDOM_ALPHABET)] for b in os.urandom(16))


@dataclass(frozen=True)
class CallbackCrypto:
    """Sign, encrypt and (strictly) decrypt callback payloads for one app."""

    token: str
    encoding_aes_key: str
    receive_id: str

    @property
    def key(self) -> bytes:
        return aes_key_from_encoding_key(self.encoding_aes_key)

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """The msg_signature for one ciphertext."""
        return signature(self.token, timestamp, nonce, encrypt)

    def check_signature(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Raise unless ``msg_signature`` matches (constant-time)."""
        expected = self.sign(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected, msg_signature.lower()):
            raise CallbackCryptoError(
                "bad_signature",
                "msg_signature mismatch: the Token configured here (WECOM_TOKEN) differs from the "
                "Token in the WeCom console, or the request was not sent by WeCom",
            )

    def encrypt(self, plaintext: str, random_prefix: bytes | None = None) -> str:
        """Encrypt ``plaintext`` exactly as WeCom does; returns base64 ciphertext."""
        msg = plaintext.encode("utf-8")
        body = (random_prefix or _random_prefix()) + struct.pack(">I", len(msg)) + msg
        body += self.receive_id.encode("ascii")
        pad = BLOCK - len(body) % BLOCK
        body += bytes([pad]) * pad
        return base64.b64encode(WeChatCipher(self.key).encrypt(body)).decode("ascii")

    def decrypt(self, encrypt: str) -> str:
        """Decrypt base64 ciphertext and check its padding, layout and receive id."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CallbackCryptoError("bad_base64", "Encrypt is not valid base64") from exc
        if not raw or len(raw) % 16:
            raise CallbackCryptoError("bad_length", "ciphertext length is not a multiple of the AES block")
        plain = WeChatCipher(self.key).decrypt(raw)
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CallbackCryptoError(
                "bad_padding",
                "decrypted padding is invalid: the EncodingAESKey configured here "
                "(WECOM_ENCODING_AES_KEY) differs from the one in the WeCom console",
            )
        content = plain[16:-pad]
        if len(content) < 4:
            raise CallbackCryptoError("bad_layout", "decrypted payload is too short")
        (length,) = struct.unpack(">I", content[:4])
        if length > len(content) - 4:
            raise CallbackCryptoError(
                "bad_layout",
                "decrypted length prefix is out of range: the EncodingAESKey configured here "
                "(WECOM_ENCODING_AES_KEY) differs from the one in the WeCom console",
            )
        msg = content[4 : 4 + length]
        receive_id = content[4 + length :]
        if receive_id != self.receive_id.encode("ascii", "replace"):
            shown = receive_id.decode("ascii", "replace")[:64]
            raise CallbackCryptoError(
                "bad_receive_id",
                f"message is addressed to corp id {shown!r}, but WECOM_CORP_ID is "
                f"{self.receive_id!r}: set WECOM_CORP_ID to the corp id shown in the console "
                "(我的企业 → 企业信息)",
            )
        try:
            return msg.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CallbackCryptoError("bad_encoding", "decrypted message is not UTF-8") from exc

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Check and decrypt a URL-verification echostr; returns the body to answer with."""
        self.check_signature(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def encrypted_reply(self, plaintext: str, timestamp: str, nonce: str) -> str:
        """Build the encrypted passive-reply XML for ``plaintext``."""
        enc = self.encrypt(plaintext)
        sig = self.sign(timestamp, nonce, enc)
        return (
            f"<xml>\n<Encrypt><![CDATA[{enc}]]></Encrypt>\n"
            f"<MsgSignature><![CDATA[{sig}]]></MsgSignature>\n"
            f"<TimeStamp>{timestamp}</TimeStamp>\n<Nonce><![CDATA[{nonce}]]></Nonce>\n</xml>"
        )
