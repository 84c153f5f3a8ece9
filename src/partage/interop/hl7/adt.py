"""ADT messages of IHE PAM (French extension, PAM-FR 2.10+), parsed into neutral objects.

`parse_adt` reads one message (bytes as they came off the wire, or text) and returns an
`AdtMessage`, or raises `AdtError` carrying what the acknowledgement must say. Nothing here
touches the database: the identity domain receives the `AdtMessage` through a handler.

Events fed into the identity base:
    A01, A04, A08 (ITI-31) and A28, A31 (ITI-30): create or update the local identity;
    A40 (ITI-30): merge two IPPs of one domain, PID-3 surviving and MRG-1 absorbed.
Every other ADT event (A02, A03, A21...) is valid HL7 that this receiver has nothing to do
with: it is parsed down to its header, `handled` is False, and the caller accepts it (AA)
without calling the handler. An EAI relays a hospital's whole ITI-31 stream; an AR would
ask it to resend or park messages that are correct, and HL7 v2.5 (2.9.2) keeps AR for
messages that cannot be processed (message type, version, processing id).

PAM-FR field rules applied (and where the sender's choice is guessed, the guess):
    PID-3    the repetition typed PI is the IPP; its assigning authority (CX-4.1 namespace,
             CX-4.2 OID) names the identification domain. The repetition typed INS with an
             INS authority OID (NIR 1.2.250.1.213.1.4.8, NIA .4.9, fictitious NIR of the INSi
             test sets .4.10 and of demonstrations .4.11) is the INS, its key checked; a NIR
             is preferred to a NIA. The OID is kept (`ins_oid`): refusing test and demo INS
             in production is the identity domain's decision.
    PID-5    type L: birth name (XPN-1) and birth given names (XPN-2 the first, XPN-3 the
             list the INSi service returns, space separated, normally starting with the
             first); type D: used name. A repetition without type is taken as L when there
             is no L. Hyphenated names ("Jean-Pierre") stay one name.
    PID-7    a complete date (YYYYMMDD[...]) is kept; a partial one (YYYY, YYYYMM) becomes
             None, since no placeholder day is a birth date.
    PID-8    M, F, U; O, A and N (table 0001) become U; empty is U.
    PID-11   type BDL carries the birth place INSEE code in XAD-9; type H (else the first
             other repetition) is the address: XAD-1 street, XAD-3 city, XAD-5 postal code.
    PID-13   the first telephone (not NET/Internet/X.400): XTN-12, else XTN-1, else XTN-6+7.
    PID-32   repeating, French table 0445: one RNIV status (PROV, VALI, RECUP, QUAL; VIDE is
             PROV) and attributes (DOUT/DOUTE doubtful, FICT/FICTI fictitious, HOMA/HOMD/HOMON
             homonym, USUR/USURP usurped). No status means PROV; two statuses keep the least
             trusted. Other codes (DESA, DPOT...) are kept in `reliability_codes` only.
    ""       (HL7 "delete this value") reads as empty: PAM updates carry the whole identity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import IntEnum, StrEnum

from partage.identity.ins import is_valid_ins
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex, SourceRecord

from ._wire import DEFAULT_ENCODING, Encoding, Repetition, Segment, escape, part, split_segments

SUPPORTED_VERSIONS = frozenset({"2.5", "2.5.1"})
HANDLED_EVENTS = frozenset({"A01", "A04", "A08", "A28", "A31", "A40"})

# INS assigning authorities (FR Core `fr-core-patient-ins` slices): INS-NIR, INS-NIR-TEST
# (INSi test sets), INS-NIR-DEMO (demonstration patients), and INS-NIA.
INS_NIR_OIDS = frozenset({"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"})
INS_NIA_OIDS = frozenset({"1.2.250.1.213.1.4.9"})

_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")
_EVENT = re.compile(r"A[0-9]{2}")
# HL7 DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]; only the date part matters here.
_TS = re.compile(
    r"([0-9]{4})([0-9]{2})?([0-9]{2})?"
    r"(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]{1,4})?)?)?)?(?:[+-][0-9]{4})?"
)
_INSEE_COMMUNE = re.compile(r"(?:[0-9]{2}|2[AB])[0-9]{3}")
_NULL = '""'


class AckCode(StrEnum):
    """MSA-1 in original acknowledgement mode (HL7 table 0008)."""

    accept = "AA"
    error = "AE"  # understood, but wrong in its content: the sender must correct it
    reject = "AR"  # not processable here (type, version, not HL7): resending will not help


class ErrorCode(IntEnum):
    """HL7 table 0357, message error condition codes."""

    segment_sequence = 100
    required_field_missing = 101
    data_type = 102
    table_value_not_found = 103
    unsupported_message_type = 200
    unsupported_event = 201
    unsupported_processing_id = 202
    unsupported_version = 203
    unknown_key = 204
    duplicate_key = 205
    record_locked = 206
    internal_error = 207

    @property
    def text(self) -> str:
        return _ERROR_TEXTS[self]


_ERROR_TEXTS = {
    ErrorCode.segment_sequence: "Segment sequence error",
    ErrorCode.required_field_missing: "Required field missing",
    ErrorCode.data_type: "Data type error",
    ErrorCode.table_value_not_found: "Table value not found",
    ErrorCode.unsupported_message_type: "Unsupported message type",
    ErrorCode.unsupported_event: "Unsupported event code",
    ErrorCode.unsupported_processing_id: "Unsupported processing id",
    ErrorCode.unsupported_version: "Unsupported version id",
    ErrorCode.unknown_key: "Unknown key identifier",
    ErrorCode.duplicate_key: "Duplicate key identifier",
    ErrorCode.record_locked: "Application record locked",
    ErrorCode.internal_error: "Application internal error",
}

# HL7 v2.5 2.9.2: a message failing the MSH-9/MSH-11/MSH-12 checks is rejected (AR).
_REJECTING = frozenset(
    {
        ErrorCode.unsupported_message_type,
        ErrorCode.unsupported_event,
        ErrorCode.unsupported_processing_id,
        ErrorCode.unsupported_version,
    }
)


class Severity(StrEnum):
    """ERR-4 (HL7 table 0516)."""

    error = "E"
    warning = "W"
    information = "I"


class IdentityAttribute(StrEnum):
    """RNIV identity attributes carried in PID-32 next to the status."""

    doubtful = "doubtful"
    fictitious = "fictitious"
    homonym = "homonym"
    usurped = "usurped"


@dataclass(frozen=True, slots=True)
class HierarchicDesignator:
    """HL7 HD: an application, a facility or an identifier's assigning authority."""

    namespace_id: str = ""
    universal_id: str = ""  # an OID when universal_id_type is ISO
    universal_id_type: str = ""

    @property
    def key(self) -> str:
        """The OID when there is one (unique everywhere), else the local namespace name."""
        return self.universal_id or self.namespace_id

    def __bool__(self) -> bool:
        return bool(self.namespace_id or self.universal_id)


