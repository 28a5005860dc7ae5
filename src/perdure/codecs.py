"""Payload codecs: compression and encryption of payloads at rest.

Pass them to a :class:`~perdure.DataConverter`, in the order they apply on the way in::

    converter = perdure.DataConverter(
        [ZlibCodec(), AesGcmCodec({"2024-06": key}, active="2024-06")]
    )
    client = await perdure.Client.connect(url, converter=converter)

Compress first, then encrypt (ciphertext does not compress). Every process that reads
the payloads (workers, clients, the CLI) needs the same codecs and keys.
:class:`AesGcmCodec` needs the ``cryptography`` package (``pip install 'perdure[crypto]'``).
Imports only the standard library (and ``cryptography`` when an AesGcmCodec is created).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["AesGcmCodec", "ZlibCodec"]

_STORED, _DEFLATED = b"\x00", b"\x01"
_AES_MAGIC = b"\xa7\x01"  # format marker and version of AesGcmCodec's output
_NONCE = 12


class ZlibCodec:
    """zlib compression for payloads of at least ``min_size`` bytes.

    Output is one marker byte (stored / deflated) and the data; a payload is stored
    as is when it is small or when compressing would not make it smaller.
    """

    def __init__(self, min_size: int = 256, level: int = 6) -> None:
        if min_size < 0:
            raise ValueError(f"min_size must be 0 or more, not {min_size}")
        if not -1 <= level <= 9:
            raise ValueError(f"zlib level must be -1..9, not {level}")
        self.min_size = min_size
        self.level = level

    def encode(self, data: bytes) -> bytes:
        if len(data) >= self.min_size:
            packed = zlib.compress(data, self.level)
            if len(packed) < len(data):
                return _DEFLATED + packed
        return _STORED + data

    def decode(self, data: bytes) -> bytes:
        marker, body = data[:1], data[1:]
        if marker == _STORED:
            return body
        if marker == _DEFLATED:
            try:
                return zlib.decompress(body)
            except zlib.error as error:
                raise ValueError(f"ZlibCodec: damaged compressed payload: {error}") from None
        raise ValueError(
            f"ZlibCodec: not a ZlibCodec payload (marker {marker!r}); are the codecs "
            f"configured in the same order as when it was written?"
        )


class AesGcmCodec:
    """AES-GCM authenticated encryption, with key rotation.

    ``keys`` maps key ids to 16-, 24- or 32-byte AES keys; new payloads are encrypted
    with ``keys[active]``. Each payload carries its key id (authenticated, not secret),
    so after a rotation — add the new key, make it active, keep the old one — payloads
    written under the old key still decrypt. Remove a key only once no open run, and no
    history you may still replay, holds payloads written with it.

    Output: marker (2 bytes), key id length (1 byte), key id, a random 96-bit nonce,
    then the ciphertext and its 16-byte tag. Rotate keys well before 2**32 payloads
    per key (the bound for random nonces).
    """

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:  # pragma: no cover - depends on the installation
            raise ImportError(
                "AesGcmCodec needs the 'cryptography' package: pip install 'perdure[crypto]'"
            ) from None
        if active not in keys:
            raise ValueError(f"the active key id {active!r} is not among the keys given")
        self._ciphers: dict[bytes, AESGCM] = {}
        for key_id, key in keys.items():
            ident = key_id.encode("utf-8")
            if not 0 < len(ident) < 256:
                raise ValueError(f"key id {key_id!r} must be 1 to 255 bytes of UTF-8")
            if not isinstance(key, (bytes, bytearray)) or len(key) not in (16, 24, 32):
                raise ValueError(
                    f"key {key_id!r} must be 16, 24 or 32 bytes (AES-128/192/256); "
                    f"make one with os.urandom(32)"
                )
            self._ciphers[ident] = AESGCM(bytes(key))
        self.active = active
        self._header = _AES_MAGIC + bytes([len(active.encode())]) + active.encode("utf-8")

    @property
    def key_ids(self) -> list[str]:
        return sorted(k.decode("utf-8") for k in self._ciphers)

    def encode(self, data: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        cipher = self._ciphers[self._header[3:]]
        # The header is authenticated: a payload cannot be passed off as another key's.
        return self._header + nonce + cipher.encrypt(nonce, data, self._header)

    def decode(self, data: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        if data[:2] != _AES_MAGIC or len(data) < 3:
            raise ValueError("AesGcmCodec: not an AesGcmCodec payload (unknown format marker)")
        end = 3 + data[2]
        ident, nonce, sealed = data[3:end], data[end : end + _NONCE], data[end + _NONCE :]
        cipher = self._ciphers.get(ident)
        if cipher is None:
            raise ValueError(
                f"AesGcmCodec: payload was encrypted with key id "
                f"{ident.decode('utf-8', 'replace')!r}, which is not configured "
                f"(configured: {', '.join(self.key_ids)})"
            )
        if len(nonce) != _NONCE or len(sealed) < 16:
            raise ValueError("AesGcmCodec: truncated payload")
        try:
            return bytes(cipher.decrypt(nonce, sealed, data[:end]))
        except InvalidTag:
            raise ValueError(
                f"AesGcmCodec: payload failed authentication under key id "
                f"{ident.decode('utf-8', 'replace')!r}: wrong key material, or the "
                f"payload was altered"
            ) from None
