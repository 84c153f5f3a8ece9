"""Deposit throughput through the FHIR API (IHE MHD ITI-65), with its floor.

    .venv/bin/python bench/documents_deposit.py [--database-url URL] [--seconds 20]
        [--workers 2] [--concurrency 16] [--patients 2000]

1. API: a real `partage serve` on a loopback port; `wrk` (C: it leaves the cores to the
   server) posts ITI-65 transaction Bundles, each one 50 KB PDF for one of `--patients`
   patients, every one a distinct submission, document and content (nothing deduplicates);
   token check, parsing, hash checks, encryption, the blob's durable write, the registry rows
   and the audit row included. Documents/s, against the target of 500/s; then the count
   stored is checked against the count acknowledged.
2. Floor: the same metadata rows inserted with Core `executemany`, 1,000 per transaction, and
   the same contents written as files (written and fsynced, not encrypted) — what the
   database and the disk allow, without the API. The ratio API/floor says what the API costs.

On PostgreSQL the run works in a schema of its own, dropped at the end.

`PARTAGE_BENCH_PROFILE=/path/to/py-spy` samples the server meanwhile (raw stacks to
`PARTAGE_BENCH_PROFILE_OUT`; `PARTAGE_BENCH_PROFILE_FLAGS` defaults to `--gil`: CPU only;
`--idle` shows where the threads wait).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import _database, _free_port, _start_server

from partage.config import Settings
from partage.db import transaction, utcnow
from partage.directory.models import Practitioner
from partage.documents.bulk import refresh_statistics
from partage.documents.models import (
    DocumentContent,
    DocumentEntry,
    SubmissionSet,
)
from partage.documents.synthetic import pdf, provide_bundle
from partage.identity.service import IdentityInput, do_receive_identity
from partage.identity.synthetic import generate_population
from partage.migrations.runner import upgrade
from partage.platform import Platform
from partage.security import actions
from partage.security.models import EstablishmentKind
from partage.security.principal import operator_principal

TARGET_PER_SECOND = 500.0
DOCUMENT_BYTES = 50_000
DOMAIN_OID = "1.2.250.1.999.900.1"
RPPS = "810000000001"
# Placeholders the load generator replaces in each request (same lengths as their values).
SUBMISSION_MARK = "S" * 32
DOCUMENT_MARK = "D" * 32
PATIENT_MARK = "IPP-PPPPPP"
CONTENT_MARK = "QUJDREVGR0hJSktM"  # 16 base64 characters inside the PDF's padding


def _setup(data_dir: Path, database_url: str, port: int, patients: int) -> tuple[str, str]:
    settings = Settings(
        data_dir=data_dir, database_url=database_url, public_url=f"http://127.0.0.1:{port}"
    )
    platform = Platform.create(settings)
    upgrade(platform.engine)
    platform.prepare()
    with transaction(platform.sessions) as session:
        territory = actions.ensure_territory(
            session, code=settings.territory_code, name=settings.territory_name
        )
        establishment = actions.create_establishment(
            session,
            actor=operator_principal(),
            territory=territory,
            name="CHU de bench",
            code="CHU-BENCH",
            kind=EstablishmentKind.university_hospital,
            oid=DOMAIN_OID,
        )
        session.add(
            Practitioner(
                national_id=RPPS,
                id_type="8",
                local_id=RPPS[1:],
                family_name="BENCH",
                given_name="Claire",
                family_name_folded="BENCH",
                given_name_folded="CLAIRE",
                content_hash="-",
            )
        )
        created = actions.create_client(
            session,
            platform.keyring,
            actor=operator_principal(),
            name="DPI bench",
            scopes="system/DocumentReference.crs system/Binary.r",
            establishment=establishment,
        )
    # One identity per person: the documents' patients, not the matcher, are measured here.
    seen: set[int] = set()
    records = []
    for item in generate_population(persons=patients, sources=["CHU-BENCH"], seed=7):
        if item.person not in seen:
            seen.add(item.person)
            records.append(item.record)
    with transaction(platform.sessions) as session:
        establishment = session.merge(establishment)
        for i, synthetic in enumerate(records):
            do_receive_identity(
                session,
                establishment=establishment,
                local_id=f"IPP-{i:06d}",
                # Without the INS some synthetic records carry a wrong one on purpose.
                value=IdentityInput(traits=replace(synthetic.traits, ins="")),
                actor=operator_principal().actor,
            )
    platform.close()
    assert created.client_secret is not None
    return created.client.client_id, created.client_secret


def _template(documents: int = 1) -> str:
    """One Bundle (a submission of `documents` documents) with placeholders where each
    request differs."""
    content = bytearray(pdf(["Compte rendu de consultation"], size=DOCUMENT_BYTES, seed="bench"))
    bundle = provide_bundle(
        content=bytes(content),
        domain_oid=DOMAIN_OID,
        local_id=PATIENT_MARK,
        author_rpps=RPPS,
        with_hash=False,
    )
    data = bundle["entry"][2]["resource"]["data"]
    # Inside the padding stream, 4-aligned: the replaced characters change whole bytes only.
    at = (len(data) // 2) // 4 * 4
    bundle["entry"][2]["resource"]["data"] = data[:at] + CONTENT_MARK + data[at + 16 :]
    bundle["entry"][0]["resource"]["identifier"][0]["value"] = f"urn:uuid:{SUBMISSION_MARK}"
    bundle["entry"][1]["resource"]["masterIdentifier"]["value"] = f"urn:uuid:{DOCUMENT_MARK}"
    submission_set, document, binary = bundle["entry"]
    for _ in range(documents - 1):
        more_document, more_binary = copy.deepcopy(document), copy.deepcopy(binary)
        more_document["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
        more_binary["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
        attachment = more_document["resource"]["content"][0]["attachment"]
        attachment["url"] = more_binary["fullUrl"]
        submission_set["resource"]["entry"].append(
            {"item": {"reference": more_document["fullUrl"]}}
        )
        bundle["entry"] += [more_document, more_binary]
    return json.dumps(bundle)


_LUA = """
counter = 0
thread_id = 0
function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end
local pieces, kinds = {}, {}
local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local marks = {S = "SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS", D = "DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD",
               P = "IPP-PPPPPP", C = "QUJDREVGR0hJSktM"}
