"""IHE PAM-FR ADT parsing and acknowledgements, without any network.

The message builders at the top are shared with test_mllp. The identities are invented;
the INS numbers carry valid keys.
"""

from __future__ import annotations

import contextlib
from datetime import date

import hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from partage.identity.traits import IdentityStatus, Sex
from partage.interop.hl7 import (
    AckCode,
    AdtError,
    ErrorCode,
    IdentityAttribute,
    build_ack,
    parse_adt,
)


def with_key(body: str) -> str:
    """A NIR/NIA body (13 characters) completed with its control key."""
    number = int(body[:5] + {"2A": "19", "2B": "18"}.get(body[5:7], body[5:7]) + body[7:])
    return f"{body}{97 - number % 97:02d}"


NIR = with_key("2840638175294")
NIA = with_key("1750299123456")
NIR_OID = "1.2.250.1.213.1.4.8"
NIA_OID = "1.2.250.1.213.1.4.9"
DOMAIN_OID = "1.2.250.1.71.4.2.2.123456789"
IPP = "20668"

STRUCTURES = {
    "A01": "ADT_A01",
    "A04": "ADT_A01",
    "A08": "ADT_A01",
    "A28": "ADT_A05",
    "A31": "ADT_A05",
    "A40": "ADT_A39",
    "A02": "ADT_A02",
    "A03": "ADT_A03",
}


def cx(value: str, kind: str = "PI", *, namespace: str = "CHU_NICE", oid: str = DOMAIN_OID) -> str:
    return f"{value}^^^{namespace}&{oid}&ISO^{kind}"


def ins(value: str = NIR, oid: str = NIR_OID) -> str:
    name = "ASIP-SANTE-INS-NIA" if oid == NIA_OID else "ASIP-SANTE-INS-NIR"
    return f"{value}^^^{name}&{oid}&ISO^INS"


DEFAULT_PID = {
    3: f"{cx(IPP)}~{ins()}",
    5: "DUVAL^CATHERINE^CATHERINE MARIE-ANNE^^^^L~MARTIN^CATHERINE^^^^^D",
    6: "ROBIN^^^^^^M",
    7: "19910415",
    8: "F",
    11: "14 avenue Victor Hugo^Bat. B^NICE^^06000^FRA^H~^^^^^^BDL^^06088",
    13: "^PRN^PH^^^^^^^^^0612345678~^NET^Internet^catherine@example.org",
    18: cx("AN2618", "AN"),
    32: "QUAL",
}


def pid(changes: dict[int, str] | None = None) -> str:
    fields = {**DEFAULT_PID, **(changes or {})}
    return "PID|" + "|".join(fields.get(n, "") for n in range(1, max(fields) + 1))


def adt(
    event: str = "A28",
    *,
    control_id: str = "MSG0001",
    pid_changes: dict[int, str] | None = None,
    version: str = "2.5^FRA^2.10",
    message_type: str = "ADT",
    charset: str = "UNICODE UTF-8",
    processing_id: str = "P",
    mrg: str | None = None,
    segments: list[str] | None = None,
) -> str:
    """One message, segments CR-terminated. `segments` replaces everything after MSH/EVN."""
    structure = STRUCTURES.get(event, "ADT_A01")
    msh = (
        f"MSH|^~\\&|EASILY|CHU_NICE|PARTAGE|GHT_VIENNE|20240214100721||"
        f"{message_type}^{event}^{structure}|{control_id}|{processing_id}|{version}||||||{charset}"
    )
    evn = "EVN||20240214100721||||20240214100500"
    if segments is None:
        segments = [pid(pid_changes)]
        if event == "A40":
            segments.append(f"MRG|{mrg if mrg is not None else cx('20999')}")
        else:
            segments.append("PV1||N" if structure == "ADT_A05" else "PV1||I|CARDIO^101^1")
    return "".join(s + "\r" for s in [msh, evn, *segments])


def refused(raw: bytes | str) -> AdtError:
    with pytest.raises(AdtError) as caught:
        parse_adt(raw)
    return caught.value


