"""Reading documents of the seed territory through FHIR, with the targets.

    .venv/bin/python bench/documents_read.py --from DATA_DIR [--searches 1000] [--retrievals 200]

DATA_DIR is what `bench/documents_seed.py` loaded (its `bench.json` names the database).
A real `partage serve` on a loopback port serves it; each hospital gets a system client
(`partage clients create --establishment CODE`) and its token (`client_credentials`). Then,
one request after another, as a hospital's system does:

- ITI-67: the list of one patient's documents, `GET /fhir/DocumentReference?patient=
  Patient/<id>`, for random patients who have documents, each with the token of an
  establishment where the patient has an identity: the access decision and the audit row
  included. p50/p95 against the target (p95 ≤ 20 ms).
- ITI-68: a 1 MB document, `GET /fhir/Binary/<id>` (decrypted and verified), p50/p95
  against the target (p95 ≤ 30 ms).

Printed with each: the server's CPU time per request (from /proc), steadier than wall time
on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

SEARCH_P95_MS = 20.0
RETRIEVE_P95_MS = 30.0
SCOPES = "system/DocumentReference.rs system/Binary.r system/Patient.rs"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def environment(data_dir: Path, url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PARTAGE_DATA_DIR": str(data_dir),
        "PARTAGE_DATABASE_URL": url,
        "PARTAGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PARTAGE_LOG_LEVEL": "WARNING",
    }


def create_clients(env: dict[str, str], codes: list[str]) -> dict[str, tuple[str, str]]:
    clients = {}
    for code in codes:
        done = subprocess.run(
            [sys.executable, "-m", "partage", "clients", "create", "--name", f"DPI {code} (bench)",
             "--scopes", SCOPES, "--establishment", code, "--json"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        created = json.loads(done.stdout)
        clients[code] = (created["client_id"], created["client_secret"])
    return clients


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "partage", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


class Tokens:
    """A token per establishment, renewed before it expires (5 minutes)."""

    def __init__(self, http: httpx.Client, clients: dict[str, tuple[str, str]]) -> None:
        self._http = http
        self._clients = clients
        self._tokens: dict[str, tuple[str, float]] = {}

    def __getitem__(self, code: str) -> str:
        token, expires = self._tokens.get(code, ("", 0.0))
        if time.monotonic() > expires - 30:
            client_id, secret = self._clients[code]
            response = self._http.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials", "scope": SCOPES},
                auth=(client_id, secret),
            )
            response.raise_for_status()
            body = response.json()
            token = body["access_token"]
            self._tokens[code] = (token, time.monotonic() + float(body.get("expires_in", 300)))
        return token


def sample(url: str, searches: int, rng: random.Random) -> tuple[list[Any], list[Any]]:
    """Random patients with documents (person, an establishment code where they have an
    identity, their document count), and the 1 MB documents (id, size, establishment)."""
    from sqlalchemy import create_engine, func, select

    from partage.documents.models import DocumentEntry
    from partage.identity.models import LocalIdentity
    from partage.security.models import Establishment

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            persons = connection.execute(
                select(LocalIdentity.person_id, func.count())
                .join(DocumentEntry, DocumentEntry.local_identity_id == LocalIdentity.id)
                .group_by(LocalIdentity.person_id)
            ).all()
            chosen = rng.sample(persons, min(searches, len(persons)))
            codes = dict(connection.execute(select(Establishment.id, Establishment.code)).all())
            where: dict[Any, list[str]] = {}
            ids = [p for p, _ in chosen]
            for i in range(0, len(ids), 500):
                rows = connection.execute(
                    select(LocalIdentity.person_id, LocalIdentity.establishment_id).where(
                        LocalIdentity.person_id.in_(ids[i : i + 500]), LocalIdentity.active
                    )
                )
                for person, establishment in rows:
                    where.setdefault(person, []).append(codes[establishment])
            patients = [(p, rng.choice(where[p]), n) for p, n in chosen]
            large = connection.execute(
                select(DocumentEntry.id, DocumentEntry.size, LocalIdentity.establishment_id)
                .join(LocalIdentity, LocalIdentity.id == DocumentEntry.local_identity_id)
                .where(DocumentEntry.size >= 1_000_000, DocumentEntry.masked_ps.is_(False))
            ).all()
            documents = [(d, size, codes[e]) for d, size, e in large]
    finally:
        engine.dispose()
    return patients, documents


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[94]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="data_dir", type=Path, required=True)
    parser.add_argument("--searches", type=int, default=1000)
    parser.add_argument("--retrievals", type=int, default=200)
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    loaded = json.loads((data_dir / "bench.json").read_text())
    url = loaded["database_url"]
    rng = random.Random(86)
    port = free_port()
    env = environment(data_dir, url, port)
    print(
        f"Seed territory of {data_dir}: {loaded['persons']:,} persons, "
        f"{loaded['documents']:,} documents",
        flush=True,
    )
    patients, documents = sample(url, args.searches, rng)
    clients = create_clients(env, sorted(loaded["establishments"]))
    server = start_server(env, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            tokens = Tokens(http, clients)
            search(http, tokens, patients, server.pid)
            retrieve(http, tokens, documents, args.retrievals, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


def search(http: httpx.Client, tokens: Tokens, patients: list[Any], pid: int) -> None:
    for person, code, _ in patients[:20]:  # warm-up: connections, caches
        http.get("/fhir/DocumentReference", params={"patient": f"Patient/{person}"},
                 headers={"Authorization": f"Bearer {tokens[code]}"})  # fmt: skip
    times: list[float] = []
    returned = 0
    cpu = server_cpu(pid)
    for person, code, _ in patients:
        headers = {"Authorization": f"Bearer {tokens[code]}"}
        started = time.perf_counter()
        response = http.get(
            "/fhir/DocumentReference", params={"patient": f"Patient/{person}"}, headers=headers
        )
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"search answered {response.status_code}: {response.text[:300]}")
        returned += len(response.json().get("entry", []))
    cpu = server_cpu(pid) - cpu
    p50, p95 = percentiles(times)
    counts = sorted(n for _, _, n in patients)
    print(
        f"ITI-67 list of a patient's documents ({len(times):,} patients, "
        f"{returned / len(times):.1f} documents returned on average, up to "
        f"{counts[-1]} filed): p50 {p50:.1f} ms, p95 {p95:.1f} ms; server CPU "
        f"{cpu / len(times) * 1000:.1f} ms/request; target p95 ≤ {SEARCH_P95_MS:.0f} ms: "
        f"ratio {p95 / SEARCH_P95_MS:.2f}",
        flush=True,
    )


def retrieve(
    http: httpx.Client, tokens: Tokens, documents: list[Any], count: int, pid: int
) -> None:
    if not documents:
        print("ITI-68: no 1 MB document in this territory (documents_seed.py --large)")
        return
    for document, _, code in documents[:5]:
        http.get(f"/fhir/Binary/{document}", headers={"Authorization": f"Bearer {tokens[code]}"})
    times: list[float] = []
    cpu = server_cpu(pid)
    for i in range(count):
        document, size, code = documents[i % len(documents)]
        headers = {"Authorization": f"Bearer {tokens[code]}"}
        started = time.perf_counter()
        response = http.get(f"/fhir/Binary/{document}", headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or len(response.content) != size:
            raise RuntimeError(f"retrieval answered {response.status_code}")
    cpu = server_cpu(pid) - cpu
    p50, p95 = percentiles(times)
    print(
        f"ITI-68 retrieval of a 1 MB document ({count} requests over {len(documents)} "
        f"documents): p50 {p50:.1f} ms, p95 {p95:.1f} ms; server CPU "
        f"{cpu / count * 1000:.1f} ms/request; target p95 ≤ {RETRIEVE_P95_MS:.0f} ms: "
        f"ratio {p95 / RETRIEVE_P95_MS:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
