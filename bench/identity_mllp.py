"""Benchmark of the ADT feed over MLLP into the master patient index, with the target.

    .venv/bin/python bench/identity_mllp.py [--database-url URL] [--senders K]
                                            [--seconds S | --messages N]

An MLLP listener (`serve_mllp(AdtFeed(platform), port=0)`, its default 8 handler threads)
runs in this process on a fresh database with two establishments. K senders, each a process
of its own with a real `hl7.client.MLLPClient`, send PAM-FR ADT messages one after another,
each waiting for its ACK: A28 (a new patient), and for patients already sent A31 and A08
(the whole identity again, with a new address or phone), about 65/22/13 %. The identities
come from the synthetic French generator, rendered as PID segments (IPP under the
establishment's authority, the INS with its OID when the record has a valid one, birth and
used names, birth place, address, phone, RNIV status in PID-32). Each sender owns its own
patients, so a patient's messages arrive in order on one connection.

Printed: messages/s sustained (acknowledged messages over the time from the common start to
the last ACK), ACK codes (with the reason of any AE/AR), and "count in = count stored": the
identities stored against the distinct patients acknowledged AA, and for each patient the
stored address and phone against those of its last acknowledged message. Target: at least
300 messages/s with every ACK awaited, nothing lost.

On PostgreSQL the run works in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_PER_SECOND = 300.0
SOURCES = ("CHU-POITIERS", "CH-CHATELLERAULT")
NIR_OID = "1.2.250.1.213.1.4.8"
MAX_RATE = 1500  # messages prepared per second of run and sender count, at most
SEED = 2575


@dataclass(frozen=True)
class Outgoing:
    text: str
    source: str
    ipp: str
    event: str


def _escape(value: str) -> str:
    return (
        value.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )


def render(
    record: Any, event: str, control_id: str, oid: str, *, address: str = "", phone: str = ""
) -> str:
    """A PAM-FR ADT message for one synthetic record (`SourceRecord`)."""
    from partage.identity.ins import is_valid_ins

    t = record.traits
    e = _escape
    structure = "ADT_A05" if event in ("A28", "A31") else "ADT_A01"
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    msh = (
        f"MSH|^~\\&|HIS|{record.source}|PARTAGE|GHT-VIENNE|{stamp}||ADT^{event}^{structure}|"
        f"{control_id}|P|2.5^FRA^2.10||||||UNICODE UTF-8"
    )
    ids = f"{e(record.local_id)}^^^{record.source}&{oid}&ISO^PI"
    if t.ins and is_valid_ins(t.ins):
        ids += f"~{t.ins}^^^ASIP-SANTE-INS-NIR&{NIR_OID}&ISO^INS"
    given = [e(g) for g in t.given_names]
    names = f"{e(t.birth_family_name)}^{given[0] if given else ''}^{' '.join(given)}^^^^L"
    if t.used_family_name:
        names += f"~{e(t.used_family_name)}^^^^^^D"
    born = t.birth_date.strftime("%Y%m%d") if t.birth_date else ""
    street = address or t.address
    addresses = f"{e(street)}^^{e(t.city)}^^{e(t.postal_code)}^FRA^H"
    if t.birth_place_code:
        addresses += f"~^^^^^^BDL^^{e(t.birth_place_code)}"
    number = phone or t.phone
    phones = f"^PRN^PH^^^^^^^^^{e(number)}" if number else ""
    fields = {3: ids, 5: names, 7: born, 8: t.sex.value, 11: addresses, 13: phones}
    fields[32] = record.status.value
    pid = "PID|" + "|".join(fields.get(n, "") for n in range(1, 33))
    pv1 = "PV1||N"
    return "\r".join((msh, f"EVN||{stamp}", pid, pv1)) + "\r"


def messages_for(records: list[Any], oids: dict[str, str], prefix: str) -> list[Outgoing]:
    """A28 for each record; for every 3rd an A31 of the record sent 10 before (new address),
    for every 5th an A08 of the record sent 20 before (new phone)."""
    out: list[Outgoing] = []
    for i, record in enumerate(records):
        oid = oids[record.source]
        out.append(
            Outgoing(
                render(record, "A28", f"{prefix}{len(out)}", oid),
                record.source,
                record.local_id,
                "A28",
            )
        )
        if i % 3 == 0 and i >= 10:
            old = records[i - 10]
            text = render(
                old, "A31", f"{prefix}{len(out)}", oids[old.source], address=f"{i} rue Neuve"
            )
            out.append(Outgoing(text, old.source, old.local_id, "A31"))
        if i % 5 == 0 and i >= 20:
            old = records[i - 20]
            text = render(
                old, "A08", f"{prefix}{len(out)}", oids[old.source], phone=f"0549{i:06d}"[:10]
            )
            out.append(Outgoing(text, old.source, old.local_id, "A08"))
    return out


# --- the senders (processes of their own) -------------------------------------------------


def _ack_code(answer: Any) -> tuple[str, str]:
    text = answer.decode("utf-8") if isinstance(answer, bytes) else str(answer)
    segments = {s.split("|", 1)[0]: s.split("|") for s in text.replace("\n", "\r").split("\r")}
    msa = segments.get("MSA", [])
    err = segments.get("ERR", [])
    code = msa[1] if len(msa) > 1 else "?"
    reason = ""
    if code != "AA":
        reason = (err[8] if len(err) > 8 else "") or (msa[3] if len(msa) > 3 else "")
    return code, reason


def sender(port: int, texts: list[str], start: Any, until: Any, results: Any, number: int) -> None:
    """Send each message and wait for its ACK, from `start` until the time in `until`."""
    import hl7.client

    codes: list[tuple[str, str]] = []
    latencies: list[float] = []
    with hl7.client.MLLPClient("127.0.0.1", port) as client:
        start.wait()
        deadline = until.value
        for text in texts:
            if time.time() >= deadline:
                break
            sent = time.perf_counter()
            answer = client.send_message(text)
            latencies.append((time.perf_counter() - sent) * 1000)
            codes.append(_ack_code(answer))
    results.put((number, codes, latencies, time.time()))


# --- the run -------------------------------------------------------------------------------


class Listener:
    """The MLLP listener on port 0, its event loop in a background thread."""

    def __init__(self, handler: Any) -> None:
        from partage.interop.hl7.mllp import serve_mllp

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        coroutine = serve_mllp(handler, host="127.0.0.1", port=0)
        self.server = asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)
        self.port = int(self.server.port)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def _platform(data_dir: Path, url: str) -> tuple[Any, dict[str, str]]:
    from partage.config import Settings
    from partage.db import transaction
    from partage.migrations.runner import upgrade
    from partage.platform import Platform
    from partage.security import actions
    from partage.security.principal import operator_principal

    platform = Platform.create(Settings(data_dir=data_dir, database_url=url))
    upgrade(platform.engine)
    platform.prepare()
    oids: dict[str, str] = {}
    with transaction(platform.sessions) as session:
        territory = actions.ensure_territory(session, code="GHT-VIENNE", name="GHT de la Vienne")
        for code in SOURCES:
            establishment = actions.create_establishment(
                session, actor=operator_principal(), territory=territory, name=code, code=code
            )
            oids[code] = establishment.patient_id_oid
    return platform, oids


def _stored(platform: Any) -> dict[tuple[str, str], tuple[str, str]]:
    from sqlalchemy import select

    from partage.db import transaction
    from partage.identity.models import LocalIdentity
    from partage.security.models import Establishment

    with transaction(platform.sessions) as session:
        rows = session.execute(
            select(Establishment.code, LocalIdentity.local_id, LocalIdentity.address)
            .add_columns(LocalIdentity.phone)
            .join(Establishment, Establishment.id == LocalIdentity.establishment_id)
        )
        return {(code, local): (address, phone) for code, local, address, phone in rows}


def bench(url: str, data_dir: Path, senders: int, seconds: float, messages: int) -> None:
    from partage.identity.feed import AdtFeed
    from partage.identity.synthetic import generate_population
    from partage.interop.hl7.adt import parse_adt

    platform, oids = _platform(data_dir, url)
    wanted = messages or int(MAX_RATE * seconds)
    records_needed = int(wanted / 1.53) + 40 * senders  # 1.53 messages per record
    started = time.perf_counter()
    population = generate_population(
        persons=max(10, int(records_needed / 1.8) + 10), sources=SOURCES, seed=SEED
    )
    records = [item.record for item in population]
    slices = [records[k::senders] for k in range(senders)]
    batches = [messages_for(part, oids, f"S{k}-") for k, part in enumerate(slices)]
    if messages:
        share = -(-messages // senders)
        batches = [batch[:share] for batch in batches]
    print(
        f"prepared {sum(len(b) for b in batches):,} messages for {senders} senders in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    listener = Listener(AdtFeed(platform))
    context = multiprocessing.get_context("spawn")
    start, until, results = context.Event(), context.Value("d", 0.0), context.Queue()
    processes = [
        context.Process(
            target=sender, args=(listener.port, [m.text for m in batch], start, until, results, k)
        )
        for k, batch in enumerate(batches)
    ]
    try:
        for process in processes:
            process.start()
        time.sleep(3.0)  # the senders are up, connected and waiting
        began = time.time()
        until.value = began + (seconds if not messages else 86400.0)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        start.set()
        outcome = [results.get(timeout=7200) for _ in batches]
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        for process in processes:
            process.join(30)
        senders_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        listener.close()
    listener_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    ended = max(item[3] for item in outcome)
    codes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    latencies: list[float] = []
    last_ok: dict[tuple[str, str], Outgoing] = {}
    acked = 0
    events: Counter[str] = Counter()
    for number, answers, times, _ in outcome:
        latencies.extend(times)
        for message, (code, reason) in zip(batches[number], answers, strict=False):
            codes[code] += 1
            acked += 1
            events[message.event] += 1
            if code == "AA":
                last_ok[(message.source, message.ipp)] = message
            else:
                reasons[f"{code} {reason}"] += 1
    elapsed = ended - began
    rate = acked / elapsed
    print(
        f"{acked:,} messages acknowledged in {elapsed:.1f} s by {senders} senders "
        f"({', '.join(f'{e} {n:,}' for e, n in sorted(events.items()))}): {rate:,.0f} msg/s — "
        f"target ≥ {TARGET_PER_SECOND:.0f}/s, ratio {rate / TARGET_PER_SECOND:.2f}×"
    )
    latencies.sort()
    print(
        f"ACK round trip per message: p50 {statistics.median(latencies):.1f} ms, p95 "
        f"{latencies[int(len(latencies) * 0.95)]:.1f} ms, max {latencies[-1]:.1f} ms"
    )
    print(
        f"CPU: the listener process {listener_cpu:.1f} s ({listener_cpu / elapsed:.2f} of a core: "
        f"its Python runs one thread at a time), the {senders} senders "
        f"{senders_cpu.ru_utime + senders_cpu.ru_stime:.1f} s in all"
    )
    print("ACK codes: " + ", ".join(f"{c} {n:,}" for c, n in sorted(codes.items())))
    for reason, n in reasons.most_common():
        print(f"  {n:,} × {reason}")
    stored = _stored(platform)
    platform.close()
    expected = {key: parse_adt(m.text).patient for key, m in last_ok.items()}
    missing = [key for key in expected if key not in stored]
    extra = [key for key in stored if key not in expected]
    stale = [
        key
        for key, patient in expected.items()
        if key in stored
        and patient is not None
        and stored[key] != (patient.traits.address, patient.traits.phone)
    ]
    verdict = "yes" if not (missing or extra or stale) else "NO"
    print(
        f"count in = count stored: {verdict} — {len(expected):,} patients acknowledged AA, "
        f"{len(stored):,} identities stored ({len(missing)} missing, {len(extra)} unexpected); "
        f"last acknowledged address and phone stored: {len(expected) - len(stale):,}, "
        f"different: {len(stale)}"
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
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--messages", type=int, default=0, help="a count instead of a duration")
    args = parser.parse_args()
    from identity_bulk import database

    backend = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    what = f"{args.messages:,} messages" if args.messages else f"{args.seconds:.0f} s"
    print(
        f"Partage ADT feed over MLLP — {backend}, {os.cpu_count()} CPUs, {args.senders} "
        f"senders, {what}"
    )
    with (
        tempfile.TemporaryDirectory(prefix="partage-bench-") as tmp,
        database(args.database_url, Path(tmp), keep=False) as url,
    ):
        bench(url, Path(tmp), args.senders, args.seconds, args.messages)


if __name__ == "__main__":
    main()