def segment(ack: str, name: str) -> list[str]:
    """The fields of one segment of an acknowledgement, by HL7 number (index 0 is the name)."""
    line = next(s for s in ack.split("\r") if s.startswith(name))
    fields = line.split("|")
    return ["MSH", "|", *fields[1:]] if name == "MSH" else fields


# --- the events fed into the identity base ------------------------------------------------


@pytest.mark.parametrize("event", ["A01", "A04", "A08", "A28", "A31"])
def test_identity_events_give_the_whole_local_identity(event: str) -> None:
    message = parse_adt(adt(event).encode())

    assert message.handled
    assert message.event == event
    assert message.control_id == "MSG0001"
    assert message.header.version == "2.5"
    assert message.header.sending_application.namespace_id == "EASILY"
    assert message.header.sending_facility.namespace_id == "CHU_NICE"
    assert message.merged_id is None
    patient = message.patient
    assert patient is not None
    assert patient.ipp.value == IPP
    assert patient.ipp.domain == DOMAIN_OID
    assert patient.ipp.authority.namespace_id == "CHU_NICE"
    assert patient.status is IdentityStatus.qualified
    assert patient.attributes == frozenset()
    assert patient.ins_oid == NIR_OID
    traits = patient.traits
    assert traits.birth_family_name == "DUVAL"
    assert traits.given_names == ("CATHERINE", "MARIE-ANNE")
    assert traits.used_family_name == "MARTIN"
    assert traits.sex is Sex.female
    assert traits.birth_date == date(1991, 4, 15)
    assert traits.birth_place_code == "06088"
    assert traits.address == "14 avenue Victor Hugo, Bat. B"
    assert traits.postal_code == "06000"
    assert traits.city == "NICE"
    assert traits.phone == "0612345678"
    assert traits.ins == NIR
    record = patient.source_record()
    assert record.key == (DOMAIN_OID, IPP)
    assert record.ins_qualified


def test_a40_gives_the_surviving_and_the_absorbed_ipp() -> None:
    message = parse_adt(adt("A40", mrg=cx("20999")))

    assert message.patient is not None
    assert message.patient.ipp.value == IPP
    assert message.merged_id is not None
    assert message.merged_id.value == "20999"
    assert message.merged_id.domain == DOMAIN_OID


def test_the_domain_is_the_namespace_when_the_authority_has_no_oid() -> None:
    message = parse_adt(adt(pid_changes={3: "79278^^^EASILY^PI"}))

    assert message.patient is not None
    assert message.patient.source_record().key == ("EASILY", "79278")
    assert message.patient.traits.ins == ""
    assert message.patient.ins_oid == ""


@pytest.mark.parametrize("event", ["A02", "A03", "A11", "A21", "A47"])
def test_other_adt_events_are_read_down_to_their_header_only(event: str) -> None:
    # Even without a PID: these are accepted and not processed, never refused.
    message = parse_adt(adt(event, segments=["PV1||I"]))

    assert not message.handled
    assert message.patient is None
    assert message.event == event


def test_the_event_is_taken_from_evn_when_msh_9_has_none() -> None:
    text = adt("A31").replace("ADT^A31^ADT_A05", "ADT").replace("EVN||", "EVN|A31|")

    assert parse_adt(text).event == "A31"


# --- PID field rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "given"),
    [
        ("DUVAL^JEAN-PIERRE^JEAN-PIERRE LOUIS MARIE^^^^L", ("JEAN-PIERRE", "LOUIS", "MARIE")),
        ("DUVAL^JEAN-PIERRE^LOUIS MARIE^^^^L", ("JEAN-PIERRE", "LOUIS", "MARIE")),
        ("DUVAL^Jean^JEAN, Louis,Marie^^^^L", ("Jean", "Louis", "Marie")),
        ("DUVAL^JEAN PIERRE^JEAN PIERRE PAUL^^^^L", ("JEAN PIERRE", "PAUL")),
        ("DUVAL^CATHERINE^^^^^L", ("CATHERINE",)),
        ("DUVAL^^^^^^L", ()),
        ('DUVAL^""^^^^^L', ()),
    ],
)
def test_birth_given_names(name: str, given: tuple[str, ...]) -> None:
    message = parse_adt(adt(pid_changes={5: name}))

    assert message.patient is not None
    assert message.patient.traits.given_names == given


