"""The ADT feed end to end: an HL7 client library sends over a real MLLP socket, the
identities land in the master patient index, every message is acknowledged."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import hl7.client
import httpx
import pytest
from sqlalchemy import select

from partage.db import transaction
from partage.identity.feed import AdtFeed
from partage.identity.models import LocalIdentity, Person, PersonStatus
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
