"""Pack files: appends from many threads at once, each durable and where its key says; new
packs past the size limit; a failed sync leaves nothing behind."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from partage.documents import packs
from partage.documents.packs import PackArea, PackKey
from partage.documents.stores import BlobNotFound, LocalFileStore
from tests.documents.stored import pack_files, unreleased_bytes


def test_concurrent_appends_each_land_where_their_key_says(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    contents = [os.urandom(1000 + 37 * i) for i in range(64)]
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(store.append, contents))
    located = sorted(k for k in (PackKey.parse(key) for key in keys) if k is not None)
    assert len(located) == len(set(keys)) == 64
    # One pack, filled without gaps or overlaps.
    assert len({k.volume for k in located}) == 1
    assert [k.offset for k in located] == [0] + [k.end for k in located[:-1]]
    assert [store.get(key) for key in keys] == contents
    assert store.get_range(keys[5], 10, 20) == contents[5][10:20]
    assert unreleased_bytes(tmp_path, keys) == 0


def test_appends_share_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(packs.os, "fdatasync", counting)
    area = PackArea(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(area.append, [os.urandom(50_000)] * 200))
    # Never more syncs than appends; under contention, fewer (not asserted: timing).
    assert 1 <= len(synced) <= 200


def test_a_new_pack_past_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packs, "PACK_BYTES", 10_000)
    store = LocalFileStore(tmp_path)
    contents = [os.urandom(4000) for _ in range(7)]
    keys = [store.append(c) for c in contents]
    volumes = [PackKey.parse(k).volume for k in keys]  # type: ignore[union-attr]
    assert len(set(volumes)) == 4  # two contents of 4,000 bytes per pack of 10,000
    assert [store.get(k) for k in keys] == contents
    # One owner: the packs share its lock, and recovery keeps away while it lives.
    assert len(list((tmp_path / "packs").glob("*.lock"))) == 1
    assert PackArea(tmp_path).recover(lambda volume: []) == 0
    assert len(pack_files(tmp_path)) == 4


def test_a_failed_sync_gives_the_bytes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalFileStore(tmp_path)
    kept = store.append(os.urandom(20_000))

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(packs.os, "fdatasync", failing)
    with pytest.raises(OSError, match="Input/output"):
        store.append(os.urandom(30_000))
    monkeypatch.undo()
    assert unreleased_bytes(tmp_path, [kept]) == 0
    after = store.append(b"next")  # the pack goes on after the failed bytes
    assert store.get(after) == b"next"


@pytest.mark.parametrize(
    "key",
    [
        "p../../etc/passwd",
        "p" + "0" * 37,
        "P" + "0" * 38,
        "p" + "g" * 38,
        "0" * 32 + "/x",
    ],
)
def test_keys_are_only_what_the_store_makes(tmp_path: Path, key: str) -> None:
    store = LocalFileStore(tmp_path)
    assert PackKey.parse(key) is None
    with pytest.raises((ValueError, BlobNotFound)):
        store.get(key)


def test_a_key_past_the_end_of_its_pack_is_missing(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    key = PackKey.parse(store.append(b"abc"))
    assert key is not None
    beyond = str(key._replace(length=10))
    assert not store.exists(beyond)
    with pytest.raises(BlobNotFound):
        store.get(beyond)
