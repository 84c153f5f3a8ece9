"""The MDM feed end to end: a hospital's system sends MDM^T02 / MDM^T10 with python-hl7's
MLLP client over a real socket; the documents land in the registry, are found through
/fhir/DocumentReference with the bytes sent, and every message is acknowledged. Refused
messages store nothing; broken ones never take the listener down."""

from __future__ import annotations

import base64
import contextlib
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import hl7
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from partage.access.decision import decide_deposit
from partage.app import create_app
from partage.audit.models import AuditEvent
from partage.documents import service
from partage.documents.mdm_feed import DUPLICATE_NOTE, MdmFeed
from partage.documents.models import DocumentContent, DocumentEntry, DocumentStatus, SubmissionSet
from partage.documents.synthetic import pdf
from partage.identity.feed import AdtFeed
from partage.identity.service import MODEL_CACHE
from partage.interop.hl7.adt import AdtError
from partage.interop.hl7.mdm import parse_mdm, submission_unique_id
from partage.platform import Platform
from partage.security.models import Establishment
from partage.security.principal import Principal
from tests.conftest import (
    build_platform,
    create_hospital,
    directory_practitioner,
    free_port,
    serving,
)
from tests.documents import cda_samples
from tests.identity.factories import receive, traits, unique_family
from tests.interop.test_hl7_adt import adt, cx
from tests.interop.test_mllp import SB, TIMEOUT, Listener, connect, err, frame, msa, read_ack, send
from tests.interop.tokens import system_token

CHU_OID = "1.2.250.1.999.88.1"
CLINIC_OID = "1.2.250.1.999.88.2"
DOCUMENT_OID = "1.2.250.1.999.88.1.5"  # the CHU's document numbers
SCOPES = "system/DocumentReference.rs system/Binary.r system/Patient.rs"


