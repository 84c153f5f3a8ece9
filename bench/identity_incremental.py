"""Benchmark of incremental identity matching against a large territory, with the target.

    .venv/bin/python bench/identity_incremental.py [--from DIR [--discard]] [--records N]
                                                   [--database-url URL] [--incoming N]

With N local identities already federated (default 1,000,000: reuse a data directory kept by
`bench/identity_bulk.py --keep` with `--from DIR`, or let this script load one through the
bulk importer), 1,000 new identities arrive one by one through `do_receive_identity`, each
in its own transaction as the ADT feed does: half are new records of persons the territory
knows (another establishment's record, with the generator's realistic variations: typos,
married names, swapped dates, moves…), half are persons it has never seen. They are drawn
from the same synthetic generator (same seed, so the same persons; another seed for the new
records). Printed: p50/p95/p99/max in ms of the call itself and of the whole transaction
(commit and audit included), the ratio against the target (p95 ≤ 20 ms), and what each
half became (linked to the right person, left alone, linked wrongly) against the truth.

The first calls after start-up load the model and count the population (cached for a
minute): a few warm-up identities are received first and not counted; the first call's time
is printed apart. The identities received stay in the database (their local ids are unique
to the run, and each run draws other ones), so a kept directory grows by about a thousand
per run; `--discard` removes it (and its PostgreSQL schema) at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from identity_bulk import BENCH_FILE, SEED, TARGET_RECORDS, bulk_load, database

from partage.audit.actions import Actor
from partage.config import Settings
from partage.db import transaction
from partage.identity.ins import is_valid_ins
from partage.identity.models import LocalIdentity
from partage.identity.service import IdentityInput, do_receive_identity
from partage.identity.synthetic import DEFAULT_RATES, _Generator
from partage.identity.traits import IdentityStatus, SourceRecord
from partage.platform import Platform
from partage.security.models import Establishment

P95_TARGET_MS = 20.0
INCOMING = 1000
WARM_UP = 20


def incoming_records(
    description: dict[str, Any], count: int, run: str
) -> tuple[list[tuple[SourceRecord, int, bool]], set[int]]:
    """`count` records, shuffled: half of persons the territory knows (a new record each),
    half of new persons; each with its true person number and whether that person is known.
    Also returns the persons the loaded files hold."""
    sources = description["sources"]
    seed = int(description["seed"])
    generator = _Generator(random.Random(seed), DEFAULT_RATES, sources, seed)
    generator.population(int(description["persons_generated"]))  # the loaded persons
    present: set[int] = set()
    truth = Path(description.get("csv_dir", "")) / "truth.csv"
    if truth.exists():
        with truth.open(encoding="utf-8", newline="") as stream:
            present = {int(row[2]) for row in csv.reader(stream)}
    else:
        present = {p.number for p in generator.people}
    rng = random.Random(f"{seed}/{run}")
    generator.rng = rng  # new records and new persons: another draw, one per run
    known_half = count // 2
    chosen = [generator.people[n] for n in rng.sample(sorted(present), known_half)]
    start = len(generator.people)
    generator.population(start + count - known_half)
    drafts: list[Any] = []
    for person in [*chosen, *generator.people[start:]]:
        generator.records_of(person, 0.0, 1, drafts)
    rng.shuffle(drafts)
    records = []
    for k, (source, traits, status, person, _) in enumerate(drafts):
        record = SourceRecord(sources[source], f"{run}-{k:05d}", traits, status)
        records.append((record, person, person < start))
    return records, present


def _input(record: SourceRecord) -> IdentityInput:
    """As the bulk importer reads a file: a mistyped INS (its key fails) is dropped."""
    traits, status = record.traits, record.status
    if traits.ins and not is_valid_ins(traits.ins):
        traits = replace(traits, ins="")
        if status in (IdentityStatus.qualified, IdentityStatus.recovered):
            status = IdentityStatus.provisional
    return IdentityInput(traits=traits, status=status)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _line(label: str, values: list[float]) -> str:
    p95 = percentile(values, 0.95)
    return (
        f"{label}: p50 {statistics.median(values):.1f} ms, p95 {p95:.1f} ms, p99 "
        f"{percentile(values, 0.99):.1f} ms, max {max(values):.1f} ms — target p95 ≤ "
        f"{P95_TARGET_MS:.0f} ms, ratio {P95_TARGET_MS / p95:.2f}×"
    )


def receive_all(
    platform: Platform,
    records: list[tuple[SourceRecord, int, bool]],
    profile: Path | None,
) -> tuple[list[float], list[float], list[tuple[Any, Any]]]:
    """Receive each record in its own transaction; the call's and the transaction's ms."""
    with transaction(platform.sessions) as session:
        establishments = {e.code: e for e in session.query(Establishment)}
    actors = {code: Actor(kind="system", id=code, label=f"ADT {code}") for code in establishments}
    calls: list[float] = []
    transactions: list[float] = []
    received: list[tuple[Any, Any]] = []
    profiler = cProfile.Profile() if profile else None
    gc.collect()
    for record, _, _ in records:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        with transaction(platform.sessions) as session:
            establishment = session.merge(establishments[record.source], load=False)
            called = time.perf_counter()
            result = do_receive_identity(
                session,
                establishment=establishment,
                local_id=record.local_id,
                value=_input(record),
                actor=actors[record.source],
            )
            returned = time.perf_counter()
            received.append((result.identity.id, result.verdict))
        finished = time.perf_counter()
        if profiler:
            profiler.disable()
        calls.append((returned - called) * 1000)
        transactions.append((finished - started) * 1000)
    if profiler and profile:
        profiler.dump_stats(str(profile))
    return calls, transactions, received


def outcomes(
    platform: Platform,
    description: dict[str, Any],
    records: list[tuple[SourceRecord, int, bool]],
    received: list[tuple[Any, Any]],
) -> None:
    """What each half became, against the generator's truth."""
    truth_path = Path(description.get("csv_dir", "")) / "truth.csv"
    if not truth_path.exists():
        return
    truth: dict[tuple[str, str], int] = {}
    with truth_path.open(encoding="utf-8", newline="") as stream:
        for source, local_id, person in csv.reader(stream):
            truth[(source, local_id)] = int(person)
    for record, person, _ in records:
        truth[record.key] = person
    tally: Counter[str] = Counter()
    with transaction(platform.sessions) as session:
        codes = {e.id: e.code for e in session.query(Establishment)}
        for (_, person, known), (identity_id, _) in zip(records, received, strict=True):
            identity = session.get(LocalIdentity, identity_id)
            assert identity is not None
            others = session.query(LocalIdentity.establishment_id, LocalIdentity.local_id).filter(
                LocalIdentity.person_id == identity.person_id, LocalIdentity.id != identity_id
            )
            found = [truth.get((codes[e], local)) for e, local in others]
            persons = {p for p in found if p is not None}
            half = "known person" if known else "new person"
            if not found:
                tally[f"{half}: alone"] += 1
            elif not persons:  # identities received by an earlier run on this directory
                tally[f"{half}: linked to earlier runs' identities only"] += 1
            elif persons == {person}:
                tally[f"{half}: linked to the right person"] += 1
            else:
                tally[f"{half}: linked to another person"] += 1
    print("outcomes: " + "; ".join(f"{k} {v}" for k, v in sorted(tally.items())))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--from", dest="source", type=Path, help="a data dir kept by the bulk bench"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PARTAGE_BENCH_DATABASE_URL", ""),
        help="PostgreSQL URL to load into (without --from; default: embedded SQLite)",
    )
    parser.add_argument("--records", type=int, default=TARGET_RECORDS)
    parser.add_argument("--incoming", type=int, default=INCOMING)
    parser.add_argument(
        "--csv-dir", type=Path, help="generated files to reuse (see the bulk bench)"
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of the timed calls here")
    parser.add_argument(
        "--discard",
        action="store_true",
        help="with --from: remove that directory (and its PostgreSQL schema) at the end",
    )
    args = parser.parse_args()
    if args.source is not None:
        try:
            run(args.source, args.incoming, args.profile)
        finally:
            if args.discard:
                discard(args.source)
        return
    with tempfile.TemporaryDirectory(prefix="partage-identity-bench-") as tmp:
        data_dir = Path(tmp)
        with database(args.database_url, data_dir, keep=False) as url:
            backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
            print(f"loading {args.records:,} identities ({backend}) through the bulk importer")
            csv_dir = args.csv_dir or data_dir / "csv"
            bulk_load(data_dir, url, csv_dir, args.records, SEED)
            run(data_dir, args.incoming, args.profile)


def discard(data_dir: Path) -> None:
    """Remove a kept data directory, and the PostgreSQL schema its database URL names."""
    import re
    import shutil

    from sqlalchemy import create_engine, text

    description = json.loads((data_dir / BENCH_FILE).read_text())
    url = description["database_url"]
    schema = re.search(r"search_path%3D(bench_[0-9a-f]+)", url)
    if url.startswith("postgresql") and schema:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema.group(1)}" CASCADE'))
        engine.dispose()
    shutil.rmtree(data_dir, ignore_errors=True)


