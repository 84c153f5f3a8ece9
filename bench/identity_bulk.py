"""Benchmark of the bulk federation of patient identities, with the identity issue's target.

    .venv/bin/python bench/identity_bulk.py [--records N] [--database-url URL]
                                            [--keep | --data-dir DIR] [--csv-dir DIR]

A synthetic French population (`partage.identity.synthetic`: about 550,000 persons for the
default 1,000,000 local identities, with their twins, namesakes, typos, married names…) is
written as one CSV per establishment (five of them), and each file is federated in turn by
the real command, `partage identities import FILE --source CODE`, on a fresh database: the
first file against nothing, the last against everything the others brought. Printed per
file and in total: wall time, CPU time, rows/s, the command's peak RSS (`wait4`) and the
peak memory of the command with its scoring workers (sum of PSS, sampled), and the
ratio against the target (1,000,000 identities federated in at most 10 minutes, start-up of
each command included). Then the counts from `partage identities links` (identities, persons)
set against the generator's truth, with pairwise precision and recall.

On a 2-core machine shared with other work, wall time swings with the load: CPU time is the
steadier figure, and both are printed.

`--keep` keeps the data directory (and on PostgreSQL the schema), described in its
`bench.json`, for `bench/identity_incremental.py --from DIR` (`--data-dir DIR`: that
directory, kept, instead of a temporary one). `--csv-dir` keeps the generated
files there and reuses them when they match (same records and seed): generating 1,000,000
records takes a minute or two. On PostgreSQL each run works in a schema of its own, dropped
at the end unless kept.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET_RECORDS = 1_000_000
TARGET_SECONDS = 600.0
# A territory's hospitals (the generator's Vienne), as in the accuracy benchmark.
SOURCES = ("CHU-POITIERS", "CH-CHATELLERAULT", "GHNV", "CH-LOUDUN", "CLINIQUE-FONTAINE")
RECORDS_PER_PERSON = 1.8  # the generator's default gives 1.82: a little more, then cut
SEED = 86
MANIFEST = "manifest.json"
BENCH_FILE = "bench.json"


@dataclass
class Command:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    output: str
    peak_tree_mb: float = 0.0  # with the children's (PSS)


def run_command(env: dict[str, str], arguments: list[str], *, module: bool = True) -> Command:
    """Run `partage ARGUMENTS` (or a script) to its end: wall and CPU time, peak RSS, stdout.

    Spawned, not forked: a child's peak RSS as `wait4` reports it is at least its parent's
    RSS at the time it was started, and this process stays small."""
    argv = [sys.executable, "-m", "partage", *arguments] if module else [sys.executable, *arguments]
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        pid = os.posix_spawn(
            sys.executable, argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, output.fileno(), 1)]
        )
        sampler = TreeMemory(pid)
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - started
        sampler.stop()
        output.seek(0)
        text = output.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(arguments[:3])} failed:\n{text[-4000:]}")
    return Command(
        seconds,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        text,
        sampler.peak / 2**20,
    )


class TreeMemory:
    """The peak of a process's memory with its children's (the import's scoring workers),
    sampled twice a second: the sum of their proportional set sizes (PSS: a page shared by
    n processes counts 1/n in each), so that pages still shared after a fork count once.
    `wait4`'s peak RSS is one process's own. 0 where /proc has no smaps_rollup."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._pid = pid
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(0.5):
            self.peak = max(self.peak, sum(_pss(p) for p in _tree(self._pid)))


def _tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [root], [root]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        found.extend(frontier)
    return found


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def environment(data_dir: Path, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PARTAGE_DATA_DIR": str(data_dir),
        "PARTAGE_DATABASE_URL": database_url,
        "PARTAGE_LOG_LEVEL": "WARNING",
    }


@contextmanager
def database(base_url: str, data_dir: Path, *, keep: bool) -> Iterator[str]:
    """SQLite in the data directory, or a fresh schema of the PostgreSQL database."""
    if not base_url:
        yield f"sqlite:///{data_dir / 'partage.db'}"
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        if not keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --- the population ----------------------------------------------------------------------


def persons_for(records: int) -> int:
    return max(1, math.ceil(records / RECORDS_PER_PERSON))


def write_population(directory: Path, records: int, seed: int) -> dict[str, Any]:
    """One CSV per establishment, the truth (source, local id, person), and a manifest."""
    from partage.identity.synthetic import generate_population, write_import_csvs

    persons = persons_for(records)
    population = generate_population(persons=persons, sources=SOURCES, seed=seed)
    if len(population) < records:
        raise RuntimeError(f"{len(population)} records generated, {records} wanted")
    population = population[:records]  # shuffled: the cut takes any records
    paths = write_import_csvs(directory, population)
    with (directory / "truth.csv").open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        for item in population:
            writer.writerow((item.record.source, item.record.local_id, item.person))
    rows = Counter(item.record.source for item in population)
    manifest = {
        "records": records,
        "seed": seed,
        "persons_generated": persons,
        "persons": len({item.person for item in population}),
        "sources": list(SOURCES),
        "files": {source: paths[source].name for source in SOURCES if source in paths},
        "rows": dict(rows),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def population_files(directory: Path, records: int, seed: int) -> tuple[dict[str, Any], float]:
    """The files for (records, seed): reused when `directory` has them, else generated in a
    process of its own (see `run_command`). Returns the manifest and the seconds spent."""
    found = directory / MANIFEST
    if found.exists():
        manifest = json.loads(found.read_text())
        if manifest.get("records") == records and manifest.get("seed") == seed:
            return manifest, 0.0
    directory.mkdir(parents=True, exist_ok=True)
    script = str(Path(__file__).resolve())
    arguments = [script, "--generate", str(directory), "--records", str(records)]
    run = run_command(dict(os.environ), [*arguments, "--seed", str(seed)], module=False)
    return json.loads(found.read_text()), run.seconds


def create_establishments(env: dict[str, str], sources: list[str]) -> None:
    run_command(env, ["db", "upgrade"])
    for code in sources:
        run_command(env, ["establishments", "create", "--name", code, "--domain", code, "--json"])


# --- the run -----------------------------------------------------------------------------


def import_files(env: dict[str, str], csv_dir: Path, manifest: dict[str, Any]) -> float:
    """Import each file with the real command; print a line per file and the total."""
    total = cpu = 0.0
    rows_done = peak = peak_tree = 0
    known = 0
    for source in manifest["sources"]:
        name = manifest["files"].get(source)
        if name is None:
            continue
        run = run_command(
            env, ["identities", "import", str(csv_dir / name), "--source", source, "--json"]
        )
        summary = json.loads(run.output)
        rows = int(summary["rows"])
        total += run.seconds
        cpu += run.cpu_seconds
        rows_done += rows
        peak = max(peak, int(run.peak_rss_mb))
        peak_tree = max(peak_tree, int(run.peak_tree_mb))
        print(
            f"  {source:<18} {rows:>9,} rows against {known:>9,} known: {run.seconds:7.1f} s "
            f"wall ({rows / run.seconds:7,.0f} rows/s), {run.cpu_seconds:7.1f} s CPU, peak RSS "
            f"{run.peak_rss_mb:6,.0f} MB (with workers {run.peak_tree_mb:6,.0f} MB); "
            f"created {summary['created']:,}, linked "
            f"{summary['linked']:,}, to review {summary['reviews']:,}, rejected "
            f"{len(summary['rejected']):,}, warnings {len(summary['warnings']):,}",
            flush=True,
        )
        known += int(summary["created"])
    target = TARGET_SECONDS * rows_done / TARGET_RECORDS
    scaled = "" if rows_done == TARGET_RECORDS else f" (scaled to {rows_done:,} rows)"
    print(
        f"total: {rows_done:,} identities in {total:.1f} s wall ({rows_done / total:,.0f} rows/s),"
        f" {cpu:.1f} s CPU, peak RSS {peak:,} MB (with workers {peak_tree:,} MB) — target "
        f"≤ {target:.0f} s{scaled}, ratio "
        f"{target / total:.2f}×"
    )
    return total


def links_summary(env: dict[str, str], truth_path: Path) -> None:
    """Counts from `partage identities links`, and pairwise precision/recall vs the truth."""
    run = run_command(env, ["identities", "links"])
    found: dict[tuple[str, str], str] = {}
    reader = csv.reader(run.output.splitlines())
    next(reader)
    for source, local_id, person in reader:
        found[(source, local_id)] = person
    truth: dict[tuple[str, str], str] = {}
    with truth_path.open(encoding="utf-8", newline="") as stream:
        for source, local_id, person in csv.reader(stream):
            truth[(source, local_id)] = person
    persons = len(set(found.values()))
    true_persons = len(set(truth.values()))
    # Pairs: same found person and same true person, counted by cluster intersections.
    both: Counter[tuple[str, str]] = Counter()
    by_found: Counter[str] = Counter()
    by_truth: Counter[str] = Counter()
    for key, person in found.items():
        by_found[person] += 1
        true = truth.get(key)
        if true is not None:
            by_truth[true] += 1
            both[(person, true)] += 1

    def pairs(counts: Counter[Any]) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    correct, predicted, actual = pairs(both), pairs(by_found), pairs(by_truth)
    precision = correct / predicted if predicted else 1.0
    recall = correct / actual if actual else 1.0
    sizes: defaultdict[int, int] = defaultdict(int)
    for n in by_found.values():
        sizes[min(n, 6)] += 1
    print(
        f"`partage identities links` ({run.seconds:.1f} s): {len(found):,} identities, "
        f"{persons:,} persons (truth: {true_persons:,}); pairs: precision {precision:.4f}, "
        f"recall {recall:.4f} ({correct:,} of {actual:,} true pairs, {predicted - correct:,} "
        f"false); persons by identities: "
        + ", ".join(f"{k if k < 6 else '6+'}: {v:,}" for k, v in sorted(sizes.items()))
    )


def bulk_load(
    data_dir: Path, database_url: str, csv_dir: Path, records: int, seed: int
) -> dict[str, Any]:
    """Generate (or reuse) the files, create the establishments, import every file; write
    `bench.json` in the data directory (for the incremental benchmark)."""
    manifest, generated = population_files(csv_dir, records, seed)
    if generated:
        print(
            f"population: {manifest['records']:,} records of {manifest['persons']:,} persons "
            f"across {len(manifest['files'])} establishments, generated in {generated:.0f} s",
            flush=True,
        )
    else:
        print(f"population: {manifest['records']:,} records reused from {csv_dir}", flush=True)
    env = environment(data_dir, database_url)
    create_establishments(env, manifest["sources"])
    seconds = import_files(env, csv_dir, manifest)
    description = {
        "database_url": database_url,
        "csv_dir": str(csv_dir),
        "import_seconds": seconds,
        **{k: manifest[k] for k in ("records", "seed", "persons_generated", "persons", "sources")},
    }
    (data_dir / BENCH_FILE).write_text(json.dumps(description, indent=2))
    return description


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PARTAGE_BENCH_DATABASE_URL", ""),
        help="PostgreSQL URL to bench on (default: embedded SQLite)",
    )
    parser.add_argument("--records", type=int, default=TARGET_RECORDS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--keep", action="store_true", help="keep the data directory (and PostgreSQL schema)"
    )
    parser.add_argument("--data-dir", type=Path, help="the data directory to use and keep")
    parser.add_argument("--csv-dir", type=Path, help="where to keep (and reuse) the CSV files")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate is not None:
        write_population(args.generate, args.records, args.seed)
        return
    backend = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(
        f"Partage identity bulk federation — {backend}, {os.cpu_count()} CPUs, "
        f"{args.records:,} local identities"
    )
    if args.data_dir is not None:
        args.keep = True
        args.data_dir.mkdir(parents=True, exist_ok=True)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="partage-identity-bench-"))
    try:
        with database(args.database_url, data_dir, keep=args.keep) as url:
            csv_dir = args.csv_dir or data_dir / "csv"
            bulk_load(data_dir, url, csv_dir, args.records, args.seed)
            links_summary(environment(data_dir, url), csv_dir / "truth.csv")
            if args.keep:
                print(f"kept: {data_dir} (bench.json; database {url})")
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
