"""Group commit: writes handed over by many threads, applied together in one transaction.

On SQLite every write transaction passes through the one writer lock, and on PostgreSQL
every commit is a WAL flush behind the audit chain's head row: one transaction per request
caps a write-heavy endpoint at the rate of commits. Here each caller hands its item over and
waits; whichever waiting thread finds the committer idle applies everything that queued (up
to `max_group`) in one transaction. Nothing is answered before the transaction holding it
has committed, and one item's refusal costs the others nothing: the group is rolled back,
the items before the refused one are applied again together, the refused one alone (its
error is its answer), then the rest. `apply_many` may also refuse some items of a group
itself (an exception in place of their result): they wrote nothing, the others commit.

No delay is added to gather a group (a group is what queued while the previous one was
being written), unless the committer is given a `linger`: callers then announce themselves
(`on_the_way`) when they start the work that ends in a submit, and a leader finding fewer
items queued than callers on their way waits up to `linger` for them. Under load that makes
fewer, larger transactions (each costs its statements and a round trip per statement, on
PostgreSQL a commit); with one caller at a time there is nobody to wait for.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from partage.db import transaction

T = TypeVar("T")
R = TypeVar("R")
MAX_GROUP = 64


@dataclass
class _Pending(Generic[T]):
    item: T
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    # Set when the item is done, or when its thread is to write the next group.
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False


class GroupCommitter(Generic[T, R]):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        apply: Callable[[Session, T], R],
        *,
        apply_many: Callable[[Session, list[T]], list[R | Exception]] | None = None,
        max_group: int = MAX_GROUP,
        linger: float = 0.0,
    ) -> None:
        """`apply` writes one item; `apply_many`, when given, writes a whole group at once
        (fewer, larger statements) and is the first thing tried on a group."""
        self._sessions = sessions
        self._apply = apply
        self._apply_many = apply_many
        self._max_group = max_group
        self._linger = linger
        self._queue: deque[_Pending[T]] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._lingering = False
        self._busy = False
        self._on_the_way = 0  # callers announced, not yet queued
        self._announced = threading.local()

    @contextmanager
    def on_the_way(self) -> Iterator[None]:
        """Around the work of a caller that will submit (see `linger`): it counts as on its
        way until it submits, or leaves without submitting."""
        with self._lock:
            self._on_the_way += 1
        self._announced.value = True
        try:
            yield
        finally:
            if getattr(self._announced, "value", False):
                self._announced.value = False
                with self._lock:
                    self._on_the_way -= 1

    def submit(self, item: T) -> R:
        """Apply `item` and return what `apply` returned, once committed; or raise what
        applying it raised (nothing of it is then stored)."""
        pending: _Pending[T] = _Pending(item)
        arrived = getattr(self._announced, "value", False)
        self._announced.value = False
        with self._lock:
            self._queue.append(pending)
            if arrived:
                self._on_the_way -= 1
            if self._lingering:
                self._arrived.notify()
            if not self._busy:
                self._busy = pending.lead = True
        # Each waiting thread sleeps on its own event: waking every waiting thread at each
        # commit to find out whose turn it is costs more than the commit under load.
        while not pending.done:
            if pending.lead:
                pending.lead = False
                self._lead()
            else:
                pending.wake.wait()
                pending.wake.clear()
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[no-any-return]

    def apply_group(self, items: list[T]) -> list[tuple[R | None, BaseException | None]]:
        """Apply `items` now, in this thread, as one group (as if they had queued together):
        each one's result or error."""
        group: list[_Pending[T]] = [_Pending(item) for item in items]
        self._apply_group(group)
        return [(p.result, p.error) for p in group]

    def _lead(self) -> None:
        """Write one group, answer its items, and hand the next group to a waiting thread
        (or leave the committer idle)."""
        with self._lock:
            if self._linger:
                self._await_stragglers()
            count = min(len(self._queue), self._max_group)
            group = [self._queue.popleft() for _ in range(count)]
        try:
            self._apply_group(group)
        finally:
            for each in group:
                if not each.done:
                    each.error = RuntimeError("the write was not applied")
                    each.done = True
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._busy = False
                else:
                    successor.lead = True
            for each in group:
                each.wake.set()
            if successor is not None:
                successor.wake.set()

    def _await_stragglers(self) -> None:
        """With the lock held: wait (up to `linger`) while callers are on their way."""
        deadline = time.monotonic() + self._linger
        self._lingering = True
        try:
            while self._on_the_way and len(self._queue) < self._max_group:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._arrived.wait(left)
        finally:
            self._lingering = False

    def _apply_group(self, group: list[_Pending[T]]) -> None:
        while group:
            if len(group) == 1:
                self._apply_alone(group[0])
                return
            if self._apply_many is not None and self._apply_together(group):
                return
            applied: list[tuple[_Pending[T], Any]] = []
            failed: _Pending[T] | None = None
            try:
                with transaction(self._sessions) as session:
                    for pending in group:
                        failed = pending
                        applied.append((pending, self._apply(session, pending.item)))
                        failed = None
            except Exception:
                done = {id(p) for p, _ in applied}
                rest = [p for p in group if id(p) not in done and p is not failed]
                if failed is None:
                    # The commit itself failed: each on its own, each gets its answer.
                    for pending, _ in applied:
                        self._apply_alone(pending)
                    group = rest
                    continue
                self._apply_group([p for p, _ in applied])
                self._apply_alone(failed)
                group = rest
                continue
            for pending, result in applied:
                pending.result, pending.done = result, True
            return

    def _apply_together(self, group: list[_Pending[T]]) -> bool:
        """The whole group in one go; False (nothing written) when anything failed, and the
        group is then applied item by item to find out which."""
        assert self._apply_many is not None
        try:
            with transaction(self._sessions) as session:
                results = self._apply_many(session, [p.item for p in group])
        except Exception:
            return False
        for pending, result in zip(group, results, strict=True):
            if isinstance(result, Exception):
                pending.error = result
            else:
                pending.result = result
            pending.done = True
        return True

    def _apply_alone(self, pending: _Pending[T]) -> None:
        try:
            with transaction(self._sessions) as session:
                pending.result = self._apply(session, pending.item)
        except Exception as error:
            pending.error = error
        pending.done = True