def run(data_dir: Path, incoming: int, profile: Path | None) -> None:
    description = json.loads((data_dir / BENCH_FILE).read_text())
    url = description["database_url"]
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    tag = f"I{int(time.time()) % 10**7:07d}"
    started = time.perf_counter()
    records, present = incoming_records(description, incoming + WARM_UP, tag)
    gc.collect()
    prepared = time.perf_counter() - started
    warm_up, timed = records[:WARM_UP], records[WARM_UP:]
    platform = Platform.create(Settings(data_dir=data_dir, database_url=url))
    try:
        with transaction(platform.sessions) as session:
            known = session.query(LocalIdentity).filter(LocalIdentity.active).count()
        print(
            f"Partage incremental identity matching — {backend}, {os.cpu_count()} CPUs, "
            f"{known:,} identities known ({len(present):,} persons in the files), {len(timed):,} "
            f"incoming (half known persons), drawn in {prepared:.0f} s"
        )
        warm_calls, _, _ = receive_all(platform, warm_up, None)
        print(
            f"warm-up: {len(warm_up)} identities, first call {warm_calls[0]:.0f} ms (model "
            f"and population count loaded, cold caches), then median "
            f"{statistics.median(warm_calls[1:]):.1f} ms"
        )
        calls, transactions, received = receive_all(platform, timed, profile)
        verdicts = Counter(v.value if v else "none" for _, v in received)
        print(_line("do_receive_identity", calls))
        print(_line("whole transaction (with commit and audit)", transactions))
        print("verdicts: " + ", ".join(f"{k} {n}" for k, n in sorted(verdicts.items())))
        outcomes(platform, description, timed, received)
    finally:
        platform.close()


if __name__ == "__main__":
    main()
