"""A bulk import's records scored against the known territory ahead of their placement.

Placing a file's records is sequential — each record may join a person formed by an earlier
record of the same file — but most of the work is not: scoring a record against the
identities the territory already held when the import began reads nothing the import
changes. `KnownScoring` does that part in forked processes that each take every Nth chunk
of records and hand back, in order, each record's candidate persons among the known ones
(`decide.candidate`: its best pair and the person's standing). `Placement`, in the
importing process, adds what only it knows: the file's own records and the known persons
they joined, which it scores itself (a known person that received a record of the file is
scored whole by the placement, never from a worker's answer).

A worker is forked once the territory's index, the model and the file's features exist,
before the import starts any thread; it uses no database connection and leaves by
`os._exit`, so nothing of the parent (connections, files, exit handlers) is run or closed
twice. Without workers (one CPU, a small file, little memory) the same scoring runs in the
process, record by record: the answers are the same either way.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import traceback
from collections.abc import Iterator, Sequence

from partage.identity.blocking import query_keys
from partage.identity.decide import Candidate, Outcome, choose
from partage.identity.engine import MemoryIndex
from partage.identity.features import Features
from partage.identity.model import MatchModel, TermFrequencies

# Records per message from a worker: large enough that pickling and the pipe cost little per
# record, small enough that the placement does not wait long for the first one.
CHUNK = 500
# Below this many new records, forking costs more than it saves (the default).
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
    persons = {index.person_of[j] for j in index.candidates(f)}
    return index.person_candidates(f, persons, features, model, frequencies)


def default_workers() -> int:
    """As many workers as CPUs, at most four, none on one CPU (the placement and the database
    writer share the CPUs with them: with one fewer, the placement waited for the workers a
    third of its time, measured on two CPUs) — and no more than half the memory available
    holds: each worker ends up with a private copy of most of the process (copy-on-write
    pages are copied as soon as Python touches an object's reference count)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    wanted = min(4, cpus) if cpus > 1 else 0
    size, available = _resident_bytes(), _available_bytes()
    if wanted and size and available is not None:
        wanted = min(wanted, available // 2 // size)
    return wanted


def _resident_bytes() -> int:
    """This process's resident memory (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _available_bytes() -> int | None:
    """The memory the system can give without swapping (None where /proc is not there)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


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
        workers: int | None,
    ) -> None:
        """`workers`: None for `default_workers()`, decided when entering (once the
        process has its full size), for `MIN_RECORDS_FOR_WORKERS` records or more."""
        self._index = index
        self._features = features
        self._first = first
        self._count = count
        self._model = model
        self._frequencies = frequencies
        self._requested = workers
        self._workers = 0
        self._pids: list[int] = []
        self._pipes: list[int] = []

    def __enter__(self) -> KnownScoring:
        if self._first == 0:
            self._workers = 0  # an empty territory: nothing to score ahead
        elif self._requested is not None:
            self._workers = self._requested
        elif self._count >= MIN_RECORDS_FOR_WORKERS:
            self._workers = default_workers()
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
        for chunk in range(self._chunks):
            yield from self._receive(self._pipes[chunk % self._workers])

    @property
    def _chunks(self) -> int:
        return (self._count + CHUNK - 1) // CHUNK

    def _score(self, i: int) -> KnownCandidates:
        return known_candidates(
            self._features[i], self._index, self._features, self._model, self._frequencies
        )

    def _serve(self, worker: int, write: int) -> None:
        code = 0
        # An interrupted import is the parent's to handle: it kills its workers on the way out.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for read in self._pipes:  # earlier workers' pipes, inherited: not this one's
                os.close(read)
            for chunk in range(worker, self._chunks, self._workers):
                start = self._first + chunk * CHUNK
                end = min(start + CHUNK, self._first + self._count)
                answer = pickle.dumps(
                    [self._score(i) for i in range(start, end)], pickle.HIGHEST_PROTOCOL
                )
                _write_all(write, _LENGTH.pack(len(answer)) + answer)
        except BrokenPipeError:
            code = 0  # the placement stopped reading: it failed or is done
        except BaseException:
            # Straight to the file descriptor: a thread of the parent (a progress display)
            # may have held `sys.stderr`'s lock at the fork, and nothing would release it.
            with contextlib.suppress(OSError):
                _write_all(2, traceback.format_exc().encode(errors="replace"))
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


class Placement:
    """Where each new record goes, in file order: its candidates among the known identities
    (`KnownScoring`, scored ahead) completed with the file's own records and the known
    persons they joined, which only the placement knows.

    The territory's `index` keeps the known identities' keys only; the file's records are
    found through keys of their own (`new`), and so are the known members of every known
    person a record of the file joined (`touched`), which is scored whole here, its members
    old and new, the ahead answer for it set aside. A key value is skipped as the scoring
    skips it: by its number of known identities for those (`found(sized_by=)`), of the
    file's for the file's.
    """

    def __init__(
        self,
        index: MemoryIndex,
        features: Sequence[Features],
        model: MatchModel,
        frequencies: TermFrequencies,
        *,
        known_persons: int,
    ) -> None:
        self._index = index
        self._features = features
        self._model = model
        self._frequencies = frequencies
        self._known_persons = known_persons  # person numbers below this: known persons
        self._touched: set[int] = set()
        self._new = MemoryIndex()  # the file's records; persons and members: the territory's
        self._new.person_of, self._new.members = index.person_of, index.members
        self._touched_keys = MemoryIndex()  # the known members of touched persons

    def place(self, i: int, known_found: list[Candidate[int, int]]) -> Outcome[int, int]:
        f = self._features[i]
        touched = self._touched
        found = [c for c in known_found if c.person not in touched] if touched else known_found
        queries = query_keys(f)
        records = self._new.found(queries)
        if touched:
            records |= self._touched_keys.found(queries, sized_by=self._index)
        persons = {self._index.person_of[j] for j in records}
        found += self._index.person_candidates(
            f, persons, self._features, self._model, self._frequencies
        )
        return choose(found)

    def add(self, i: int, person: int) -> None:
        """Record `i` placed in `person` (a known one, or one the file formed)."""
        if person < self._known_persons and person not in self._touched:
            self._touched.add(person)
            for j in self._index.members[person]:
                self._touched_keys.add_keys(j, self._features[j])
        self._new.add(i, self._features[i], person)