function init(args)
  local f = io.open(args[1], "rb")
  local template = f:read("*all")
  f:close()
  patients = tonumber(args[2])
  math.randomseed(os.time() + thread_id * 7919)
  -- Drawn anew by each run (the warm-up is one): with the thread and the request counter,
  -- every submission, document and content of a run differs from any earlier run's.
  run_salt = math.random(0, 2^30 - 1)
  -- The template cut once at its placeholders: a request is a concatenation, not a
  -- search through 70 KB (the load generator must leave the cores to the server).
  local pos = 1
  while true do
    local best, best_kind, best_len = nil, nil, 0
    for kind, mark in pairs(marks) do
      local at = string.find(template, mark, pos, true)
      if at and (best == nil or at < best) then best, best_kind, best_len = at, kind, #mark end
    end
    if best == nil then
      pieces[#pieces + 1] = string.sub(template, pos)
      break
    end
    pieces[#pieces + 1] = string.sub(template, pos, best - 1)
    kinds[#kinds + 1] = best_kind
    pos = best + best_len
  end
end
local function mark(n, width)
  return string.format("%0" .. width .. "x", n)
end
local function b64_digits(n, width)
  local out = {}
  for i = width, 1, -1 do
    local k = n % 64
    out[i] = string.sub(b64, k + 1, k + 1)
    n = math.floor(n / 64)
  end
  return table.concat(out)
end
request = function()
  counter = counter + 1
  local unique = mark(run_salt, 8) .. mark(thread_id, 4) .. mark(counter, 16)
  local ipp = string.format("IPP-%06d", math.random(0, patients - 1))
  local out, documents, contents = {}, 0, 0
  for i = 1, #kinds do
    out[#out + 1] = pieces[i]
    local kind = kinds[i]
    if kind == "S" then
      out[#out + 1] = unique .. "0000"
    elseif kind == "D" then
      documents = documents + 1
      out[#out + 1] = unique .. mark(documents, 4)
    elseif kind == "P" then
      out[#out + 1] = ipp
    else
      contents = contents + 1
      out[#out + 1] = b64_digits(run_salt, 5) .. b64_digits(thread_id, 2)
        .. b64_digits(counter * 64 + contents, 9)
    end
  end
  out[#out + 1] = pieces[#pieces]
  return wrk.format("POST", nil, nil, table.concat(out))
end
local reported = false
response = function(status, headers, body)
  if status ~= 200 and not reported then
    reported = true
    io.stderr:write("first failure: " .. status .. " " .. string.sub(body, 1, 300) .. "\\n")
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("result %d %d %d %d\\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95)))
end
"""


def _server_cpu_seconds(pid: int) -> float:
    """User + system CPU of the server and its workers (Linux /proc)."""
    return sum(_server_cpu(pid))


def _server_cpu(pid: int) -> tuple[float, float]:
    """User and system CPU of the server and its workers (Linux /proc)."""
    user = system = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        user += int(fields[11]) / ticks
        system += int(fields[12]) / ticks
    return user, system


def _analyze(data_dir: Path, url: str) -> None:
    platform = Platform.create(Settings(data_dir=data_dir, database_url=url))
    try:
        refresh_statistics(platform.sessions)
    finally:
        platform.close()


def bench_api(
    data_dir: Path,
    url: str,
    *,
    seconds: int,
    workers: int,
    concurrency: int,
    patients: int,
    per_bundle: int = 1,
) -> dict[str, Any]:
    port = _free_port()
    client_id, secret = _setup(data_dir, url, port, patients)
    server = _start_server(data_dir, url, port, workers)
    profiler = None
    if os.environ.get("PARTAGE_BENCH_PROFILE"):
        # py-spy on the server (and its workers) while the load runs: where the CPU goes.
        profiler = subprocess.Popen(
            [os.environ["PARTAGE_BENCH_PROFILE"], "record", "--subprocesses", "-f", "raw",
             *os.environ.get("PARTAGE_BENCH_PROFILE_FLAGS", "--gil").split(),
             "-o", os.environ.get("PARTAGE_BENCH_PROFILE_OUT", "deposit-profile.txt"),
             "-p", str(server.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        token = httpx.post(
            f"http://127.0.0.1:{port}/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "system/DocumentReference.c"},
            auth=(client_id, secret),
        ).json()["access_token"]
        template = _template(per_bundle)
        probe = re.sub(
            DOCUMENT_MARK,
            lambda _: uuid.uuid4().hex,
            template.replace(SUBMISSION_MARK, uuid.uuid4().hex).replace(PATIENT_MARK, "IPP-000000"),
        )
        checked = httpx.post(
            f"http://127.0.0.1:{port}/fhir",
            content=probe,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        )
        if checked.status_code != 200:
            raise RuntimeError(f"a deposit fails: {checked.status_code} {checked.text}")
        with tempfile.TemporaryDirectory() as tmp:
            body_path = Path(tmp) / "bundle.json"
            body_path.write_text(template)
            script = Path(tmp) / "provide.lua"
            script.write_text(_LUA)
            headers = ["-H", f"Authorization: Bearer {token}",
                       "-H", "Content-Type: application/fhir+json"]  # fmt: skip
            endpoint = f"http://127.0.0.1:{port}/fhir"
            # Warm-up (connections, caches, the first pages of the tables).
            subprocess.run(
                ["wrk", "-t2", f"-c{concurrency}", "-d3s", *headers, "-s", str(script),
                 endpoint, "--", str(body_path), str(patients)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            # As the platform's database would be in service (autovacuum analyzes growing
            # tables; this machine's server runs without it): the plans of the deposit's
            # statements made for the tables as they are, not as they were empty.
            _analyze(data_dir, url)
            cpu_before = _server_cpu(server.pid)
            started = time.monotonic()
            run = subprocess.run(
                ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", "--latency", *headers,
                 "-s", str(script), endpoint, "--", str(body_path), str(patients)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            elapsed = time.monotonic() - started
            cpu_after = _server_cpu(server.pid)
            user, system = (cpu_after[i] - cpu_before[i] for i in range(2))
            cpu = user + system
        if "first failure" in run.stderr:
            print("  " + run.stderr.strip().splitlines()[0], flush=True)
        result = next(line for line in run.stdout.splitlines() if line.startswith("result "))
        _, total, errors, p50_us, p95_us = result.split()
    finally:
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(timeout=60)
        server.terminate()
        server.wait(timeout=30)
    settings = Settings(data_dir=data_dir, database_url=url)
    platform = Platform.create(settings)
    with platform.read_sessions() as session:
        stored = session.scalar(select(func.count()).select_from(DocumentEntry)) or 0
        contents = session.scalar(select(func.count()).select_from(DocumentContent)) or 0
    platform.close()
    return {
        "requests": int(total),
        "errors": int(errors),
        "seconds": seconds,
        "elapsed": elapsed,
        "per_second": (int(total) - int(errors)) * per_bundle / seconds,
        "documents": (int(total) - int(errors)) * per_bundle,
        "p50_ms": int(p50_us) / 1000,
        "p95_ms": int(p95_us) / 1000,
        "stored": stored,
        "contents": contents,
        "server_cpu": cpu,
        "server_system": system,
    }


def bench_floor(data_dir: Path, url: str, *, documents: int) -> dict[str, float]:
    """The same rows and bytes, written as fast as the database and the disk allow."""
    settings = Settings(data_dir=data_dir, database_url=url)
    platform = Platform.create(settings)
    with platform.read_sessions() as session:
        template = session.scalars(select(DocumentEntry).limit(1)).one()
        submission = session.get(SubmissionSet, template.submission_set_id)
        content_row = session.get(DocumentContent, template.sha256)
        assert submission is not None
        assert content_row is not None
    folder = data_dir / "floor-blobs"
    folder.mkdir(exist_ok=True)
    content = pdf(["floor"], size=DOCUMENT_BYTES, seed="floor")
    entry_columns = {c.key: getattr(template, c.key) for c in DocumentEntry.__table__.columns}
    set_columns = {c.key: getattr(submission, c.key) for c in SubmissionSet.__table__.columns}
    content_columns = {
        c.key: getattr(content_row, c.key) for c in DocumentContent.__table__.columns
    }
    started, cpu_started = time.perf_counter(), time.process_time()
    batch = 1_000
    for first in range(0, documents, batch):
        sets, contents, entries = [], [], []
        for _i in range(first, min(documents, first + batch)):
            name = uuid.uuid4().hex
            path = folder / name
            with open(path, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            set_id, entry_id = uuid.uuid4(), uuid.uuid4()
            sets.append({**set_columns, "id": set_id, "unique_id": f"floor-set-{name}"})
            contents.append({**content_columns, "sha256": name + name, "storage_key": name})
            entries.append({
                **entry_columns, "id": entry_id, "lineage_id": entry_id,
                "unique_id": f"floor-doc-{name}", "submission_set_id": set_id,
                "sha256": name + name, "deposited_at": utcnow(),
            })  # fmt: skip
        with transaction(platform.sessions) as session:
            session.execute(insert(SubmissionSet), sets)
            session.execute(insert(DocumentContent), contents)
            session.execute(insert(DocumentEntry), entries)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    platform.close()
    return {"per_second": documents / elapsed, "cpu": cpu, "elapsed": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--patients", type=int, default=2_000)
    parser.add_argument("--floor-documents", type=int, default=10_000)
    parser.add_argument(
        "--per-bundle",
        type=int,
        default=1,
        help="Documents per submission (one Bundle): 1 by default; an EHR sending a stay's "
        "documents together sends several.",
    )
    args = parser.parse_args()
    database = "PostgreSQL" if args.database_url else "SQLite"
    with (
        tempfile.TemporaryDirectory(prefix="partage-bench-docs-") as tmp,
        _database(args.database_url, Path(tmp)) as url,
    ):
        print(f"Deposit through FHIR ITI-65 ({database}, {args.workers} workers, "
              f"{args.concurrency} connections, {args.per_bundle} document(s) of "
              f"{DOCUMENT_BYTES // 1000} KB (PDF) per submission, "
              f"{args.patients:,} patients)…", flush=True)  # fmt: skip
        api = bench_api(
            Path(tmp),
            url,
            seconds=args.seconds,
            workers=args.workers,
            concurrency=args.concurrency,
            patients=args.patients,
            per_bundle=args.per_bundle,
        )
        print(
            f"  API: {api['per_second']:,.0f} documents/s over {api['seconds']} s "
            f"({api['requests']:,} requests, {api['errors']} errors), "
            f"latency p50 {api['p50_ms']:.1f} ms, p95 {api['p95_ms']:.1f} ms; "
            f"server CPU {api['server_cpu']:.1f} s = "
            f"{api['server_cpu'] / max(1, api['documents']) * 1000:.2f} ms/document "
            f"(of which kernel {api['server_system'] / max(1, api['documents']) * 1000:.2f})"
        )
        print(
            f"  stored: {api['stored']:,} documents (acknowledged during the warm-up and run), "
            f"{api['contents']:,} contents"
            + ("" if api["contents"] == api["stored"] else " — some contents DEDUPLICATED")
        )
        floor = bench_floor(Path(tmp), url, documents=args.floor_documents)
        print(
            f"  floor: {floor['per_second']:,.0f} documents/s (rows by executemany, 1,000 per "
            f"transaction, and fsynced files; CPU {floor['cpu'] / args.floor_documents * 1000:.2f}"
            " ms/document)"
        )
        print(
            f"  ratio API/floor: {api['per_second'] / floor['per_second']:.2f}; "
            f"target {TARGET_PER_SECOND:.0f}/s: ratio {api['per_second'] / TARGET_PER_SECOND:.2f}x "
            f"{'PASS' if api['per_second'] >= TARGET_PER_SECOND else 'FAIL'}"
        )


if __name__ == "__main__":
    main()
