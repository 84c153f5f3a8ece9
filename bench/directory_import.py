"""Benchmark of the RPPS import, printed with the ratio against the directory issue's targets.

    .venv/bin/python bench/directory_import.py [--database-url URL] [--professionals N]
                                               [--national] [--national-rows N]

1. The territory: a synthetic extract of 31,380 professionals (about 39,000 rows) is
   imported into a fresh database by the real command, `partage directory import-rpps`, then
   imported again. Target: each in at most 10 s, and the second changes nothing.
2. `--national`: an extract of 2 million rows, imported once into a fresh database: rows/s,
   and the command's peak RSS against the target (at most 300 MB). Its RSS is also sampled
   along the run: flat means memory does not grow with the size of the file.

Times are those of the whole command, start-up included; the peak RSS is the command's own
(`wait4`). Extracts come from the synthetic generator, `partage directory generate-rpps`.
On PostgreSQL each run works in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import _database

IMPORT_TARGET_SECONDS = 10.0
RSS_TARGET_MB = 300.0
TERRITORY_PROFESSIONALS = 31380
NATIONAL_ROWS = 2_000_000
ROWS_PER_PROFESSIONAL = 1.25  # the generator puts a quarter of professionals on two sites
RSS_SAMPLE_SECONDS = 0.5


@dataclass
class Command:
    seconds: float
    peak_rss_mb: float
    output: str
    rss_samples_mb: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return dict(json.loads(self.output))

    def rss_at(self, share: float) -> float:
        samples = self.rss_samples_mb
        return samples[min(len(samples) - 1, int(len(samples) * share))] if samples else 0.0


def _rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def _partage(env: dict[str, str], *arguments: str) -> Command:
    """Run `partage ARGUMENTS` to its end: wall time, peak RSS, RSS samples, stdout."""
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "partage", *arguments],
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, output.fileno(), 1)],
        )
        samples: list[float] = []
        finished = threading.Event()

        def sample() -> None:
            while not finished.wait(RSS_SAMPLE_SECONDS):
                rss = _rss_mb(pid)
                if rss is not None:
                    samples.append(rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - started
        finished.set()
        sampler.join()
        output.seek(0)
        text = output.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"partage {' '.join(arguments)} failed:\n{text}")
    return Command(seconds, usage.ru_maxrss / 1024, text, samples)


def _environment(data_dir: Path, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PARTAGE_DATA_DIR": str(data_dir),
        "PARTAGE_DATABASE_URL": database_url,
        "PARTAGE_LOG_LEVEL": "WARNING",
    }


def _extract(env: dict[str, str], path: Path, professionals: int) -> tuple[int, float]:
    """Write a synthetic extract with `partage directory generate-rpps`: in a process of its
    own, since a child's peak RSS as `wait4` reports it is at least its parent's RSS at the
    time it was started (the child starts as a copy of it); this process stays small."""
    run = _partage(
        env, "directory", "generate-rpps", str(path), "--professionals", str(professionals)
    )
    with path.open("rb") as lines:
        rows = sum(chunk.count(b"\n") for chunk in iter(lambda: lines.read(1 << 20), b"")) - 1
    return rows, run.seconds


def _changes(summary: dict[str, Any]) -> int:
    return int(summary["created"]) + int(summary["updated"]) + int(summary["closed"])


def bench_territory(base_url: str, professionals: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="partage-bench-") as tmp,
        _database(base_url, Path(tmp)) as url,
    ):
        env = _environment(Path(tmp), url)
        extract = Path(tmp) / "rpps.txt"
        rows, generated = _extract(env, extract, professionals)
        size_mb = extract.stat().st_size / 1e6
        print(
            f"extract: {rows:,} rows for {professionals:,} professionals ({size_mb:.1f} MB), "
            f"generated in {generated:.1f} s"
        )
        _partage(env, "db", "upgrade")
        for label in ("first import", "re-import"):
            run = _partage(env, "directory", "import-rpps", str(extract), "--json")
            summary = run.summary()
            print(
                f"{label} {run.seconds:.2f} s (target ≤ {IMPORT_TARGET_SECONDS:.0f} s, ratio "
                f"{IMPORT_TARGET_SECONDS / run.seconds:.2f}×), changes: {_changes(summary):,} "
                f"(created {summary['created']:,}, updated {summary['updated']:,}, closed "
                f"{summary['closed']:,}, unchanged {summary['unchanged']:,}, rejected "
                f"{summary['rejected']:,}); peak RSS {run.peak_rss_mb:.0f} MB"
            )


def bench_national(base_url: str, rows_wanted: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="partage-bench-") as tmp,
        _database(base_url, Path(tmp)) as url,
    ):
        env = _environment(Path(tmp), url)
        extract = Path(tmp) / "rpps-national.txt"
        professionals = round(rows_wanted / ROWS_PER_PROFESSIONAL)
        rows, generated = _extract(env, extract, professionals)
        size_mb = extract.stat().st_size / 1e6
        print(
            f"national extract: {rows:,} rows ({size_mb:,.0f} MB), generated in {generated:.0f} s"
        )
        _partage(env, "db", "upgrade")
        start_up = _partage(env, "db", "current")
        run = _partage(env, "directory", "import-rpps", str(extract), "--json")
        summary = run.summary()
        print(
            f"national import: {rows:,} rows in {run.seconds:.0f} s, "
            f"{rows / run.seconds:,.0f} rows/s (created {summary['created']:,}, rejected "
            f"{summary['rejected']:,})"
        )
        print(
            f"peak RSS {run.peak_rss_mb:.0f} MB (target ≤ {RSS_TARGET_MB:.0f} MB, ratio "
            f"{RSS_TARGET_MB / run.peak_rss_mb:.2f}×); along the run: "
            f"{run.rss_at(0.1):.0f} MB at 10 %, {run.rss_at(0.5):.0f} MB at 50 %, "
            f"{run.rss_at(0.9):.0f} MB at 90 %; a command that imports nothing "
            f"(`partage db current`) peaks at {start_up.peak_rss_mb:.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PARTAGE_BENCH_DATABASE_URL", ""),
        help="PostgreSQL URL to bench on (default: embedded SQLite)",
    )
    parser.add_argument("--professionals", type=int, default=TERRITORY_PROFESSIONALS)
    parser.add_argument("--national", action="store_true", help="also import 2 million rows")
    parser.add_argument("--national-rows", type=int, default=NATIONAL_ROWS)
    args = parser.parse_args()
    backend = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(f"Partage directory import benchmarks — {backend}, {os.cpu_count()} CPUs")
    bench_territory(args.database_url, args.professionals)
    if args.national:
        bench_national(args.database_url, args.national_rows)


if __name__ == "__main__":
    main()
