"""Group commit for audit events whose action writes nothing else.

Issuing a token to a system changes no state: its only write is its audit row. Writing that
row in a transaction of its own per request makes the token endpoint as slow as one commit
(and, on SQLite, one trip through the write lock). The batcher lets each request hand its
entry over and wait until it is durable: one writer thread commits whatever has queued since
its last commit in one transaction. Nothing is answered before its audit row is committed;
under load, many rows share a commit.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future

from sqlalchemy.orm import Session, sessionmaker

from partage.audit.actions import AuditEntry, queue_entries
from partage.db import transaction

MAX_BATCH = 500
WAIT_SECONDS = 30.0

_Item = tuple[AuditEntry, "Future[None]"]


class AuditBatcher:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._started = False
        self._start_lock = threading.Lock()

    def commit(self, entry: AuditEntry) -> None:
        """Return once `entry` is committed; raise what the commit raised otherwise."""
        self._submit(entry).result(timeout=WAIT_SECONDS)

    async def commit_async(self, entry: AuditEntry) -> None:
        """The same, for the event loop: waiting for the commit blocks no thread."""
        await asyncio.wait_for(asyncio.wrap_future(self._submit(entry)), WAIT_SECONDS)

    def _submit(self, entry: AuditEntry) -> Future[None]:
        self._ensure_started()
        done: Future[None] = Future()
        self._queue.put((entry, done))
        return done

    def _ensure_started(self) -> None:
        if self._started:
            return
        with self._start_lock:
            if not self._started:
                threading.Thread(target=self._run, name="audit-batcher", daemon=True).start()
                self._started = True

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with transaction(self._sessions) as session:
                    queue_entries(session, [entry for entry, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    done.set_exception(exc)
            else:
                for _, done in batch:
                    done.set_result(None)
