"""The ADT feed end to end: an HL7 client library sends over a real MLLP socket, the
identities land in the master patient index, every message is acknowledged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import hl7.client
import httpx
import pytest
from sqlalchemy import func, select

from partage.audit.models import AuditEvent
from partage.audit.service import verify_chain
from partage.db import transaction
from partage.identity.feed import AdtFeed
from partage.identity.models import LocalIdentity, Person, PersonStatus
from partage.interop.hl7.adt import parse_adt
from partage.platform import Platform
from partage.security.models import Establishment
from tests.identity.factories import unique_family
from tests.interop.test_hl7_adt import adt, cx
from tests.interop.test_mllp import Listener, err, msa
from tests.interop.tokens import system_token


@pytest.fixture
def feed_listener(platform: Platform) -> Iterator[Listener]:
    listener = Listener(AdtFeed(platform))
    yield listener
    listener.close()


def send(port: int, message: str) -> str:
    with hl7.client.MLLPClient("127.0.0.1", port) as client:
        answer = client.send_message(message)
    return answer.decode("utf-8") if isinstance(answer, bytes) else str(answer)


def identity_of(platform: Platform, establishment: Establishment, local_id: str) -> LocalIdentity:
    with transaction(platform.sessions) as session:
        return session.scalars(
            select(LocalIdentity).where(
                LocalIdentity.establishment_id == establishment.id,
                LocalIdentity.local_id == local_id,
            )
        ).one()


def pid_for(establishment: Establishment, ipp: str, family: str, **changes: str) -> dict[int, str]:
    fields = {
        3: cx(ipp, namespace=establishment.code, oid=establishment.patient_id_oid),
        5: f"{family}^JEANNE^JEANNE LOUISE^^^^L",
        7: "19580312",
        8: "F",
        11: "3 rue des Carmes^^POITIERS^^86000^FRA^H~^^^^^^BDL^^86194",
        13: "^PRN^PH^^^^^^^^^0549112233",
        32: "PROV",
    }
    return {**fields, **{int(k[1:]): v for k, v in changes.items()}}


def test_two_establishments_feed_one_person_and_a40_merges_ids(
    platform: Platform,
    make_establishment: Callable[..., Establishment],
    feed_listener: Listener,
) -> None:
    chu, chnv = make_establishment(), make_establishment()
    family = unique_family()
    ack = send(
        feed_listener.port, adt("A28", control_id="C1", pid_changes=pid_for(chu, "1001", family))
    )
    assert msa(ack) == ("AA", "C1")
    ack = send(
        feed_listener.port,
        adt("A04", control_id="N1", pid_changes=pid_for(chnv, "X-77", family.lower())),
    )
    assert msa(ack) == ("AA", "N1")
    first, second = identity_of(platform, chu, "1001"), identity_of(platform, chnv, "X-77")
    assert first.person_id == second.person_id

    # The CHU finds it had a second id for her, and merges it into the first (A40).
    send(
        feed_listener.port,
        adt("A28", control_id="C2", pid_changes=pid_for(chu, "1002", family, f32="PROV")),
    )
    ack = send(
        feed_listener.port,
        adt(
            "A40",
            control_id="C3",
            pid_changes=pid_for(chu, "1001", family),
            mrg=cx("1002", namespace=chu.code, oid=chu.patient_id_oid),
        ),
    )
    assert msa(ack) == ("AA", "C3")
    retired = identity_of(platform, chu, "1002")
    assert not retired.active
    assert retired.replaced_by_id == first.id
    with transaction(platform.sessions) as session:
        person = session.get(Person, identity_of(platform, chu, "1001").person_id)
        assert person is not None
        assert person.status == PersonStatus.active


def test_an_unknown_domain_and_a_bad_a40_are_answered_ae(
    make_establishment: Callable[..., Establishment], feed_listener: Listener
) -> None:
    chu = make_establishment()
    unknown = {3: cx("1", namespace="NOWHERE", oid="1.2.3.4.5.6.7.8.9")}
    ack = send(feed_listener.port, adt("A28", control_id="U1", pid_changes=unknown))
    assert msa(ack)[0] == "AE"
    assert err(ack)[1].startswith("204")
    family = unique_family()
    ack = send(
        feed_listener.port,
        adt(
            "A40",
            control_id="M1",
            pid_changes=pid_for(chu, "5001", family),
            mrg=cx("5999", namespace=chu.code, oid=chu.patient_id_oid),
        ),
    )
    assert msa(ack)[0] == "AE"
    # The refused A40 left nothing behind: not even the surviving identity it carried.
    ack = send(
        feed_listener.port, adt("A31", control_id="M2", pid_changes=pid_for(chu, "5001", family))
    )
    assert msa(ack) == ("AA", "M2")


def test_an_adt_feed_from_two_establishments_is_found_with_ihe_pix(
    platform: Platform,
    make_establishment: Callable[..., Establishment],
    feed_listener: Listener,
    live_server: str,
) -> None:
    """The acceptance path: two hospitals' ADT feeds build one person, which a FHIR client
    finds from either IPP with PIXm."""
    chu, chnv = make_establishment(), make_establishment()
    family = unique_family()
    assert (
        msa(
            send(
                feed_listener.port,
                adt("A01", control_id="P1", pid_changes=pid_for(chu, "77001", family)),
            )
        )[0]
        == "AA"
    )
    assert (
        msa(
            send(
                feed_listener.port,
                adt("A04", control_id="P2", pid_changes=pid_for(chnv, "N-5", family)),
            )
        )[0]
        == "AA"
    )
    token = system_token(live_server, platform, "system/Patient.rs", name="PIX")
    answer = httpx.get(
        f"{live_server}/fhir/Patient/$ihe-pix",
        params={"sourceIdentifier": f"urn:oid:{chu.patient_id_oid}|77001"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    targets = {
        (p["valueIdentifier"]["system"], p["valueIdentifier"]["value"])
        for p in answer.json()["parameter"]
        if p["name"] == "targetIdentifier"
    }
    assert (f"urn:oid:{chnv.patient_id_oid}", "N-5") in targets


def test_a_group_keeps_the_accepted_messages_when_one_is_refused(
    platform: Platform, make_establishment: Callable[..., Establishment]
) -> None:
    """Messages committed together: a refusal, before or after the message wrote anything,
    costs the others nothing, and leaves nothing of itself."""
    chu = make_establishment()
    feed = AdtFeed(platform)
    families = [unique_family() for _ in range(4)]
    unknown = {3: cx("1", namespace="NOWHERE", oid="1.2.3.4.5.6.7.8.9")}
    messages = [
        adt("A28", control_id="G1", pid_changes=pid_for(chu, "G-1", families[0])),
        adt("A28", control_id="G2", pid_changes=pid_for(chu, "G-2", families[1])),
        # Refused once its identity is written: the merged id is unknown.
        adt(
            "A40",
            control_id="G3",
            pid_changes=pid_for(chu, "G-3", families[2]),
            mrg=cx("G-404", namespace=chu.code, oid=chu.patient_id_oid),
        ),
        # Refused before writing anything: no such domain.
        adt("A28", control_id="G4", pid_changes=unknown),
        adt("A28", control_id="G5", pid_changes=pid_for(chu, "G-5", families[3])),
        adt(
            "A31",
            control_id="G6",
            pid_changes=pid_for(chu, "G-1", families[0], f11="9 rue Neuve^^POITIERS^^86000"),
        ),
    ]
    errors = feed.apply([parse_adt(m) for m in messages])
    assert [type(e).__name__ if e else None for e in errors] == [
        None,
        None,
        "AdtError",
        "AdtError",
        None,
        None,
    ]
    with transaction(platform.sessions) as session:
        stored = {
            row.local_id: row
            for row in session.scalars(
                select(LocalIdentity).where(LocalIdentity.establishment_id == chu.id)
            )
        }
        assert set(stored) == {"G-1", "G-2", "G-5"}
        assert stored["G-1"].address == "9 rue Neuve"
        received = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.action == "identity.received",
                AuditEvent.entity_id.in_([str(row.id) for row in stored.values()]),
            )
        )
        assert received == 4
        assert verify_chain(session, key=platform.audit_key).ok


def test_concurrent_senders_every_acknowledged_message_is_stored(
    platform: Platform,
    make_establishment: Callable[..., Establishment],
    feed_listener: Listener,
) -> None:
    """Several connections at once (their messages committed in groups): every message
    answered AA is stored, the last one sent for a patient is what the index holds."""
    chu = make_establishment()
    senders, per_sender = 6, 12

    def run(number: int) -> list[str]:
        family = unique_family()
        codes = []
        with hl7.client.MLLPClient("127.0.0.1", feed_listener.port) as client:
            for k in range(per_sender):
                street = f"{k} rue des Lices^^POITIERS^^86000"
                ipp = f"C{number}-{k % 4}"  # each patient sent three times, in order
                message = adt(
                    "A28" if k < 4 else "A31",
                    control_id=f"C{number}-{k}",
                    pid_changes=pid_for(chu, ipp, family, f11=street),
                )
                answer = client.send_message(message)
                text = answer.decode("utf-8") if isinstance(answer, bytes) else str(answer)
                codes.append(msa(text)[0])
        return codes

    with ThreadPoolExecutor(senders) as pool:
        results = list(pool.map(run, range(senders)))
    assert all(code == "AA" for codes in results for code in codes)
    with transaction(platform.sessions) as session:
        stored = {
            row.local_id: row.address
            for row in session.scalars(
                select(LocalIdentity).where(LocalIdentity.establishment_id == chu.id)
            )
        }
    assert len(stored) == senders * 4
    for number in range(senders):
        for patient in range(4):
            last = max(k for k in range(per_sender) if k % 4 == patient)
            assert stored[f"C{number}-{patient}"] == f"{last} rue des Lices"
