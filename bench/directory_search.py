"""Benchmark of the directory's name search through the FHIR API, with the target of the
directory issue.

    .venv/bin/python bench/directory_search.py [--database-url URL] [--professionals N]

A synthetic RPPS extract of the territory (31,380 professionals by default) is imported, a
real `partage serve` answers on a loopback port, and one client searches practitioners by
name the way people type them — lower case, accents left out, a few letters or the whole
name, sometimes a given name — one request after another over a kept-alive connection.
Latency is measured at the client: token check, search, rendering and HTTP included.
Prints p50/p95 and the ratio against the target (p95 ≤ 15 ms).

On PostgreSQL the run works in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import _database, _free_port, _prepare, _start_server

from partage.directory import rpps
from partage.directory.importer import import_rpps
from partage.security.principal import operator_principal

P95_TARGET_MS = 15.0


def _queries(extract: Path, count: int, seed: int = 3) -> list[str]:
    """What people type: a prefix of a family or given name, folded to lower case without
    accents, or "given family"."""
    names: list[tuple[str, str]] = []
    with extract.open(encoding="utf-8") as lines:
        next(lines)
        for line in lines:
            fields = line.split("|")
            names.append((fields[7], fields[8]))
    rng = random.Random(seed)
    queries = []
    for _ in range(count):
        family, given = rng.choice(names)
        roll = rng.random()
        if roll < 0.6:
            text = family[: rng.randint(3, max(3, len(family)))]
        elif roll < 0.8:
            text = given[: rng.randint(3, max(3, len(given)))]
        else:
            text = f"{given} {family}"
        queries.append(rpps.fold(text).lower())
    return queries


def bench_name_search(database_url: str, professionals: int, requests: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="partage-bench-") as tmp,
        _database(database_url, Path(tmp)) as url,
    ):
        data_dir = Path(tmp)
        port = _free_port()
        platform, client_id, secret = _prepare(data_dir, url, port)
        extract = data_dir / "rpps.txt"
        with extract.open("w", encoding="utf-8") as stream:
            rows = rpps.write_synthetic_extract(stream, professionals)
        started = time.monotonic()
        with extract.open("rb") as stream:
            import_rpps(
                platform.sessions, stream, actor=operator_principal(), file_name=extract.name
            )
        print(
            f"directory: {professionals:,} professionals, {rows:,} activities "
            f"(imported in {time.monotonic() - started:.1f} s)"
        )
        platform.close()
        server = _start_server(data_dir, url, port, workers=1)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=30) as http:
                token = http.post(
                    "/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    auth=(client_id, secret),
                ).json()["access_token"]
                http.headers["Authorization"] = f"Bearer {token}"
                queries = _queries(extract, requests + 200)
                for query in queries[:200]:  # warm the caches, as a running server's are
                    http.get("/fhir/Practitioner", params={"name": query}).raise_for_status()
                timings, results = [], []
                for query in queries[200:]:
                    begun = time.perf_counter()
                    answer = http.get("/fhir/Practitioner", params={"name": query})
                    timings.append((time.perf_counter() - begun) * 1000)
                    answer.raise_for_status()
                    results.append(len(answer.json().get("entry", [])))
        finally:
            server.terminate()
            server.wait(timeout=20)
    timings.sort()
    p50, p95 = statistics.median(timings), timings[int(len(timings) * 0.95)]
    print(
        f"name search (GET /fhir/Practitioner?name=…, {len(timings):,} requests, "
        f"{statistics.mean(results):.1f} results per page on average): p50 {p50:.1f} ms, "
        f"p95 {p95:.1f} ms, max {timings[-1]:.1f} ms — target p95 ≤ {P95_TARGET_MS:.0f} ms, "
        f"ratio {P95_TARGET_MS / p95:.2f}×"
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
    parser.add_argument("--professionals", type=int, default=31_380)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    backend = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(f"Partage directory search benchmark — {backend}, {os.cpu_count()} CPUs")
    bench_name_search(args.database_url, args.professionals, args.requests)


if __name__ == "__main__":
    main()
