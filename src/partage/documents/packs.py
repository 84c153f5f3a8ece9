"""Append-only pack files: how the local store keeps deposited contents (ADR 0012).

A file per content costs, at each deposit, an inode made, the file and its directory
fsynced, a rename; at a country's scale it also means billions of inodes. Here a process
appends the encrypted contents it deposits to a pack of its own, `packs/<volume>.pack`,
and a content's key says where it lies: `p<volume><offset><length>` (16, 12 and 10 hex
digits). Appends made at the same moment by several threads share one `fdatasync`.

A content is appended and synced before the transaction naming it commits, so a committed
row always names durable bytes. Bytes no committed row names (a deposit refused or rolled
back, a content another deposit stored first, a process killed mid-deposit) are given back
to the file system by punching a hole where they lie: at once by the live process, and by
`recover` for a dead process's packs — it truncates what follows the last content a row
names and punches the gaps. A process holds `packs/<owner>.lock` with `flock` while it lives
(its packs are `<owner><seq>`): the kernel drops the lock however the process dies, so
recovery tells a dead process's packs from a live one's without trusting a pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from partage.documents.durable import dead_owners, fsync_directory

log = logging.getLogger(__name__)

PACKS = "packs"
# A new pack once the current one holds this much (a pack is never appended to by another
# process, nor after its process ends).
PACK_BYTES = 1 << 30
_PACK_KEY = re.compile(r"^p([0-9a-f]{16})([0-9a-f]{12})([0-9a-f]{10})$")
_OWNER_HEX = 12
_SEQ_HEX = 4
_VOLUME = re.compile(r"^[0-9a-f]{16}$")


class PackKey(NamedTuple):
    volume: str
    offset: int
    length: int

    @classmethod
    def parse(cls, key: str) -> PackKey | None:
        """The pack location a key names; None for a key that is not a pack key."""
        match = _PACK_KEY.match(key)
        if match is None:
            return None
        volume, offset, length = match.groups()
        return cls(volume, int(offset, 16), int(length, 16))

    def __str__(self) -> str:
        return f"p{self.volume}{self.offset:012x}{self.length:010x}"

    @property
    def end(self) -> int:
        return self.offset + self.length

    @staticmethod
    def bounds(volume: str) -> tuple[str, str]:
        """The lowest and highest key of a volume: keys of one volume are all this long and
        hexadecimal, so any collation orders them between these two."""
        return f"p{volume}{'0' * 22}", f"p{volume}{'f' * 22}"


def is_pack_key(key: str) -> bool:
    return _PACK_KEY.match(key) is not None


@dataclass(eq=False)
class _Volume:
    name: str
    fd: int
    end: int = 0  # bytes reserved so far
    writing: int = 0  # appends reserved, not yet written
    retired: bool = False  # a newer volume takes the appends; close once `writing` is 0
    # Group sync: appends completed (numbered), the number covered by the last sync.
    completed: int = 0
    synced: int = 0
    syncing: bool = False
    synced_changed: threading.Condition = field(default_factory=threading.Condition)


class PackArea:
    """The packs this process appends to, under `root/packs`."""

    def __init__(self, root: Path) -> None:
        self.directory = root / PACKS
        self._lock = threading.Lock()
        self._owner: str | None = None
        self._owner_pid = 0
        self._lock_fd: int | None = None
        self._volume: _Volume | None = None
        self._sequence = 0

    # -- writing ---------------------------------------------------------------------------

    def append(self, data: bytes | bytearray | memoryview) -> str:
        """Write `data` durably at the end of this process's current pack; its key."""
        length = len(data)
        with self._lock:
            volume = self._current(length)
            offset = volume.end
            volume.end += length
            volume.writing += 1
        try:
            view = memoryview(data)
            written = 0
            while written < length:
                written += os.pwrite(volume.fd, view[written:], offset + written)
            self._sync(volume)
        except BaseException:
            self._release(volume)
            with contextlib.suppress(OSError):
                self.discard(PackKey(volume.name, offset, length))
            raise
        self._release(volume)
        return str(PackKey(volume.name, offset, length))

    def discard(self, key: PackKey) -> None:
        """Give the bytes of a content no row names back to the file system (best effort:
        recovery of a dead process's packs does it again)."""
        try:
            fd = os.open(self.directory / f"{key.volume}.pack", os.O_WRONLY)
        except FileNotFoundError:
            return
        try:
            punch_hole(fd, key.offset, key.length)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Stop appending: close the current pack and drop the lock. The lock file stays:
        the next recovery settles these packs as a dead process's (a hole this process
        could not punch is punched then)."""
        with self._lock:
            if self._owner is None or self._owner_pid != os.getpid():
                return
            volume, self._volume = self._volume, None
            if volume is not None:
                self._retire(volume)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
            self._owner, self._lock_fd = None, None

    def _current(self, length: int) -> _Volume:
        """With the lock held: the volume to append `length` bytes to."""
        if self._owner is None or self._owner_pid != os.getpid():
            # A forked child gets packs of its own: its parent's lock is not its to rely on.
            self._take_ownership()
        volume = self._volume
        if volume is not None and volume.end and volume.end + length > PACK_BYTES:
            self._retire(volume)
            volume = None
        if volume is None:
            volume = self._volume = self._new_volume()
        return volume

    def _take_ownership(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = secrets.token_hex(_OWNER_HEX // 2)
        fd = os.open(self.directory / f"{owner}.lock", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._owner, self._owner_pid, self._lock_fd = owner, os.getpid(), fd
        self._volume, self._sequence = None, 0

    def _new_volume(self) -> _Volume:
        assert self._owner is not None
        if self._sequence >= 16**_SEQ_HEX:
            self._take_ownership()  # an owner name has run out of volumes: a new one
        assert self._owner is not None
        name = f"{self._owner}{self._sequence:0{_SEQ_HEX}x}"
        self._sequence += 1
        fd = os.open(self.directory / f"{name}.pack", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        # The pack's (and the lock's) names made durable before anything in it is relied on.
        fsync_directory(self.directory)
        return _Volume(name, fd)

    def _sync(self, volume: _Volume) -> None:
        """Make this thread's completed append durable, with one fdatasync for every append
        completed before it starts (group sync)."""
        changed = volume.synced_changed
        with changed:
            volume.completed += 1
            mine = volume.completed
            while volume.synced < mine:
                if volume.syncing:
                    changed.wait()
                    continue
                volume.syncing = True
                covered = volume.completed
                changed.release()
                try:
                    os.fdatasync(volume.fd)
                finally:
                    changed.acquire()
                    volume.syncing = False
                    changed.notify_all()
                volume.synced = max(volume.synced, covered)

    def _release(self, volume: _Volume) -> None:
        with self._lock:
            volume.writing -= 1
            if volume.retired and not volume.writing:
                os.close(volume.fd)

    def _retire(self, volume: _Volume) -> None:
        """With the lock held: no more appends to this volume; its file is closed now, or
        by the last append still writing to it (`_release`). Nothing to sync: what was
        appended is durable once its own append returned, and nothing else counts."""
        volume.retired = True
        if not volume.writing:
            os.close(volume.fd)

    # -- recovery --------------------------------------------------------------------------

    def recover(self, named: Callable[[str], Sequence[str]]) -> int:
        """Settle the packs of dead processes: the bytes after the last content a row names
        truncated, the gaps between named contents punched, a pack no row names removed.
        `named(volume)` returns the keys rows hold in that volume. Returns the number of
        spans given back. Live processes' packs are not touched."""
        if not self.directory.exists():
            return 0
        given_back = 0
        for lock_path in dead_owners(self.directory, skip=self._owner):
            owner = lock_path.stem
            for pack in sorted(self.directory.glob(f"{owner}*.pack")):
                if _VOLUME.match(pack.stem):
                    given_back += self._settle(pack, named(pack.stem))
            fsync_directory(self.directory)
            # Last: packs are never left without their lock file while unsettled.
            lock_path.unlink(missing_ok=True)
        return given_back

    def _settle(self, pack: Path, keys: Sequence[str]) -> int:
        spans = sorted(
            (k.offset, k.end) for k in (PackKey.parse(key) for key in keys) if k is not None
        )
        if not spans:
            pack.unlink()
            return 1
        fd = os.open(pack, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            end = max(stop for _, stop in spans)
            if end > size:
                log.error("pack %s is shorter than its contents: %d < %d bytes", pack, size, end)
            given_back = 0
            if size > end:
                os.ftruncate(fd, end)
                given_back += 1
            at = 0
            for start, stop in spans:
                if start > at:
                    punch_hole(fd, at, start - at)
                    given_back += 1
                at = max(at, stop)
            os.fsync(fd)
            return given_back
        finally:
            os.close(fd)


# -- file system helpers -----------------------------------------------------------------------

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc: ctypes.CDLL | None = None


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Free the blocks of [offset, offset + length) (they read as zeros); False where the
    file system cannot (the bytes then stay, encrypted, until the pack is compacted)."""
    global _libc
    if length <= 0:
        return True
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    flags = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
    if _libc.fallocate(fd, flags, offset, length) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EOPNOTSUPP, errno.ENOSYS):
        log.warning("this file system cannot punch holes: unused pack bytes stay")
        return False
    raise OSError(error, os.strerror(error))