@dataclass
class Site:
    base: str
    platform: Platform
    chu: Establishment
    clinic: Establishment
    token: str  # the CHU's FHIR client
    rpps: str  # 11 digits; "8" + rpps in the directory
    practitioner_id: uuid.UUID
    listener: Listener

    def counts(self) -> tuple[int, int, int]:
        with self.platform.read_sessions() as session:
            return (
                session.scalar(select(func.count()).select_from(DocumentEntry)) or 0,
                session.scalar(select(func.count()).select_from(DocumentContent)) or 0,
                session.scalar(select(func.count()).select_from(SubmissionSet)) or 0,
            )

    def entry(self, unique_id: str) -> DocumentEntry:
        with self.platform.read_sessions() as session:
            entry = service.entry_by_unique_id(session, unique_id)
            assert entry is not None, unique_id
            session.expunge(entry)
            return entry

    def search(self, ipp: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.base}/fhir/DocumentReference",
            params={"patient.identifier": f"urn:oid:{CHU_OID}|{ipp}", "_count": "100"},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return [e["resource"] for e in response.json().get("entry", [])]

    def fetch(self, url: str) -> bytes:
        response = httpx.get(url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        assert response.status_code == 200, response.text
        return response.content


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    port = free_port()
    platform, database = build_platform(tmp_path_factory.mktemp("mdm"), port)
    MODEL_CACHE.invalidate()
    chu = create_hospital(platform, "CHU-MDM", CHU_OID)
    clinic = create_hospital(platform, "CLIN-MDM", CLINIC_OID)
    rpps = str(uuid.uuid4().int)[:11]
    practitioner_id = directory_practitioner(platform, "8" + rpps)
    for ipp in ("IPP-1", "IPP-2", "IPP-3", "IPP-4"):
        receive(platform, chu, ipp, traits(unique_family()))
    receive(platform, clinic, "CL-1", traits(unique_family()))
    MODEL_CACHE.invalidate()
    app = create_app(platform.settings, platform=platform)
    listener = Listener(AdtFeed(platform), mdm_handler=MdmFeed(platform))
    try:
        with serving(app, port) as base:
            yield Site(
                base=base,
                platform=platform,
                chu=chu,
                clinic=clinic,
                token=system_token(base, platform, SCOPES, name="DPI", establishment=chu),
                rpps=rpps,
                practitioner_id=practitioner_id,
                listener=listener,
            )
    finally:
        listener.close()
        platform.close()
        database.drop()


# --- messages -----------------------------------------------------------------------------


def _segment(name: str, fields: dict[int, str]) -> str:
    return name + "|" + "|".join(fields.get(n, "") for n in range(1, max(fields) + 1))


def ed(content: bytes, kind: str = "application^pdf") -> str:
    return f"^{kind}^Base64^{base64.b64encode(content).decode()}"


def mdm(
    event: str = "T02",
    *,
    control_id: str | None = None,
    ipp: str = "IPP-1",
    domain: tuple[str, str] = ("CHU-MDM", CHU_OID),
    facility: str = f"CHU-MDM^{CHU_OID}^ISO",
    number: str | None = None,
    txa: dict[int, str] | None = None,
    obx: list[str] | None = None,
    content: bytes | None = None,
    rpps: str | None = None,
) -> str:
    """An MDM message as a hospital's system writes it: a PDF report by default."""
    control_id = control_id or f"M{uuid.uuid4().hex[:12]}"
    msh = (
        f"MSH|^~\\&|DPI^1.2.250.1.999.88.9^ISO|{facility}|PARTAGE|GHT|20240312143000+0100||"
        f"MDM^{event}^MDM_T02|{control_id}|P|2.5^FRA^2.10||||||UNICODE UTF-8"
    )
    # With an RPPS, a professional of the directory; without, a local staff code (a label).
    author = (
        f"{rpps}^MARTIN^Claire^^^Dr^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^L^^^RPPS"
        if rpps
        else "U0042^BERNARD^Paul^^^Dr^^^CHU-MDM^L"
    )
    fields = {
        1: "1",
        2: "11488-4^Compte rendu de consultation^LN",
        3: "AP",
        4: "202403121000+0100",
        6: "202403121100+0100",
        9: author,
        12: f"{number or uuid.uuid4().hex[:16]}^CHU-MDM^{DOCUMENT_OID}^ISO",
        17: "LA",
        18: "N",
        19: "AV",
    }
    fields.update(txa or {})
    if obx is None:
        body = content if content is not None else pdf(["Compte rendu", control_id])
        obx = [f"OBX|1|ED|11488-4^Compte rendu^LN||{ed(body)}||||||F"]
    segments = [
        msh,
        "EVN||20240312143000",
        f"PID|||{ipp}^^^{domain[0]}&{domain[1]}&ISO^PI||DUPONT^MARIE^^^^^L||19700101|F",
        "PV1|1|I",
        _segment("TXA", fields),
        *obx,
    ]
    return "\r".join(segments) + "\r"


def unique_id(number: str) -> str:
    return f"{DOCUMENT_OID}^{number}"


def _err_code(ack: str) -> str:
    return err(ack)[1].split("^")[0]


# --- deposits -----------------------------------------------------------------------------


def test_a_pdf_t02_lands_and_is_found_with_its_bytes(site: Site) -> None:
    content = pdf(["Compte rendu de consultation", "Patient vue ce jour."], size=40_000, seed="t02")
    number = uuid.uuid4().hex[:16]
    before = site.counts()
    ack = send(
        site.listener.port,
        mdm(control_id="PDF1", number=number, content=content, rpps=site.rpps),
    )
    assert msa(ack) == ("AA", "PDF1")
    assert str(hl7.parse(ack).segment("MSH")[9]) == "ACK^T02^ACK"
    assert site.counts() == (before[0] + 1, before[1] + 1, before[2] + 1)

    entry = site.entry(unique_id(number))
    assert entry.mime_type == "application/pdf"
    assert (entry.type_system, entry.type_code) == ("http://loinc.org", "11488-4")
    assert entry.author_practitioner_id == site.practitioner_id
    assert entry.creation_time.replace(tzinfo=UTC) == datetime(2024, 3, 12, 10, 0, tzinfo=UTC)
    assert entry.service_start is not None
    assert entry.confidentiality == "N"
    assert entry.format_code == "urn:ihe:iti:xds-sd:pdf:2008"
    with site.platform.read_sessions() as session:
        submission = session.get(SubmissionSet, entry.submission_set_id)
        assert submission is not None
        assert submission.channel == "mdm"
        assert submission.submitted_by == "MDM CHU-MDM"
        assert submission.source_id == "1.2.250.1.999.88.9"  # MSH-3's OID

    found = {d["id"]: d for d in site.search("IPP-1")}
    resource = found[str(entry.id)]
    assert resource["author"][0]["reference"] == f"Practitioner/{site.practitioner_id}"
    attachment = resource["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert site.fetch(attachment["url"]) == content


def test_the_interface_principal_is_admitted_for_its_own_patients_only(site: Site) -> None:
    principal = Principal(kind="client", label="MDM CHU-MDM", establishment_id=site.chu.id)
    assert decide_deposit(principal, identity_establishment_id=site.chu.id).allowed
    assert not decide_deposit(principal, identity_establishment_id=site.clinic.id).allowed


def test_a_cda_t02_takes_its_metadata_from_the_header_and_a_t10_replaces_it(site: Site) -> None:
    cda = cda_samples.structured("Sortie le 12 mars.", confidentiality="R")
    first = uuid.uuid4().hex[:16]
    # Type, author, dates left out of the TXA: the CDA header gives them.
    blank = {2: "", 4: "", 6: "", 9: "", 18: ""}
    obx = [f"OBX|1|ED|11490-0^Lettre de liaison^LN||{ed(cda, 'text^xml')}||||||F"]
    ack = send(site.listener.port, mdm(control_id="CDA1", number=first, txa=blank, obx=obx))
    assert msa(ack) == ("AA", "CDA1"), ack

    original = site.entry(unique_id(first))
    assert original.mime_type == "text/xml"
    assert original.type_code == "11490-0"
    assert original.title == "Lettre de liaison de sortie"
    assert original.author_label == "Claire DUBOIS (CHU de Poitiers)"
    assert original.author_practitioner_id is None
    assert original.confidentiality == "R"
    assert original.creation_time.replace(tzinfo=UTC) == datetime(2024, 3, 12, 13, 30, tzinfo=UTC)

    # The corrected letter replaces it (T10: TXA-13 names the parent document).
    second = uuid.uuid4().hex[:16]
    corrected = cda_samples.structured("Sortie le 13 mars.", confidentiality="R")
    parent = f"{first}^CHU-MDM^{DOCUMENT_OID}^ISO"
    ack = send(
        site.listener.port,
        mdm(
            "T10",
            control_id="CDA2",
            number=second,
            txa={**blank, 13: parent},
            obx=[f"OBX|1|ED|11490-0^Lettre de liaison^LN||{ed(corrected, 'TEXT^XML')}"],
        ),
    )
    assert msa(ack) == ("AA", "CDA2"), ack
    assert str(hl7.parse(ack).segment("MSH")[9]) == "ACK^T10^ACK"
    replacement = site.entry(unique_id(second))
    assert replacement.version == 2
    assert replacement.lineage_id == original.lineage_id
    assert site.entry(unique_id(first)).status == DocumentStatus.superseded

    current = {d["id"] for d in site.search("IPP-1") if d["status"] == "current"}
    assert str(replacement.id) in current and str(original.id) not in current
    read = httpx.get(
        f"{site.base}/fhir/DocumentReference/{original.id}",
        headers={"Authorization": f"Bearer {site.token}"},
    )
    assert read.json()["status"] == "superseded"

    # A superseded version, or a document never received, cannot be replaced.
    ack = send(
        site.listener.port,
        mdm("T10", txa={**blank, 13: parent}, obx=[f"OBX|1|ED|||{ed(corrected, 'text^xml')}"]),
    )
    assert msa(ack)[0] == "AE" and "not current" in err(ack)[3]
    ack = send(site.listener.port, mdm("T10", txa={13: "NEVER^CHU-MDM"}))
    assert msa(ack)[0] == "AE"
    assert _err_code(ack) == "204" and err(ack)[0] == "TXA^1^13"


def test_text_lines_become_a_plain_text_document(site: Site) -> None:
    number = uuid.uuid4().hex[:16]
    obx = [
        "OBX|1|TX|11488-4^Compte rendu^LN||Consultation du 12/03/2024~  Examen normal.",
        "OBX|2|TX|11488-4^Compte rendu^LN||Conclusion \\T\\ suite : RAS",
    ]
    ack = send(site.listener.port, mdm(control_id="TXT1", ipp="IPP-2", number=number, obx=obx))
    assert msa(ack) == ("AA", "TXT1"), ack
    entry = site.entry(unique_id(number))
    assert entry.mime_type == "text/plain"
    assert entry.title == "Compte rendu de consultation"
    document = next(d for d in site.search("IPP-2") if d["id"] == str(entry.id))
    assert site.fetch(document["content"][0]["attachment"]["url"]) == (
        b"Consultation du 12/03/2024\n  Examen normal.\nConclusion & suite : RAS"
    )


def test_a_document_split_over_obx_segments_and_repetitions_is_put_back_together(
    site: Site,
) -> None:
    content = pdf(["En plusieurs morceaux"], size=9_000, seed="split")
    data = base64.b64encode(content).decode()
    # Cut at places that are not multiples of 4: the pieces are joined before decoding.
    a, b, c = data[:1001], data[1001:5003], data[5003:]
    obx = [
        f"OBX|1|ED|||^application^pdf^Base64^{a}~^^^^{b}",
        f"OBX|2|ED|||^application^pdf^Base64^{c}",
    ]
    number = uuid.uuid4().hex[:16]
    ack = send(site.listener.port, mdm(ipp="IPP-3", number=number, obx=obx))
    assert msa(ack)[0] == "AA", ack
    entry = site.entry(unique_id(number))
    document = next(d for d in site.search("IPP-3") if d["id"] == str(entry.id))
    assert site.fetch(document["content"][0]["attachment"]["url"]) == content


def test_adt_and_mdm_share_the_listener(site: Site) -> None:
    """An A28 creates the identity through the ADT feed; the T02 after it files under it."""
    pid = {
        3: cx("IPP-NEW", namespace="CHU-MDM", oid=CHU_OID),
        5: f"{unique_family()}^LUCIE^^^^^L",
        7: "19800101",
        8: "F",
        32: "PROV",
    }
    assert msa(send(site.listener.port, adt("A28", control_id="ADT1", pid_changes=pid))) == (
        "AA",
        "ADT1",
    )
    ack = send(site.listener.port, mdm(control_id="AFTER-ADT", ipp="IPP-NEW"))
    assert msa(ack) == ("AA", "AFTER-ADT"), ack
    assert len(site.search("IPP-NEW")) == 1


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "location", "words"),
    [
        ({"ipp": "IPP-NOBODY"}, "204", "PID^1^3", "no identity"),
        # A patient of the clinic, sent by the CHU: the same answer as an unknown one.
        ({"ipp": "CL-1", "domain": ("CLIN-MDM", CLINIC_OID)}, "204", "PID^1^3", "no identity"),
        ({"rpps": "10000000000"}, "204", "TXA^1^9", "unknown author"),
        ({"obx": ["OBX|1|ED|||^application^pdf^Base64^%%%not base64%%%"]}, "102", "", "base64"),
        ({"obx": ["OBX|1|ED|||^application^x-msdownload^Base64^AAAA"]}, "103", "", "type"),
        ({"obx": ["OBX|1|NM|||42"]}, "103", "OBX^1^2", "value type"),
        ({"txa": {2: ""}}, "101", "TXA^1^2", "TXA-2"),
        ({"txa": {2: "CR-LOCAL^Compte rendu^L"}}, "103", "TXA^1^2", "LOINC"),
        ({"txa": {12: ""}}, "101", "TXA^1^12", "TXA-12"),
        ({"txa": {17: "IP"}}, "103", "TXA^1^17", "authenticated"),
        ({"txa": {18: "X"}}, "103", "TXA^1^18", "TXA-18"),
        ({"txa": {4: "2024-03-12"}}, "102", "TXA^1^4", "date"),
        ({"obx": []}, "100", "", "OBX"),
        (
            {"obx": [f"OBX|1|ED|||{ed(b'<ClinicalDocument><oops>', 'text^xml')}"]},
            "102",
            "OBX^1^5",
            "CDA",
        ),
    ],
)
def test_refused_documents_are_answered_ae_and_store_nothing(
    site: Site, changes: dict[str, Any], code: str, location: str, words: str
) -> None:
    before = site.counts()
    kwargs: dict[str, Any] = {"rpps": site.rpps, **changes}
    ack = send(site.listener.port, mdm(control_id="REFUSED", **kwargs))
    assert msa(ack) == ("AE", "REFUSED"), ack
    where, condition, severity, message = err(ack)
    assert condition.split("^")[0] == code, ack
    if location:
        assert where == location, ack
    assert severity == "E"
    assert words in message, ack
    assert site.counts() == before