def test_a_name_without_type_is_the_birth_name_when_no_l_is_sent() -> None:
    message = parse_adt(adt(pid_changes={5: "DUVAL^CATHERINE"}))

    assert message.patient is not None
    assert message.patient.traits.birth_family_name == "DUVAL"
    assert message.patient.traits.used_family_name == ""


@pytest.mark.parametrize(
    ("codes", "status", "attributes"),
    [
        ("PROV", IdentityStatus.provisional, set()),
        ("VALI", IdentityStatus.validated, set()),
        ("RECUP", IdentityStatus.recovered, set()),
        ("QUAL", IdentityStatus.qualified, set()),
        ("VIDE", IdentityStatus.provisional, set()),
        ("", IdentityStatus.provisional, set()),
        ("PROV~DOUT~FICT", IdentityStatus.provisional, {"doubtful", "fictitious"}),
        ("PROV~DOUTE~FICTI", IdentityStatus.provisional, {"doubtful", "fictitious"}),
        ("VALI~HOMA~USUR", IdentityStatus.validated, {"homonym", "usurped"}),
        ("QUAL~VALI", IdentityStatus.validated, set()),
        ("vali~DESA", IdentityStatus.validated, set()),
    ],
)
def test_pid_32_status_and_attributes(
    codes: str, status: IdentityStatus, attributes: set[str]
) -> None:
    message = parse_adt(adt(pid_changes={32: codes}))

    assert message.patient is not None
    assert message.patient.status is status
    assert message.patient.attributes == attributes
    assert all(isinstance(a, IdentityAttribute) for a in message.patient.attributes)


def test_unknown_pid_32_codes_are_kept_as_sent() -> None:
    message = parse_adt(adt(pid_changes={32: "VALI~DPOT"}))

    assert message.patient is not None
    assert message.patient.reliability_codes == ("VALI", "DPOT")


def test_a_nir_is_preferred_to_a_nia_whatever_their_order() -> None:
    nia_first = f"{cx(IPP)}~{ins(NIA, NIA_OID)}~{ins()}"
    message = parse_adt(adt(pid_changes={3: nia_first}))

    assert message.patient is not None
    assert message.patient.traits.ins == NIR


def test_a_nia_alone_is_the_ins() -> None:
    message = parse_adt(adt(pid_changes={3: f"{ins(NIA, NIA_OID)}~{cx(IPP)}"}))

    assert message.patient is not None
    assert message.patient.traits.ins == NIA
    assert message.patient.ins_oid == NIA_OID


@pytest.mark.parametrize("oid", ["1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"])
def test_test_and_demo_nirs_are_read_and_their_authority_kept(oid: str) -> None:
    message = parse_adt(adt(pid_changes={3: f"{cx(IPP)}~{ins(NIA, NIA_OID)}~{ins(NIR, oid)}"}))

    assert message.patient is not None
    assert message.patient.traits.ins == NIR  # a NIR, preferred to the NIA
    assert message.patient.ins_oid == oid


def test_a_corsican_nir_key_is_computed_with_19_for_2a() -> None:
    corsican = with_key("18512" + "2A" + "004123")
    message = parse_adt(adt(pid_changes={3: f"{cx(IPP)}~{ins(corsican)}"}))

    assert message.patient is not None
    assert message.patient.traits.ins == corsican


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("19910415", date(1991, 4, 15)),
        ("199104151230", date(1991, 4, 15)),
        ("19910415123045.12+0100", date(1991, 4, 15)),
        ("1991", None),
        ("199104", None),
        ("", None),
    ],
)
def test_birth_dates_complete_or_dropped(value: str, expected: date | None) -> None:
    message = parse_adt(adt(pid_changes={7: value}))

    assert message.patient is not None
    assert message.patient.traits.birth_date == expected


@pytest.mark.parametrize(("code", "sex"), [("M", Sex.male), ("O", Sex.unknown), ("", Sex.unknown)])
def test_sex_codes(code: str, sex: Sex) -> None:
    message = parse_adt(adt(pid_changes={8: code}))

    assert message.patient is not None
    assert message.patient.traits.sex is sex


