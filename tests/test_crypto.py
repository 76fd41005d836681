"""Callback crypto against the verified vectors, and every way a payload can be wrong."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from wecom.crypto import CallbackCrypto, CallbackCryptoError, signature


def _crypto(v: dict[str, Any]) -> CallbackCrypto:
    return CallbackCrypto(v["token"], v["encoding_aes_key"], v["receive_id"])


def test_official_url_verifications(vectors: dict[str, Any]) -> None:
    for v in vectors["crypto"]["official_url_verification"]:
        assert _crypto(v).verify_url(v["msg_signature"], v["timestamp"], v["nonce"], v["echostr"]) == v["expected_reply_body"]


def test_official_post_decryption_multibyte(vectors: dict[str, Any]) -> None:
    for v in vectors["crypto"]["official_post_decryption"]:
        c = _crypto(v)
        c.check_signature(v["msg_signature"], v["timestamp"], v["nonce"], v["encrypt"])
        assert c.decrypt(v["encrypt"]) == v["expected_plaintext"]


def test_generated_roundtrip_is_byte_exact(vectors: dict[str, Any]) -> None:
    g = vectors["crypto"]["generated_roundtrip"]
    c = _crypto(g)
    prefix = g["fixed_random16_ascii"].encode()
    push = g["event_push"]
    assert c.encrypt(push["plaintext"], random_prefix=prefix) == push["encrypt"]
    assert c.sign(push["timestamp"], push["nonce"], push["encrypt"]) == push["msg_signature"]
    aligned = g["aligned_padding_case"]
    assert c.encrypt(aligned["msg"], random_prefix=prefix) == aligned["encrypt"]
    assert len(base64.b64decode(aligned["encrypt"])) == 96
    assert c.decrypt(aligned["encrypt"]) == aligned["msg"]


def test_passive_reply_decrypts(vectors: dict[str, Any]) -> None:
    g = vectors["crypto"]["generated_roundtrip"]
    r = g["encrypted_passive_reply"]
    c = _crypto(g)
    assert c.decrypt(r["encrypt"]) == r["plaintext"]
    assert signature(g["token"], r["timestamp"], r["nonce"], r["encrypt"]) == r["msg_signature"]


def test_wrong_token_is_named(vectors: dict[str, Any]) -> None:
    v = vectors["crypto"]["official_url_verification"][0]
    c = CallbackCrypto("WrongToken", v["encoding_aes_key"], v["receive_id"])
    with pytest.raises(CallbackCryptoError) as err:
        c.verify_url(v["msg_signature"], v["timestamp"], v["nonce"], v["echostr"])
    assert err.value.code == "bad_signature"
    assert "WECOM_TOKEN" in err.value.reason


def test_wrong_aes_key_is_named(vectors: dict[str, Any]) -> None:
    v = vectors["crypto"]["official_url_verification"][0]
    other_key = vectors["crypto"]["official_url_verification"][1]["encoding_aes_key"]
    c = CallbackCrypto(v["token"], other_key, v["receive_id"])
    with pytest.raises(CallbackCryptoError) as err:
        c.decrypt(v["echostr"])
    assert err.value.code in ("bad_padding", "bad_layout")
    assert "WECOM_ENCODING_AES_KEY" in err.value.reason


def test_wrong_corp_id_is_named(vectors: dict[str, Any]) -> None:
    v = vectors["crypto"]["official_url_verification"][0]
    c = CallbackCrypto(v["token"], v["encoding_aes_key"], "ww0000000000000000")
    with pytest.raises(CallbackCryptoError) as err:
        c.decrypt(v["echostr"])
    assert err.value.code == "bad_receive_id"
    assert v["receive_id"] in err.value.reason and "WECOM_CORP_ID" in err.value.reason


def test_tampered_padding_rejected() -> None:
    c = CallbackCrypto("t", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
    from wechatpy.crypto.base import WeChatCipher

    body = b"a" * 16 + b"\x00\x00\x00\x02hi" + b"wx5823bf96d3bd56c7"
    body += b"\x05" * (32 - len(body) % 32 - 1) + b"\x09"  # last byte claims 9, the rest disagree
    forged = base64.b64encode(WeChatCipher(c.key).encrypt(body)).decode()
    with pytest.raises(CallbackCryptoError) as err:
        c.decrypt(forged)
    assert err.value.code == "bad_padding"


@pytest.mark.parametrize("garbage", ["not base64!!", "", base64.b64encode(b"short").decode()])
def test_garbage_ciphertext(garbage: str) -> None:
    c = CallbackCrypto("t", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
    with pytest.raises(CallbackCryptoError):
        c.decrypt(garbage)
