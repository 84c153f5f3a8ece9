"""Helpers for files that must survive a crash: a directory's entries made durable, and the
locks by which a process's files are known to be its own while it lives."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Make the entries of `path` (a file created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dead_owners(directory: Path, *, skip: str | None = None) -> Iterator[Path]:
    """The `*.lock` files of `directory` whose process is dead, each yielded with its lock
    held, while the caller settles what that process left; the caller removes the lock file
    last. A process holds its lock with `flock` for as long as it lives: the kernel drops it
    however the process dies, and a reused pid cannot fake it. `skip`: a lock file's stem
    to leave alone (the caller's own)."""
    for lock_path in sorted(directory.glob("*.lock")):
        if lock_path.stem == skip:
            continue
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            continue  # another recovery just finished it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive (or another recovery holds it)
            yield lock_path
        finally:
            os.close(fd)