def test_the_first_non_home_address_is_taken_when_no_home_one_is_sent() -> None:
    message = parse_adt(adt(pid_changes={11: "^^^^^^BDL^^99134~3 rue X^^POITIERS^^86000^^C"}))

    assert message.patient is not None
    assert message.patient.traits.birth_place_code == "99134"  # born abroad (Spain)
    assert message.patient.traits.city == "POITIERS"


def test_phone_from_xtn_1_when_xtn_12_is_empty() -> None:
    message = parse_adt(adt(pid_changes={13: "^NET^Internet^a@b.fr~05 49 00 00 00^PRN^PH"}))

    assert message.patient is not None
    assert message.patient.traits.phone == "05 49 00 00 00"


def test_escape_sequences_are_resolved() -> None:
    message = parse_adt(
        adt(pid_changes={5: "L\\X27\\HERMITE^ANNE^^^^^L", 11: "1\\S\\3 rue^^A\\T\\B^^1^^H"})
    )

    assert message.patient is not None
    assert message.patient.traits.birth_family_name == "L'HERMITE"
    assert message.patient.traits.address == "1^3 rue"
    assert message.patient.traits.city == "A&B"


def test_other_separators_are_honoured() -> None:
    text = adt().replace("|", "#").replace("^", "$").replace("~", "*").replace("&", "%")

    message = parse_adt(text)

    assert message.patient is not None
    assert message.patient.traits.given_names == ("CATHERINE", "MARIE-ANNE")
    ack = build_ack(message, code=AckCode.accept)
    assert ack.startswith("MSH#$*\\%#")


def test_line_feeds_between_segments_are_tolerated() -> None:
    message = parse_adt(adt().replace("\r", "\r\n"))

    assert message.patient is not None
    assert message.patient.traits.birth_family_name == "DUVAL"


# --- character sets -----------------------------------------------------------------------


def test_latin_1_declared_in_msh_18() -> None:
    text = adt(charset="8859/1", pid_changes={5: "BÉNÉZET^HÉLÈNE^^^^^L"})

    message = parse_adt(text.encode("latin-1"))

    assert message.patient is not None
    assert message.patient.traits.birth_family_name == "BÉNÉZET"


def test_utf_8_then_latin_1_when_msh_18_is_empty() -> None:
    text = adt(charset="", pid_changes={5: "BÉNÉZET^HÉLÈNE^^^^^L"})

    for raw in (text.encode("utf-8"), text.encode("latin-1")):
        message = parse_adt(raw)
        assert message.patient is not None
        assert message.patient.traits.given_names == ("HÉLÈNE",)


def test_bytes_invalid_in_the_declared_charset_are_an_error() -> None:
    text = adt(charset="UNICODE UTF-8", pid_changes={5: "BÉNÉZET^HÉLÈNE^^^^^L"})

    error = refused(text.encode("latin-1"))

    assert (error.ack, error.code, error.location) == (AckCode.error, 102, "MSH-18")
    assert error.header is not None
    assert error.header.control_id == "MSG0001"


def test_an_unknown_charset_is_rejected() -> None:
    error = refused(adt(charset="ISO IR87").encode())

    assert (error.ack, error.code) == (AckCode.reject, ErrorCode.table_value_not_found)


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "location"),
    [
        ({3: ins()}, ErrorCode.required_field_missing, "PID-3"),
        ({3: "20668^^^^PI"}, ErrorCode.required_field_missing, "PID-3[1].4"),
        ({3: "^^^CHU&1.2.3&ISO^PI"}, ErrorCode.required_field_missing, "PID-3[1].1"),
        ({3: "1^^^CHU&1.2.x&ISO^PI"}, ErrorCode.data_type, "PID-3[1].4"),
        ({3: f"{cx(IPP)}~{ins(NIR[:-2] + '00')}"}, ErrorCode.data_type, "PID-3[2].1"),
        ({3: f"{cx(IPP)}~{ins(NIR, '1.2.3.4')}"}, ErrorCode.table_value_not_found, "PID-3[2].4"),
        ({5: "^CATHERINE^^^^^L"}, ErrorCode.required_field_missing, "PID-5"),
        ({5: "MARTIN^CATHERINE^^^^^D"}, ErrorCode.required_field_missing, "PID-5"),
        ({7: "19910231"}, ErrorCode.data_type, "PID-7"),
        ({7: "15/04/1991"}, ErrorCode.data_type, "PID-7"),
        ({7: "199113"}, ErrorCode.data_type, "PID-7"),
        ({8: "X"}, ErrorCode.table_value_not_found, "PID-8"),
        ({11: "^^^^^^BDL^^NICE"}, ErrorCode.data_type, "PID-11[1].9"),
    ],
)
def test_content_errors_are_ae_with_their_location(
    changes: dict[int, str], code: ErrorCode, location: str
) -> None:
    error = refused(adt(pid_changes=changes))

    assert error.ack is AckCode.error
    assert error.code == code
    assert error.location == location
    assert error.header is not None and error.header.control_id == "MSG0001"


