"""A bulk import's records scored against the known territory ahead of their placement.

Placing a file's records is sequential — each record may join a person formed by an earlier
record of the same file — but most of the work is not: scoring a record against the
identities the territory already held when the import began reads nothing the import
changes. That part is done here, in forked processes that each take every Nth chunk of
records and hand back, in order, each record's candidate persons among the known ones
(`decide.candidate`: its best pair and the person's standing). The placement
(`importer._federate_new`) adds what only it knows: the file's own records and the known
persons they joined, which it scores itself (a known person that received a record of the
file is scored whole by the placement, never from a worker's answer).

A worker is forked once the territory's index, the model and the file's features exist,
before the import starts any thread; it uses no database connection and leaves by
`os._exit`, so nothing of the parent (connections, files, exit handlers) is run or closed
twice. Without workers (one CPU, a small file) the same scoring runs in the process, record
by record: the answers are the same either way.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
import traceback
from collections.abc import Iterator, Sequence

from partage.identity.decide import Candidate, candidate, judge
from partage.identity.engine import MemoryIndex
from partage.identity.features import Features
from partage.identity.model import MatchModel, TermFrequencies

# Records per message from a worker: large enough that pickling and the pipe cost little per
# record, small enough that the placement does not wait long for the first one.
CHUNK = 500
# Below this many new records, forking costs more than it saves (`importer`'s default).
MIN_RECORDS_FOR_WORKERS = 5_000
_LENGTH = struct.Struct("!Q")

KnownCandidates = list[Candidate[int, int]]


class WorkerFailed(RuntimeError):
    """A scoring worker ended without answering for its records."""


def known_candidates(
    f: Features,
    index: MemoryIndex,
    features: Sequence[Features],
    model: MatchModel,
    frequencies: TermFrequencies,
) -> KnownCandidates:
    """The persons of `index` that may receive `f`, each with its best pair."""
    found: KnownCandidates = []
    person_of, members = index.person_of, index.members
    for person in {person_of[j] for j in index.candidates(f)}:
        pairs = [(j, judge(f, features[j], model, frequencies)) for j in members[person]]
        if (entry := candidate(person, pairs, model)) is not None:
            found.append(entry)
    return found


def default_workers() -> int:
    """One worker per CPU, at most four; none on one CPU. (The placement and the database
    writer share the CPUs with them: the placement waits for the workers a third of its
    time with one fewer, measured on two CPUs.)"""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(4, cpus) if cpus > 1 else 0


class KnownScoring:
    """Each new record's candidate persons among the known identities, in record order.

    `index` holds the known identities only, and must not gain records while in use
    without workers (with workers, each has its own copy, taken at the fork).
    """

    def __init__(
        self,
        *,
        index: MemoryIndex,
        features: Sequence[Features],
        first: int,
        count: int,
        model: MatchModel,
        frequencies: TermFrequencies,
        workers: int,
    ) -> None:
        self._index = index
        self._features = features
        self._first = first
        self._count = count
        self._model = model
        self._frequencies = frequencies
        self._workers = workers
        self._pids: list[int] = []
        self._pipes: list[int] = []

    def __enter__(self) -> KnownScoring:
        for worker in range(self._workers):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(read)
                self._serve(worker, write)  # never returns
            os.close(write)
            self._pids.append(pid)
            self._pipes.append(read)
        return self

    def __exit__(self, *_: object) -> None:
        for read in self._pipes:
            os.close(read)
        for pid in self._pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # done, or the import failed: nothing to wait for
            os.waitpid(pid, 0)
        self._pipes, self._pids = [], []

    def __iter__(self) -> Iterator[KnownCandidates]:
        """Each record's candidates, from the first record to the last."""
        if not self._workers:
            for n in range(self._count):
                yield self._score(self._first + n)
            return
        chunks = (self._count + CHUNK - 1) // CHUNK
        for chunk in range(chunks):
            yield from self._receive(self._pipes[chunk % self._workers])

    def _score(self, i: int) -> KnownCandidates:
        return known_candidates(
            self._features[i], self._index, self._features, self._model, self._frequencies
        )

    def _serve(self, worker: int, write: int) -> None:
        code = 0
        try:
            for read in self._pipes:  # earlier workers' pipes, inherited: not this one's
                os.close(read)
            chunks = (self._count + CHUNK - 1) // CHUNK
            for chunk in range(worker, chunks, self._workers):
                start = self._first + chunk * CHUNK
                end = min(start + CHUNK, self._first + self._count)
                answer = pickle.dumps(
                    [self._score(i) for i in range(start, end)], pickle.HIGHEST_PROTOCOL
                )
                _write_all(write, _LENGTH.pack(len(answer)) + answer)
        except BrokenPipeError:
            code = 0  # the placement stopped reading: it failed or is done
        except BaseException:
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            code = 1
        finally:
            os._exit(code)

    def _receive(self, read: int) -> list[KnownCandidates]:
        length = _LENGTH.unpack(_read_exactly(read, _LENGTH.size))[0]
        answer: list[KnownCandidates] = pickle.loads(_read_exactly(read, length))  # noqa: S301 - our own child
        return answer


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int) -> bytes:
    parts: list[bytes] = []
    while size:
        part = os.read(fd, min(size, 1 << 20))
        if not part:
            raise WorkerFailed("a scoring worker of the import ended before answering")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)