@dataclass(frozen=True, slots=True)
class PatientId:
    """HL7 CX reduced to what identifies a patient: the id and its domain."""

    value: str
    authority: HierarchicDesignator

    @property
    def domain(self) -> str:
        return self.authority.key


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """What the MSH says, kept so that any acknowledgement can answer it."""

    encoding: Encoding
    sending_application: HierarchicDesignator
    sending_facility: HierarchicDesignator
    receiving_application: HierarchicDesignator
    receiving_facility: HierarchicDesignator
    control_id: str  # MSH-10
    message_type: str  # MSH-9.1, "ADT"
    event: str  # MSH-9.2, else EVN-1
    structure: str  # MSH-9.3, "ADT_A01"
    processing_id: str  # MSH-11.1: P, D or T
    version: str  # MSH-12.1, "2.5"
    version_field: str  # MSH-12 as sent ("2.5^FRA^2.10"), echoed in the acknowledgement
    charset: str  # MSH-18, "" when not declared


@dataclass(frozen=True, slots=True)
class PatientIdentity:
    """The local identity a message carries, ready to become a `SourceRecord`."""

    ipp: PatientId
    traits: IdentityTraits
    status: IdentityStatus
    attributes: frozenset[IdentityAttribute] = frozenset()
    ins_oid: str = ""  # the INS assigning authority, to tell a test INS from a real one
    reliability_codes: tuple[str, ...] = ()  # PID-32 as sent

    def source_record(self) -> SourceRecord:
        return SourceRecord(
            source=self.ipp.domain, local_id=self.ipp.value, traits=self.traits, status=self.status
        )