@pytest.mark.parametrize(
    ("text", "code", "location"),
    [
        (adt(segments=["PV1||N"]), ErrorCode.segment_sequence, "PID"),
        (adt(segments=[pid(), pid()]), ErrorCode.segment_sequence, "PID"),
        (adt("A40", segments=[pid()]), ErrorCode.segment_sequence, "MRG"),
        (adt("A40", mrg=cx("20999", oid="1.2.3")), ErrorCode.unknown_key, "MRG-1"),
        (adt("A40", mrg=cx(IPP)), ErrorCode.duplicate_key, "MRG-1"),
        (adt("A40", mrg="20999^^^^PI"), ErrorCode.required_field_missing, "MRG-1[1].4"),
        (adt(control_id=""), ErrorCode.required_field_missing, "MSH-10"),
    ],
)
def test_structure_errors_are_ae(text: str, code: ErrorCode, location: str) -> None:
    error = refused(text)

    assert (error.ack, error.code, error.location) == (AckCode.error, code, location)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (adt(version="2.3.1"), ErrorCode.unsupported_version),
        (adt(version="2.6"), ErrorCode.unsupported_version),
        (adt(message_type="ORU"), ErrorCode.unsupported_message_type),
        (adt(message_type=""), ErrorCode.required_field_missing),
        (adt("Z99"), ErrorCode.unsupported_event),
        (adt(processing_id="X"), ErrorCode.unsupported_processing_id),
        (adt() + adt(control_id="MSG0002"), ErrorCode.segment_sequence),
    ],
)
def test_unprocessable_messages_are_ar(text: str, code: ErrorCode) -> None:
    error = refused(text)

    assert error.ack is AckCode.reject
    assert error.code == code
    assert error.header is not None and error.header.control_id == "MSG0001"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"hello world",
        b"PID|||1^^^A^PI",
        b"MSH",
        b"MSH|^~\\&",
        b"MSH|^^\\&|A|B",
        b"MSHa^~\\&|A",
        b"\x00\xff\xfe" * 10,
        b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rxx|bad segment",
    ],
)
def test_what_is_not_hl7_is_rejected(raw: bytes) -> None:
    error = refused(raw)

    assert error.ack is AckCode.reject


def test_a_message_that_cannot_be_split_still_reports_its_control_id() -> None:
    error = refused(adt(control_id="SPLIT1") + "not a segment|x\r")

    assert (error.ack, error.code) == (AckCode.reject, ErrorCode.segment_sequence)
    assert error.header is not None and error.header.control_id == "SPLIT1"


# --- acknowledgements -----------------------------------------------------------------


def test_accept_ack_swaps_sender_and_receiver_and_echoes_the_control_id() -> None:
    ack = build_ack(parse_adt(adt("A01")), code="AA")

    msh = segment(ack, "MSH")
    assert msh[3:7] == ["PARTAGE", "GHT_VIENNE", "EASILY", "CHU_NICE"]
    assert msh[9] == "ACK^A01^ACK"
    assert msh[10] and msh[10] != "MSG0001"
    assert (msh[11], msh[12], msh[18]) == ("P", "2.5^FRA^2.10", "UNICODE UTF-8")
    assert segment(ack, "MSA")[1:3] == ["AA", "MSG0001"]
    assert "ERR" not in ack
    parsed = hl7.parse(ack)
    assert str(parsed.segment("MSA")[2]) == "MSG0001"


