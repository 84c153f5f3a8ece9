"""Benchmarks of the spine, printed with the ratio against the issue's targets.

    .venv/bin/python bench/run.py [--database-url URL] [--workers N] [--seconds N]

1. Token endpoint (client_credentials, HTTP Basic, audit included) against a real
   `partage serve` on a loopback port: tokens/s (target ≥ 500/s). The load comes from `wrk`
   when it is installed (C, it leaves the cores to the server), else from Python clients.
2. Bearer-token validation (signature, expiry, and the per-request re-check of the client's
   state in the database): what it adds to a request, p50/p95 (target p95 ≤ 1 ms).

On PostgreSQL each run works in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from partage.config import Settings
from partage.db import transaction
from partage.migrations.runner import upgrade
from partage.platform import Platform
from partage.security import actions
from partage.security.bearer import principal_from_token
from partage.security.principal import operator_principal

TOKENS_PER_SECOND_TARGET = 500.0
VALIDATION_P95_TARGET_MS = 1.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _database(base_url: str, data_dir: Path) -> Iterator[str]:
    if not base_url:
        yield f"sqlite:///{data_dir / 'partage.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _prepare(data_dir: Path, database_url: str, port: int) -> tuple[Platform, str, str]:
    settings = Settings(
        data_dir=data_dir, database_url=database_url, public_url=f"http://127.0.0.1:{port}"
    )
    platform = Platform.create(settings)
    upgrade(platform.engine)
    platform.prepare()
    with transaction(platform.sessions) as session:
        created = actions.create_client(
            session,
            platform.keyring,
            actor=operator_principal(),
            name="Bench EHR",
            scopes="system/*.rs",
        )
    assert created.client_secret is not None
    return platform, created.client.client_id, created.client_secret


def _start_server(
    data_dir: Path, database_url: str, port: int, workers: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PARTAGE_DATA_DIR": str(data_dir),
        "PARTAGE_DATABASE_URL": database_url,
        "PARTAGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PARTAGE_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "partage", "serve", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                time.sleep(2)  # every worker up, not only the first
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


def _wrk(url: str, basic: str, seconds: int, concurrency: int) -> float:
    script = (
        'wrk.method = "POST"\n'
        'wrk.body = "grant_type=client_credentials"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f'wrk.headers["Authorization"] = "Basic {basic}"\n'
        "done = function(summary, latency, requests)\n"
        "  local e = summary.errors\n"
        '  io.write(string.format("result %d %d\\n", summary.requests,'
        " e.status + e.connect + e.read + e.write + e.timeout))\n"
        "end\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        script_path = Path(tmp) / "token.lua"
        script_path.write_text(script)
        runs = []
        for duration in (2, seconds):  # the first run warms up connections and caches
            runs.append(
                subprocess.run(
                    [
                        "wrk",
                        "-t1",
                        f"-c{concurrency}",
                        f"-d{duration}s",
                        "-s",
                        str(script_path),
                        url,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
    result = next(line for line in runs[-1].splitlines() if line.startswith("result "))
    _, total, errors = result.split()
    if int(errors):
        raise RuntimeError(f"{errors} requests failed during the run")
    return int(total) / seconds


async def _python_clients(url: str, basic: str, seconds: int, concurrency: int) -> float:
    headers = {"Authorization": f"Basic {basic}"}
    data = {"grant_type": "client_credentials"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=30) as http:
        for _ in range(50):
            (await http.post(url, data=data)).raise_for_status()
        done = 0
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                (await http.post(url, data=data)).raise_for_status()
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - started)


def bench_token_endpoint(
    base_url: str, workers: int, concurrency: int, seconds: int
) -> tuple[float, str]:
    with (
        tempfile.TemporaryDirectory(prefix="partage-bench-") as tmp,
        _database(base_url, Path(tmp)) as url,
    ):
        port = _free_port()
        platform, client_id, secret = _prepare(Path(tmp), url, port)
        platform.close()
        server = _start_server(Path(tmp), url, port, workers)
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        endpoint = f"http://127.0.0.1:{port}/oauth2/token"
        try:
            if shutil.which("wrk"):
                return _wrk(endpoint, basic, seconds, concurrency), "wrk"
            rate = asyncio.run(_python_clients(endpoint, basic, seconds, concurrency))
            return rate, "Python clients (install wrk for a load that spares the server's CPU)"
        finally:
            server.terminate()
            server.wait(timeout=20)


def bench_validation(base_url: str, iterations: int) -> tuple[float, float]:
    from fastapi.testclient import TestClient

    from partage.app import create_app

    with (
        tempfile.TemporaryDirectory(prefix="partage-bench-") as tmp,
        _database(base_url, Path(tmp)) as url,
    ):
        platform, client_id, secret = _prepare(Path(tmp), url, 8000)
        with TestClient(create_app(platform.settings, platform=platform)) as http:
            answer = http.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(client_id, secret),
            )
            token = answer.json()["access_token"]
        timings: list[float] = []
        for _ in range(iterations):
            started = time.perf_counter()
            # What the API dependency does: one read connection, one query.
            with platform.read_engine.connect() as connection:
                principal_from_token(connection, platform, token)
            timings.append((time.perf_counter() - started) * 1000)
        platform.close()
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PARTAGE_BENCH_DATABASE_URL", ""),
        help="PostgreSQL URL to bench on (default: embedded SQLite)",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    backend = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(f"Partage spine benchmarks — {backend}, {os.cpu_count()} CPUs")

    rate, load = bench_token_endpoint(
        args.database_url, args.workers, args.concurrency, args.seconds
    )
    print(
        f"token endpoint (client_credentials, {args.workers} workers, {args.concurrency} "
        f"connections, load from {load}): {rate:,.0f} tokens/s — target "
        f"{TOKENS_PER_SECOND_TARGET:.0f}/s, ratio {rate / TOKENS_PER_SECOND_TARGET:.2f}×"
    )
    p50, p95 = bench_validation(args.database_url, args.iterations)
    print(
        f"bearer validation (signature + state re-check): p50 {p50:.3f} ms, "
        f"p95 {p95:.3f} ms — target p95 ≤ {VALIDATION_P95_TARGET_MS:.1f} ms, "
        f"ratio {VALIDATION_P95_TARGET_MS / p95:.2f}×"
    )


if __name__ == "__main__":
    main()
