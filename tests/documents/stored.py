"""What a local store holds on disk, read the way an auditor of the data directory would:
the bytes a key names, and the bytes of packs that no key names."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select

from partage.documents.models import DocumentContent
from partage.documents.packs import PACKS, PackKey
from partage.documents.stores import LocalFileStore
from partage.platform import Platform

BLOCK = 4096


def pack_files(blobs: Path) -> list[Path]:
    return sorted((blobs / PACKS).glob("*.pack"))


def location(blobs: Path, key: str) -> tuple[Path, PackKey]:
    pack = PackKey.parse(key)
    assert pack is not None, f"not a pack key: {key}"
    return blobs / PACKS / f"{pack.volume}.pack", pack


def stored_bytes(blobs: Path, key: str) -> bytes:
    path, pack = location(blobs, key)
    with path.open("rb") as handle:
        handle.seek(pack.offset)
        return handle.read(pack.length)


def overwrite(blobs: Path, key: str, data: bytes) -> None:
    """Put `data` (as long as the content) where the content of `key` lies."""
    path, pack = location(blobs, key)
    assert len(data) == pack.length
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, pack.offset)
    finally:
        os.close(fd)


def unreleased_bytes(blobs: Path, keys: Iterable[str]) -> int:
    """Bytes of whole blocks that no key's content touches and that still hold data (not
    given back by a punched hole or a truncation): what is left behind. (A hole is punched
    in whole blocks: the bytes of a dropped content that share a block with another
    content, or the file's last partial block, are not counted.)"""
    spans: dict[str, list[tuple[int, int]]] = {}
    for key in keys:
        pack = PackKey.parse(key)
        if pack is not None:
            spans.setdefault(pack.volume, []).append((pack.offset, pack.offset + pack.length))
    left = 0
    for path in pack_files(blobs):
        named = sorted(spans.get(path.stem, []))
        size = path.stat().st_size
        for start, end in _data_extents(path):
            for low in range(start - start % BLOCK, end, BLOCK):
                high = low + BLOCK
                if high <= size and not any(a < high and low < b for a, b in named):
                    left += min(high, end) - max(low, start)
    return left


def _data_extents(path: Path) -> list[tuple[int, int]]:
    extents = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size, at = os.fstat(fd).st_size, 0
        while at < size:
            try:
                start = os.lseek(fd, at, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole from here
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, end))
            at = end
    finally:
        os.close(fd)
    return extents


def contents_held(platform: Platform) -> int:
    """How many contents the platform's local store holds, having checked that it holds
    nothing else once settled as at a restart (the packs closed, then recovered: what a
    live process drops shares blocks with what it keeps until then)."""
    repository = platform.repository
    store = repository.store
    assert isinstance(store, LocalFileStore)
    repository.close()
    repository.recover(platform.sessions)
    with platform.read_sessions() as session:
        keys = list(session.scalars(select(DocumentContent.storage_key)))
    assert unreleased_bytes(store.root, keys) == 0
    return sum(1 for key in keys if store.exists(key))