def test_refused_deposits_are_audited(site: Site) -> None:
    send(site.listener.port, mdm(control_id="AUDITED", ipp="IPP-NOBODY"))
    with site.platform.read_sessions() as session:
        rows = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "document.deposit",
                AuditEvent.outcome == "refused",
                AuditEvent.actor_label == "MDM CHU-MDM",
            )
        ).all()
    assert any(row.detail.get("control_id") == "AUDITED" for row in rows)


def test_an_unknown_sender_and_unsupported_messages(site: Site) -> None:
    ack = send(
        site.listener.port,
        mdm(control_id="NOWHERE", facility="NOWHERE", domain=("NOWHERE", "1.2.3.4.5.6")),
    )
    assert msa(ack) == ("AE", "NOWHERE") and _err_code(ack) == "204"
    # T01 carries no content; other MDM events are not processed here: AR.
    ack = send(site.listener.port, mdm("T01", control_id="T01"))
    assert msa(ack) == ("AR", "T01") and _err_code(ack) == "201"
    ack = send(site.listener.port, adt(message_type="ORU", control_id="ORU1"))
    assert msa(ack) == ("AR", "ORU1") and _err_code(ack) == "200"


def test_a_retransmission_is_acknowledged_and_stored_once(site: Site) -> None:
    message = mdm(control_id="AGAIN-1", ipp="IPP-4", rpps=site.rpps)
    before = site.counts()
    assert msa(send(site.listener.port, message)) == ("AA", "AGAIN-1")
    after_first = site.counts()
    assert after_first == (before[0] + 1, before[1] + 1, before[2] + 1)
    ack = send(site.listener.port, message)
    assert msa(ack) == ("AA", "AGAIN-1")
    assert str(hl7.parse(ack).segment("MSA")[3]) == DUPLICATE_NOTE[:80]
    assert site.counts() == after_first

    # The same document number under another control id is another message: AE 205.
    number = str(parse_mdm(message).unique_number.value)
    ack = send(site.listener.port, mdm(control_id="AGAIN-2", ipp="IPP-4", number=number))
    assert msa(ack)[0] == "AE" and _err_code(ack) == "205"
    assert site.counts() == after_first


