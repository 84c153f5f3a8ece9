"""Benchmarks of the spine, printed with the ratio against the issue's targets.

    .venv/bin/python bench/run.py [--database-url URL] [--requests N] [--workers N]

1. Token endpoint (client_credentials, HTTP Basic, audit included) against a real server on
   a loopback port, driven by concurrent HTTP clients: tokens/s (target ≥ 500/s).
2. Bearer-token validation (signature, expiry, and the per-request re-check of the client or
   account state in the database): p50/p95 of what it adds to a request (target ≤ 1 ms p95).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

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
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "partage",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


async def _hammer(url: str, client_id: str, secret: str, total: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, auth=(client_id, secret), timeout=30) as http:
        data = {"grant_type": "client_credentials"}
        for _ in range(50):  # warm-up: connections, key cache
            (await http.post(url, data=data)).raise_for_status()
        remaining = total
        lock = asyncio.Lock()

        async def worker() -> None:
            nonlocal remaining
            while True:
                async with lock:
                    if remaining <= 0:
                        return
                    remaining -= 1
                response = await http.post(url, data=data)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def bench_token_endpoint(database_url: str, requests: int, workers: int, concurrency: int) -> float:
    with tempfile.TemporaryDirectory(prefix="partage-bench-") as tmp:
        data_dir = Path(tmp)
        url = database_url or f"sqlite:///{data_dir / 'partage.db'}"
        port = _free_port()
        platform, client_id, secret = _prepare(data_dir, url, port)
        platform.close()
        server = _start_server(data_dir, url, port, workers)
        try:
            elapsed = asyncio.run(
                _hammer(
                    f"http://127.0.0.1:{port}/oauth2/token",
                    client_id,
                    secret,
                    requests,
                    concurrency,
                )
            )
        finally:
            server.terminate()
            server.wait(timeout=10)
    return requests / elapsed


def bench_validation(database_url: str, iterations: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="partage-bench-") as tmp:
        data_dir = Path(tmp)
        url = database_url or f"sqlite:///{data_dir / 'partage.db'}"
        platform, client_id, secret = _prepare(data_dir, url, 8000)
        from fastapi.testclient import TestClient

        from partage.app import create_app

        with TestClient(create_app(platform.settings, platform=platform)) as http:
            token = http.post(
                "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
            ).json()["access_token"]
        timings: list[float] = []
        for _ in range(iterations):
            started = time.perf_counter()
            with transaction(platform.read_sessions) as session:
                principal_from_token(session, platform, token)
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
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    backend = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(f"Partage spine benchmarks — {backend}, {os.cpu_count()} CPUs")

    rate = bench_token_endpoint(args.database_url, args.requests, args.workers, args.concurrency)
    print(
        f"token endpoint (client_credentials, {args.workers} workers, {args.concurrency} "
        f"concurrent clients): {rate:,.0f} tokens/s — target {TOKENS_PER_SECOND_TARGET:.0f}/s, "
        f"ratio {rate / TOKENS_PER_SECOND_TARGET:.2f}×"
    )

    p50, p95 = bench_validation(args.database_url, args.iterations)
    print(
        f"bearer validation (signature + state re-check): p50 {p50:.3f} ms, "
        f"p95 {p95:.3f} ms — target p95 ≤ {VALIDATION_P95_TARGET_MS:.1f} ms, "
        f"ratio {VALIDATION_P95_TARGET_MS / p95:.2f}×"
    )


if __name__ == "__main__":
    main()