def test_control_ids_of_acks_are_unique() -> None:
    message = parse_adt(adt())
    ids = {segment(build_ack(message, code="AA"), "MSH")[10] for _ in range(1000)}

    assert len(ids) == 1000
    assert all(len(i) <= 20 for i in ids)


def test_error_ack_carries_the_err_segment() -> None:
    error = refused(adt(pid_changes={11: "^^^^^^BDL^^NICE"}))

    ack = build_ack(error.header, code=error.ack, error=error)

    assert segment(ack, "MSA")[1:3] == ["AE", "MSG0001"]
    err = segment(ack, "ERR")
    assert err[2] == "PID^1^11^1^9"
    assert err[3] == "102^Data type error^HL70357"
    assert err[4] == "E"
    assert "INSEE" in err[8]
    assert "NICE" not in err[8]  # the refused value is not echoed back


def test_reject_ack_of_an_unsupported_version_answers_in_that_version() -> None:
    error = refused(adt(version="2.3"))

    ack = build_ack(error.header, code=error.ack, error=error)

    assert segment(ack, "MSH")[12] == "2.3"
    assert segment(ack, "MSA")[1:3] == ["AR", "MSG0001"]
    assert segment(ack, "ERR")[3] == "203^Unsupported version id^HL70357"


def test_an_ack_is_built_from_raw_bytes_as_far_as_they_go() -> None:
    broken = b"MSH|^~\\&|LAB|CHU|||2024||ORU^R01|C42|P|2.5\rgarbage"

    ack = build_ack(broken, code="AR")

    assert segment(ack, "MSH")[5:7] == ["LAB", "CHU"]
    assert segment(ack, "MSA")[1:3] == ["AR", "C42"]


def test_an_ack_for_bytes_without_msh_has_an_empty_control_id() -> None:
    error = refused(b"\x00garbage")

    ack = build_ack(b"\x00garbage", code=error.ack, error=error)

    assert ack.startswith("MSH|^~\\&|PARTAGE|")
    assert segment(ack, "MSA")[1:3] == ["AR", ""]
    assert segment(ack, "ERR")[3].startswith("100^")


def test_free_text_in_an_ack_is_escaped() -> None:
    error = AdtError(ErrorCode.unknown_key, "IPP|x^y unknown", segment="PID", field=3)

    ack = build_ack(parse_adt(adt()), code="AE", error=error)

    assert segment(ack, "ERR")[8] == "IPP\\F\\x\\S\\y unknown"


# --- robustness ---------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise_anything_but_adt_error(raw: bytes) -> None:
    with contextlib.suppress(AdtError):
        parse_adt(raw)
    assert build_ack(raw, code="AR").startswith("MSH|")


@FUZZ
@given(st.text(max_size=2000))
def test_random_text_never_raises_anything_but_adt_error(text: str) -> None:
    with contextlib.suppress(AdtError):
        parse_adt("MSH|^~\\&|" + text)


@FUZZ
@given(
    st.sampled_from(["A01", "A28", "A40", "A02"]),
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=600),
            st.integers(min_value=0, max_value=5),
            st.text(alphabet="|^~\\&\r\nAZaz09 .-\"'é#\x00", max_size=6),
        ),
        max_size=6,
    ),
)
def test_damaged_messages_never_raise_anything_but_adt_error(
    event: str, edits: list[tuple[int, int, str]]
) -> None:
    text = adt(event)
    for position, removed, inserted in edits:
        position %= len(text) + 1
        text = text[:position] + inserted + text[position + removed :]
    for raw in (text, text.encode("utf-8"), text.encode("latin-1", errors="replace")):
        try:
            message = parse_adt(raw)
        except AdtError as error:
            ack = build_ack(error.header or raw, code=error.ack, error=error)
        else:
            ack = build_ack(message, code="AA")
        assert segment(ack, "MSA")[1] in ("AA", "AE", "AR")
