"""AES-256-CBC of the KIS execution notices (specs/kis.md §6.4).

The subscribe ack of H0STCNI0/H0STCNI9 carries ``output.key`` (32 ASCII characters) and
``output.iv`` (16 ASCII characters); each notice payload is base64(AES-256-CBC(PKCS#7(text))).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import string

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class NoticeDecryptError(ValueError):
    """The payload is not valid base64/AES-CBC/PKCS#7 under the given key and IV."""


def _cipher(key: str, iv: str) -> Cipher:
    kb, ivb = key.encode("ascii"), iv.encode("ascii")
    if len(kb) != 32:
        raise NoticeDecryptError(f"AES-256 key must be 32 bytes, got {len(kb)}")
    if len(ivb) != 16:
        raise NoticeDecryptError(f"AES-CBC IV must be 16 bytes, got {len(ivb)}")
    return Cipher(algorithms.AES(kb), modes.CBC(ivb))


def decrypt_notice(key: str, iv: str, payload_b64: str) -> str:
    try:
        data = base64.b64decode(payload_b64, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise NoticeDecryptError(f"notice payload is not base64: {exc}") from exc
    if not data or len(data) % 16:
        raise NoticeDecryptError(f"ciphertext length {len(data)} is not a positive multiple of 16")
    decryptor = _cipher(key, iv).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise NoticeDecryptError("bad PKCS#7 padding (wrong key or IV?)") from exc
    return plain.decode("utf-8")


def encrypt_notice(key: str, iv: str, text: str) -> str:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(text.encode("utf-8")) + padder.finalize()
    encryptor = _cipher(key, iv).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def new_key_iv() -> tuple[str, str]:
    """A fresh (key, iv) pair of printable ASCII, as the KIS acks carry."""
    alphabet = string.ascii_letters + string.digits
    return ("".join(secrets.choice(alphabet) for _ in range(32)), "".join(secrets.choice(alphabet) for _ in range(16)))
