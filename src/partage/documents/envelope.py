"""The encrypted form of a stored content: AES-256-GCM in segments.

A content is cut into segments of `segment_size` plain bytes (64 KiB), each encrypted on its
own with its own 16-byte tag, so that a byte range is decrypted — and authenticated — by
reading only the segments it covers, and a large file is streamed without holding it whole.

    header  = magic "PTGE" | version (1 byte) | segment size (4, big-endian) | nonce prefix (8)
    segment = AES-256-GCM(data key, nonce = prefix | index (4, big-endian), plain, aad)
    aad     = header | binding | plain size (8) | index (4) | last (1)

The data key is fresh for every content, so nonces could never repeat even without the
random prefix; the prefix costs nothing and keeps that true if a key were ever reused. The
additional data makes every segment answer for its place: its index (reordering), whether it
is the last one (truncation at a segment boundary), the plain size, the header (a changed
segment size), and `binding`, which the repository sets to the SHA-256 the content is filed
under — so a ciphertext cannot be passed off as another content's, even by someone who can
swap the key columns of the table, and a range read proves its segments belong to the
content asked for. Empty content is one empty last segment (its tag alone).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"PTGE"
VERSION = 1
SEGMENT_SIZE = 64 * 1024
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 8
KEY_SIZE = 32
_HEADER = struct.Struct(">4sBI8s")
HEADER_SIZE = _HEADER.size
# A segment must fit the 4-byte counter's 2**32 segments and stay a sensible I/O unit.
_MIN_SEGMENT, _MAX_SEGMENT = 16, 16 * 1024 * 1024


class ContentCorrupted(Exception):
    """Stored bytes that do not decrypt, or do not match what the content was filed as."""


@dataclass(frozen=True, slots=True)
class Header:
    raw: bytes
    segment_size: int
    nonce_prefix: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Header:
        if len(raw) < HEADER_SIZE:
            raise ContentCorrupted("the stored content is shorter than its header")
        raw = bytes(raw[:HEADER_SIZE])
        magic, version, segment_size, prefix = _HEADER.unpack(raw)
        if magic != MAGIC or version != VERSION:
            raise ContentCorrupted("the stored content has an unknown header")
        if not _MIN_SEGMENT <= segment_size <= _MAX_SEGMENT:
            raise ContentCorrupted("the stored content has an impossible segment size")
        return cls(raw, segment_size, prefix)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each segment of a content of `size` plain bytes lies in its stored form."""

    size: int
    segment_size: int

    @property
    def count(self) -> int:
        return max(1, -(-self.size // self.segment_size))

    @property
    def stored_size(self) -> int:
        return HEADER_SIZE + self.size + self.count * TAG_SIZE

    def plain_span(self, index: int) -> tuple[int, int]:
        start = index * self.segment_size
        return start, min(start + self.segment_size, self.size)

    def stored_span(self, first: int, last: int) -> tuple[int, int]:
        """Stored bytes [start, end) holding segments `first` to `last` inclusive."""
        start = HEADER_SIZE + first * (self.segment_size + TAG_SIZE)
        plain_end = self.plain_span(last)[1]
        return start, HEADER_SIZE + plain_end + (last + 1) * TAG_SIZE

    def covering(self, start: int, end: int) -> tuple[int, int]:
        """The first and last segments holding plain bytes [start, end), end > start."""
        return start // self.segment_size, (end - 1) // self.segment_size


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(
    data_key: bytes, plaintext: bytes, *, binding: bytes, segment_size: int = SEGMENT_SIZE
) -> bytearray:
    """The stored form of `plaintext`: header, then every segment with its tag."""
    if not _MIN_SEGMENT <= segment_size <= _MAX_SEGMENT:
        raise ValueError("segment size out of range")
    header = _HEADER.pack(MAGIC, VERSION, segment_size, os.urandom(NONCE_PREFIX_SIZE))
    layout = Layout(len(plaintext), segment_size)
    if layout.count > 2**32:
        raise ValueError("content too large for the segment counter")
    aead = AESGCM(data_key)
    prefix = header[-NONCE_PREFIX_SIZE:]
    aad_head = header + binding + layout.size.to_bytes(8, "big")
    # One buffer for the whole output, each segment encrypted straight into its place:
    # joining per-segment outputs would copy every byte once more.
    out = bytearray(layout.stored_size)
    out[:HEADER_SIZE] = header
    view, plain = memoryview(out), memoryview(plaintext)
    last = layout.count - 1
    for index in range(layout.count):
        start, end = layout.plain_span(index)
        at = HEADER_SIZE + start + index * TAG_SIZE
        counter = index.to_bytes(4, "big")
        aad = aad_head + counter + (b"\x01" if index == last else b"\x00")
        aead.encrypt_into(prefix + counter, plain[start:end], aad, view[at : at + end - start + 16])
    # Returned as is: a copy into a bytes object costs more than the encryption.
    return out


def open_segments(
    data_key: bytes,
    header: Header,
    stored: bytes | bytearray | memoryview,
    *,
    first: int,
    last: int,
    size: int,
    binding: bytes,
) -> bytearray:
    """Plain bytes of segments `first`..`last`, given their stored bytes (`stored`, which
    starts at segment `first`). Every segment's tag is checked."""
    layout = Layout(size, header.segment_size)
    if not 0 <= first <= last < layout.count:
        raise ValueError("segment out of range")
    begin, end = layout.stored_span(first, last)
    if len(stored) != end - begin:
        raise ContentCorrupted("the stored content is truncated or too long")
    aead = AESGCM(data_key)
    aad_head = header.raw + binding + size.to_bytes(8, "big")
    plain_begin = layout.plain_span(first)[0]
    out = bytearray(layout.plain_span(last)[1] - plain_begin)
    view, source = memoryview(out), memoryview(stored)
    final = layout.count - 1
    for index in range(first, last + 1):
        start, stop = layout.plain_span(index)
        at = start - plain_begin
        at_stored = at + (index - first) * TAG_SIZE
        counter = index.to_bytes(4, "big")
        aad = aad_head + counter + (b"\x01" if index == final else b"\x00")
        try:
            aead.decrypt_into(
                header.nonce_prefix + counter,
                source[at_stored : at_stored + stop - start + TAG_SIZE],
                aad,
                view[at : at + stop - start],
            )
        except InvalidTag:
            raise ContentCorrupted(f"segment {index} of the stored content fails its tag") from None
    return out


def open_all(data_key: bytes, stored: bytes, *, size: int, binding: bytes) -> bytearray:
    """Every plain byte of a stored content."""
    header = Header.parse(stored)
    layout = Layout(size, header.segment_size)
    if len(stored) != layout.stored_size:
        raise ContentCorrupted("the stored content is truncated or too long")
    body = memoryview(stored)[HEADER_SIZE:]
    return open_segments(
        data_key, header, body, first=0, last=layout.count - 1, size=size, binding=binding
    )