@dataclass(frozen=True, slots=True)
class AdtMessage:
    header: MessageHeader
    patient: PatientIdentity | None = None  # None exactly when the event is not handled
    merged_id: PatientId | None = None  # A40: the IPP absorbed into `patient.ipp` (MRG-1)

    @property
    def event(self) -> str:
        return self.header.event

    @property
    def control_id(self) -> str:
        return self.header.control_id

    @property
    def handled(self) -> bool:
        """True for the events that feed the identity base (`HANDLED_EVENTS`)."""
        return self.patient is not None


class AdtError(Exception):
    """A message the receiver refuses, with the ERR segment that says why.

    The acknowledgement code follows HL7 v2.5 2.9.2: AR when the message cannot be processed
    here at all (not HL7, unsupported type, event, version or processing id), AE when it was
    understood but its content is wrong. `header` is set whenever the MSH could be read.
    The message is sent back to the hospital: it names fields, never patient values.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        segment: str = "",
        field: int = 0,
        repetition: int = 0,
        component: int = 0,
        ack: AckCode | None = None,
        severity: Severity = Severity.error,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.segment = segment
        self.field = field
        self.repetition = repetition
        self.component = component
        self.ack = ack or (AckCode.reject if code in _REJECTING else AckCode.error)
        self.severity = severity
        self.header: MessageHeader | None = None

    @property
    def location(self) -> str:
        """Where the error is, "PID-3[2].4" style, for logs."""
        if not self.segment:
            return ""
        where = self.segment
        if self.field:
            where += f"-{self.field}"
            if self.repetition:
                where += f"[{self.repetition}]"
            if self.component:
                where += f".{self.component}"
        return where


# --- decoding -----------------------------------------------------------------------------

# MSH-18 (HL7 table 0211) to Python codecs. ASCII and an empty MSH-18 are read as UTF-8,
# falling back to Latin-1: both are ASCII supersets, and senders declaring ASCII often
# send Latin-1 accents anyway.
_CHARSETS = {
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
}


def charset_codec(charset: str) -> str | None:
    """The Python codec for an MSH-18 value; "" for none declared; None when unknown."""
    name = charset.strip().upper()
    if name in ("", "ASCII"):
        return ""
    return _CHARSETS.get(name)


def decode(raw: bytes) -> tuple[str, str, AdtError | None]:
    """Decode a message per its MSH-18: (text, codec used, error to report once the header
    is known). The MSH up to MSH-18 is ASCII, so it can be read before the charset is known."""
    charset = _peek_charset(raw)
    codec = charset_codec(charset)
    if codec:
        try:
            return raw.decode(codec), codec, None
        except UnicodeDecodeError:
            invalid = AdtError(
                ErrorCode.data_type,
                f"the message is not valid in its declared character set ({codec})",
                segment="MSH",
                field=18,
            )
            return raw.decode(codec, errors="replace"), codec, invalid
    problem = None
    if codec is None:
        problem = AdtError(
            ErrorCode.table_value_not_found,
            "unsupported character set in MSH-18",
            segment="MSH",
            field=18,
            ack=AckCode.reject,
        )
    try:
        return raw.decode("utf-8"), "utf-8", problem
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1", problem


def _peek_charset(raw: bytes) -> str:
    head = raw.lstrip()[:4096]
    end = min((i for i in (head.find(b"\r"), head.find(b"\n")) if i >= 0), default=len(head))
    text = head[:end].decode("latin-1")
    encoding = Encoding.read(text)
    if encoding is None:
        return ""
    fields = text.split(encoding.field)
    value = fields[17] if len(fields) > 17 else ""  # fields[n - 1] is MSH-n
    return value.split(encoding.repetition)[0].split(encoding.component)[0]


# --- header -------------------------------------------------------------------------------


def _hd(rep: Repetition) -> HierarchicDesignator:
    return HierarchicDesignator(part(rep, 1), part(rep, 2), part(rep, 3))


def _first(segment: Segment, number: int) -> Repetition:
    reps = segment.field(number)
    return reps[0] if reps else ()


def _header(msh: Segment, encoding: Encoding, evn: Segment | None) -> MessageHeader:
    message_type = _first(msh, 9)
    event = part(message_type, 2) or (evn.value(1) if evn else "")
    return MessageHeader(
        encoding=encoding,
        sending_application=_hd(_first(msh, 3)),
        sending_facility=_hd(_first(msh, 4)),
        receiving_application=_hd(_first(msh, 5)),
        receiving_facility=_hd(_first(msh, 6)),
        control_id=msh.value(10),
        message_type=part(message_type, 1),
        event=event,
        structure=part(message_type, 3),
        processing_id=msh.value(11),
        version=msh.value(12),
        version_field=_raw_components(_first(msh, 12), encoding),
        charset=msh.value(18),
    )


def _raw_components(rep: Repetition, encoding: Encoding) -> str:
    return encoding.component.join(
        encoding.subcomponent.join(escape(s, encoding) for s in c) for c in rep
    ).rstrip(encoding.component)


def salvage_header(raw: bytes | str) -> MessageHeader | None:
    """Read whatever header a broken message still has, never raising: for acknowledging
    messages `parse_adt` refused before it could read their MSH properly."""
    try:
        text = raw if isinstance(raw, str) else decode(raw)[0]
        text = text.lstrip().replace("\r\n", "\r").replace("\n", "\r")
        first = text.split("\r", 1)[0]
        if not first.startswith("MSH"):
            return None
        encoding = Encoding.read(first) or DEFAULT_ENCODING
        return _header(_msh_by_hand(first, encoding), encoding, None)
    except Exception:  # a best effort on arbitrary bytes: no answer is better than a crash
        return None


def _msh_by_hand(first: str, encoding: Encoding) -> Segment:
    """The MSH split without python-hl7, for salvaging (no escape handling needed there)."""
    fields = first.split(encoding.field)
    # fields[0] is "MSH", fields[1] MSH-2: give MSH-1 back its place.
    values = [encoding.field, *fields[1:]]
    return Segment(
        "MSH",
        tuple(
            tuple(
                tuple(tuple(c.split(encoding.subcomponent)) for c in r.split(encoding.component))
                for r in f.split(encoding.repetition)
            )
            for f in values
        ),
    )


# --- parsing ------------------------------------------------------------------------------


def parse_adt(raw: bytes | str) -> AdtMessage:
    """Parse one ADT message. Raises `AdtError` (and nothing else) when it must be refused."""
    header: MessageHeader | None = None
    try:
        if isinstance(raw, bytes):
            text, codec, charset_problem = decode(raw)
        else:
            text, codec, charset_problem = raw, "utf-8", None
        # Segments end with CR; tolerate LF and CRLF, which no field may contain anyway.
        text = text.strip().replace("\r\n", "\r").replace("\n", "\r")
        if not text.startswith("MSH"):
            raise AdtError(
                ErrorCode.segment_sequence,
                "not an HL7 v2 message: it does not start with an MSH segment",
                segment="MSH",
                ack=AckCode.reject,
            )
        encoding = Encoding.read(text.split("\r", 1)[0])
        if encoding is None:
            raise AdtError(
                ErrorCode.data_type,
                "MSH-1/MSH-2 do not declare usable separators",
                segment="MSH",
                field=2,
                ack=AckCode.reject,
            )
        try:
            segments = split_segments(text, encoding, codec)
        except Exception as exc:  # python-hl7 is untyped: any failure means unreadable
            error = AdtError(
                ErrorCode.segment_sequence,
                "the message structure cannot be read (segment names, separators)",
                ack=AckCode.reject,
            )
            raise error from exc
        evn = next((s for s in segments if s.name == "EVN"), None)
        header = _header(segments[0], encoding, evn)
        if charset_problem:
            raise charset_problem
        _check_header(header, segments)
        if header.event not in HANDLED_EVENTS:
            return AdtMessage(header)
        pids = [s for s in segments if s.name == "PID"]
        if not pids:
            raise AdtError(ErrorCode.segment_sequence, "PID segment missing", segment="PID")
        if len(pids) > 1:
            raise AdtError(
                ErrorCode.segment_sequence,
                "more than one PID segment: one patient per message",
                segment="PID",
            )
        patient = _patient(pids[0])
        merged = None
        if header.event == "A40":
            merged = _merged_id(segments, patient.ipp)
        return AdtMessage(header, patient, merged)
    except AdtError as error:
        # Refused before the header was parsed: read what it still says, for the ACK.
        error.header = error.header or header or salvage_header(raw)
        raise


def _check_header(header: MessageHeader, segments: tuple[Segment, ...]) -> None:
    # The checks HL7 v2.5 2.9.2 makes before the application sees the message: AR.
    if not header.message_type:
        raise AdtError(
            ErrorCode.required_field_missing,
            "MSH-9 message type missing",
            segment="MSH",
            field=9,
            ack=AckCode.reject,
        )
    if header.message_type != "ADT":
        raise AdtError(
            ErrorCode.unsupported_message_type,
            "only ADT messages are accepted here",
            segment="MSH",
            field=9,
            component=1,
        )
    check_version_and_processing(header, "HL7 v2.5 (IHE PAM)")
    # HL7 v2.5 keeps EVN-1 for backward compatibility only: MSH-9.2 wins when both are sent.
    if not _EVENT.fullmatch(header.event):
        raise AdtError(
            ErrorCode.unsupported_event,
            "MSH-9.2 is not an ADT event code",
            segment="MSH",
            field=9,
            component=2,
        )
    check_control_and_batch(header, segments)


def check_version_and_processing(header: MessageHeader, accepted: str) -> None:
    """MSH-12 and MSH-11, as every message type read here checks them (AR)."""
    if header.version not in SUPPORTED_VERSIONS:
        raise AdtError(
            ErrorCode.unsupported_version,
            f"only {accepted} is accepted here",
            segment="MSH",
            field=12,
        )
    if header.processing_id not in ("P", "D", "T"):
        raise AdtError(
            ErrorCode.unsupported_processing_id,
            "MSH-11 processing id must be P, D or T",
            segment="MSH",
            field=11,
        )


def check_control_and_batch(header: MessageHeader, segments: tuple[Segment, ...]) -> None:
    """MSH-10 present, one message per frame (AR)."""
    if not header.control_id:
        raise AdtError(
            ErrorCode.required_field_missing,
            "MSH-10 message control id missing",
            segment="MSH",
            field=10,
        )
    if any(s.name == "MSH" for s in segments[1:]):
        raise AdtError(
            ErrorCode.segment_sequence,
            "more than one MSH: batches are not accepted over MLLP",
            segment="MSH",
            ack=AckCode.reject,
        )


def _value(text: str) -> str:
    return "" if text == _NULL else text


def _patient_ids(segment: Segment, number: int) -> list[tuple[int, str, PatientId]]:
    """(repetition number, identifier type code, id) for each CX repetition of a field."""
    ids = []
    for index, rep in enumerate(segment.field(number), start=1):
        authority = HierarchicDesignator(part(rep, 4, 1), part(rep, 4, 2), part(rep, 4, 3))
        ids.append((index, part(rep, 5).upper(), PatientId(_value(part(rep, 1)), authority)))
    return ids


def _pi(segment: Segment, number: int) -> PatientId:
    name = f"{segment.name}-{number}"

    def refuse(code: ErrorCode, text: str, repetition: int = 0, component: int = 0) -> AdtError:
        return AdtError(
            code,
            f"{name} {text}",
            segment=segment.name,
            field=number,
            repetition=repetition,
            component=component,
        )

    typed = [(i, pid) for i, kind, pid in _patient_ids(segment, number) if kind == "PI"]
    if not typed:
        raise refuse(ErrorCode.required_field_missing, "has no identifier of type PI (the IPP)")
    index, ipp = typed[0]
    if not ipp.value:
        raise refuse(ErrorCode.required_field_missing, "PI identifier is empty", index, 1)
    if not ipp.authority:
        raise refuse(
            ErrorCode.required_field_missing,
            "PI identifier has no assigning authority (its domain)",
            index,
            4,
        )
    oid = ipp.authority.universal_id
    if oid and ipp.authority.universal_id_type.upper() == "ISO" and not _OID.fullmatch(oid):
        raise refuse(
            ErrorCode.data_type, "assigning authority universal id is not an OID", index, 4
        )
    return ipp


def _ins(pid: Segment) -> tuple[str, str]:
    """(INS, authority OID), ("", "") when PID-3 carries none."""
    found: list[tuple[int, PatientId]] = []
    for index, kind, ident in _patient_ids(pid, 3):
        if kind != "INS" or not ident.value:
            continue  # INS-C and INS-A, the calculated INS of old, are not INS any more
        oid = ident.authority.universal_id
        if oid not in INS_NIR_OIDS | INS_NIA_OIDS:
            raise AdtError(
                ErrorCode.table_value_not_found,
                "PID-3 INS assigning authority is not an INS OID (NIR or NIA)",
                segment="PID",
                field=3,
                repetition=index,
                component=4,
            )
        if not is_valid_ins(ident.value):
            raise AdtError(
                ErrorCode.data_type,
                "PID-3 INS is not a NIR/NIA with a valid key",
                segment="PID",
                field=3,
                repetition=index,
                component=1,
            )
        found.append((index, ident))
    if not found:
        return "", ""
    # The NIR is the definitive number; a NIA is only awaiting one.
    found.sort(key=lambda item: item[1].authority.universal_id not in INS_NIR_OIDS)
    ins = found[0][1]
    return ins.value.upper(), ins.authority.universal_id


def _names(pid: Segment) -> tuple[str, tuple[str, ...], str]:
    """(birth family name, birth given names, used family name) from PID-5."""
    reps = pid.repetitions(5)
    legal = next((r for r in reps if part(r, 7).upper() == "L"), None)
    if legal is None:
        legal = next((r for r in reps if not part(r, 7)), None)
    if legal is None or not _value(part(legal, 1)):
        raise AdtError(
            ErrorCode.required_field_missing,
            "PID-5 has no birth name (a repetition of type L)",
            segment="PID",
            field=5,
        )
    used = next((r for r in reps if part(r, 7).upper() == "D"), None)
    first = _value(part(legal, 2))
    listed = _value(part(legal, 3))
    return (
        _value(part(legal, 1)),
        _given_names(first, listed),
        _value(part(used, 1)) if used else "",
    )


def _given_names(first: str, listed: str) -> tuple[str, ...]:
    # PAM-FR puts the INSi list of birth given names in XPN-3, the first one included
    # ("JEAN PIERRE^JEAN PIERRE MARIE"); plain HL7 puts only the further ones there. Either
    # way the first given name comes first, once. Commas are accepted as separators too.
    rest = [n for n in re.split(r"[\s,]+", listed) if n]
    head = first.split()
    if head and [n.casefold() for n in rest[: len(head)]] == [n.casefold() for n in head]:
        rest = rest[len(head) :]
    names = ([first.strip()] if first.strip() else []) + rest
    return tuple(names)


def _birth_date(pid: Segment) -> date | None:
    value = _value(pid.value(7))
    if not value:
        return None
    match = _TS.fullmatch(value)
    if match is None:
        raise AdtError(
            ErrorCode.data_type,
            "PID-7 birth date is not an HL7 date",
            segment="PID",
            field=7,
        )
    year, month, day = match.group(1, 2, 3)
    try:
        if day is None:
            # Partial date: checked, then dropped (see the module docstring).
            date(int(year), int(month or 1), 1)
            return None
        return date(int(year), int(month), int(day))
    except ValueError:
        raise AdtError(
            ErrorCode.data_type,
            "PID-7 birth date is not a valid date",
            segment="PID",
            field=7,
        ) from None


_SEXES = {"M": Sex.male, "F": Sex.female, "U": Sex.unknown, "O": Sex.unknown}
_SEXES |= {"A": Sex.unknown, "N": Sex.unknown, "": Sex.unknown}


def _sex(pid: Segment) -> Sex:
    code = _value(pid.value(8)).upper()
    if code not in _SEXES:
        raise AdtError(
            ErrorCode.table_value_not_found,
            "PID-8 sex is not a code of table 0001 (M, F, U, O, A, N)",
            segment="PID",
            field=8,
        )
    return _SEXES[code]


def _addresses(pid: Segment) -> tuple[str, tuple[str, str, str]]:
    """(birth place INSEE code, (street, postal code, city)) from PID-11."""
    birth_place = ""
    home: Repetition | None = None
    other: Repetition | None = None
    for index, rep in enumerate(pid.field(11), start=1):
        kind = part(rep, 7).upper()
        if kind == "BDL":
            birth_place = _value(part(rep, 9)).upper()
            if birth_place and not _INSEE_COMMUNE.fullmatch(birth_place):
                raise AdtError(
                    ErrorCode.data_type,
                    "PID-11 birth place (type BDL) XAD-9 is not an INSEE commune code",
                    segment="PID",
                    field=11,
                    repetition=index,
                    component=9,
                )
        elif kind == "H" and home is None:
            home = rep
        elif other is None and any(any(c) for c in rep):
            other = rep
    address = home or other
    if address is None:
        return birth_place, ("", "", "")
    street = ", ".join(v for v in (_value(part(address, 1)), _value(part(address, 2))) if v)
    return birth_place, (street, _value(part(address, 5)), _value(part(address, 3)))


def _phone(pid: Segment) -> str:
    for rep in pid.repetitions(13):
        if part(rep, 2).upper() == "NET" or part(rep, 3).upper() in ("INTERNET", "X.400"):
            continue
        number = part(rep, 12) or part(rep, 1) or part(rep, 6) + part(rep, 7)
        if _value(number):
            return number
    return ""


# PID-32 codes: the French table 0445 (Interop'Santé, FR Core v2-0445) and the RNIV statuses.
_STATUSES = {
    "VIDE": IdentityStatus.provisional,
    "PROV": IdentityStatus.provisional,
    "VALI": IdentityStatus.validated,
    "RECUP": IdentityStatus.recovered,
    "QUAL": IdentityStatus.qualified,
}
_TRUST = [
    IdentityStatus.provisional,
    IdentityStatus.recovered,
    IdentityStatus.validated,
    IdentityStatus.qualified,
]
_ATTRIBUTES = {
    "DOUT": IdentityAttribute.doubtful,
    "DOUTE": IdentityAttribute.doubtful,
    "FICT": IdentityAttribute.fictitious,
    "FICTI": IdentityAttribute.fictitious,
    "HOMA": IdentityAttribute.homonym,
    "HOMD": IdentityAttribute.homonym,
    "HOMON": IdentityAttribute.homonym,
    "USUR": IdentityAttribute.usurped,
    "USURP": IdentityAttribute.usurped,
}


def _reliability(codes: tuple[str, ...]) -> tuple[IdentityStatus, frozenset[IdentityAttribute]]:
    statuses = [_STATUSES[c] for c in codes if c in _STATUSES]
    # RNIV statuses exclude each other: if a sender sends two, trust the lesser.
    status = min(statuses, key=_TRUST.index, default=IdentityStatus.provisional)
    return status, frozenset(_ATTRIBUTES[c] for c in codes if c in _ATTRIBUTES)


def _patient(pid: Segment) -> PatientIdentity:
    ipp = _pi(pid, 3)
    ins, ins_oid = _ins(pid)
    birth_name, given_names, used_name = _names(pid)
    birth_place, (street, postal_code, city) = _addresses(pid)
    codes = tuple(_value(part(rep, 1)).upper() for rep in pid.repetitions(32))
    codes = tuple(c for c in codes if c)
    status, attributes = _reliability(codes)
    traits = IdentityTraits(
        birth_family_name=birth_name,
        given_names=given_names,
        sex=_sex(pid),
        birth_date=_birth_date(pid),
        used_family_name=used_name,
        birth_place_code=birth_place,
        address=street,
        postal_code=postal_code,
        city=city,
        phone=_phone(pid),
        ins=ins,
    )
    return PatientIdentity(
        ipp=ipp,
        traits=traits,
        status=status,
        attributes=attributes,
        ins_oid=ins_oid,
        reliability_codes=codes,
    )


def _merged_id(segments: tuple[Segment, ...], surviving: PatientId) -> PatientId:
    mrg = next((s for s in segments if s.name == "MRG"), None)
    if mrg is None:
        raise AdtError(
            ErrorCode.segment_sequence, "A40 without MRG segment (the absorbed IPP)", segment="MRG"
        )
    if sum(s.name == "MRG" for s in segments) > 1:
        raise AdtError(
            ErrorCode.segment_sequence, "more than one MRG segment: one merge per message"
        )
    absorbed = _pi(mrg, 1)
    if not _same_domain(absorbed.authority, surviving.authority):
        # PAM A40 merges two identities of one identification domain.
        raise AdtError(
            ErrorCode.unknown_key,
            "MRG-1 IPP is not in the domain of the surviving PID-3 IPP",
            segment="MRG",
            field=1,
        )
    if absorbed.value == surviving.value:
        raise AdtError(
            ErrorCode.duplicate_key,
            "MRG-1 IPP is the surviving PID-3 IPP: nothing to merge",
            segment="MRG",
            field=1,
        )
    return absorbed


def _same_domain(a: HierarchicDesignator, b: HierarchicDesignator) -> bool:
    # The OID decides when both have one; the namespace name otherwise.
    if a.universal_id and b.universal_id:
        return a.universal_id == b.universal_id
    return a.namespace_id == b.namespace_id


__all__ = [
    "HANDLED_EVENTS",
    "AckCode",
    "AdtError",
    "AdtMessage",
    "ErrorCode",
    "HierarchicDesignator",
    "IdentityAttribute",
    "MessageHeader",
    "PatientId",
    "PatientIdentity",
    "Severity",
    "charset_codec",
    "parse_adt",
    "salvage_header",
]