def test_copies_sent_at_once_on_several_connections_are_stored_once(site: Site) -> None:
    message = mdm(control_id="RACE-1", ipp="IPP-4", rpps=site.rpps)
    before = site.counts()
    with ThreadPoolExecutor(4) as pool:
        acks = list(pool.map(lambda _: send(site.listener.port, message), range(4)))
    assert [msa(ack) for ack in acks] == [("AA", "RACE-1")] * 4
    assert site.counts() == (before[0] + 1, before[1] + 1, before[2] + 1)
    parsed = parse_mdm(message)
    entry = site.entry(unique_id(parsed.unique_number.value))
    document = next(d for d in site.search("IPP-4") if d["id"] == str(entry.id))
    assert site.fetch(document["content"][0]["attachment"]["url"]) == parsed.content


def test_the_submission_id_depends_on_the_sender_and_the_control_id() -> None:
    one = parse_mdm(mdm(control_id="X1")).header
    assert submission_unique_id(one) == submission_unique_id(parse_mdm(mdm(control_id="X1")).header)
    assert submission_unique_id(one) != submission_unique_id(parse_mdm(mdm(control_id="X2")).header)
    other = parse_mdm(mdm(control_id="X1", facility="CLIN-MDM")).header
    assert submission_unique_id(one) != submission_unique_id(other)
    assert submission_unique_id(one).startswith("2.25.")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000) | st.text(max_size=3000).map(lambda t: "MSH|^~\\&|" + t))
def test_parse_mdm_refuses_anything_with_an_hl7_error_only(data: bytes | str) -> None:
    with contextlib.suppress(AdtError):
        parse_mdm(data)


def test_a_message_cut_anywhere_is_refused_or_whole() -> None:
    """Cut short at any byte, a message is refused, or (cut in its trailing empty fields)
    read with its whole content: never a truncated document."""
    content = pdf(["Coupé"], size=3_000, seed="cut")
    message = mdm(control_id="CUT", content=content)
    for cut in range(0, len(message), 3):
        try:
            parsed = parse_mdm(message[:cut])
        except AdtError:
            continue
        assert parsed.content == content, cut


def test_garbage_and_truncated_messages_leave_the_listener_alive(site: Site) -> None:
    before = site.counts()
    port = site.listener.port
    good = mdm(control_id="WHOLE", rpps=site.rpps)
    with connect(port) as sock:
        sock.sendall(b"\x00\xff garbage outside any frame \r\n")
        sock.sendall(frame(b"\x00\x01\x02 not HL7 at all"))
        text, rest = read_ack(sock)
        assert msa(text)[0] == "AR"
        # Cut in the middle of the content, where the base64 is still valid: the PDF is not.
        cut = good.index("Base64^") + len("Base64^") + 400
        sock.sendall(frame(good[:cut]))
        text, rest = read_ack(sock, rest)
        assert msa(text) == ("AE", "WHOLE") and "truncated" in err(text)[3]
        sock.sendall(frame(good.split("\rTXA|")[0]))
        text, rest = read_ack(sock, rest)
        assert msa(text)[0] == "AE" and _err_code(text) == "100"
        sock.sendall(frame("MSH|^~\\&|DPI|CHU-MDM|||2024||MDM^T02|BROKEN|P|2.5\rTXA|1|\x00\xff"))
        text, rest = read_ack(sock, rest)
        assert msa(text)[0] in ("AE", "AR")
    assert site.counts() == before

    # A connection dropped in the middle of a frame.
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(SB + good.encode()[:500])
    assert msa(send(port, good)) == ("AA", "WHOLE")
    assert site.counts() == (before[0] + 1, before[1] + 1, before[2] + 1)
