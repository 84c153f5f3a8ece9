"""HL7 v2.5 MDM^T02 and MDM^T10 (document notification and content), read into a
`Submission` for the documents domain.

`parse_mdm` reads one message and returns an `MdmMessage`, or raises `AdtError` carrying
what the acknowledgement must say (the error type is the package's, whatever the message
type). `submission_of` turns it into the channel-agnostic `Submission` once the receiver
knows the depositing establishment. Nothing here touches the database.

Field rules (HL7 v2.5 chapter 9; the IHE and French practice where v2.5 leaves a choice):
    MSH-9    MDM^T02 (original document) or MDM^T10 (replacement); any other event is AR 201.
    PID-3    the repetition typed PI, else the first one with an assigning authority that
             is not an INS: the IPP, its authority (CX-4 namespace or OID) naming the domain.
    TXA-2    the document type, a LOINC code (`code^text^LN`; a bare LOINC-shaped code is
             read as LOINC). May be empty for a CDA document: its header's code is used.
    TXA-4    activity date/time: the service start; also the creation time when TXA-6 is
             empty. TXA-6 origination date/time: the creation time.
    TXA-9    originators (XCN), the authors: an id under the RPPS OID or typed RPPS/ADELI
             is a national id, to be found in the directory; an id of another authority (a
             local staff code) cannot be checked there and is kept as a label with the name.
             When TXA-9 is empty, the authenticator (TXA-22) stands as the author.
    TXA-12   the unique document number (EI): `EI-3^EI-1` when EI-3 is an OID, EI-1 alone
             when it is an OID, else EI-1 scoped by the establishment's OID (document numbers
             are unique per sender, uniqueIds across the territory).
    TXA-13   the parent document number, required for T10: the document replaced, read as
             TXA-12 is.
    TXA-17   completion status (table 0271): only authenticated documents are shared (AU,
             LA); the other codes of the table are refused.
    TXA-18   confidentiality (table 0272): U (usual) or N is N, R and V as they are.
    OBX      the content, in segment and repetition order: ED pieces (`^application^pdf^
             Base64^…`, `^text^xml^Base64^…` for CDA) concatenated before decoding, or TX
             lines joined by newlines into a text/plain document; one kind per message. A
             PDF must run from %PDF- to %%EOF: a message cut short is refused, not stored.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from partage.directory.service import IDNPS_OID
from partage.documents.cda import parse_hl7_time
from partage.documents.models import RelationKind
from partage.documents.submission import (
    CDA_MIME_TYPES,
    LOINC,
    AuthorRef,
    Coding,
    NewDocument,
    PatientRef,
    Relation,
    Submission,
    SubmissionError,
)

from ._wire import Encoding, Repetition, Segment, part, split_segments
from .adt import (
    AckCode,
    AdtError,
    ErrorCode,
    HierarchicDesignator,
    MessageHeader,
    PatientId,
    _header,
    check_control_and_batch,
    check_version_and_processing,
    decode,
    salvage_header,
)

HANDLED_EVENTS = frozenset({"T02", "T10"})
# Derives the submission set's uniqueId from the sender and the message control id: the
# same message sent again gets the same uniqueId, so the registry refuses it as a duplicate.
SUBMISSION_NAMESPACE = uuid.UUID("6b1f64a2-5c0e-4d55-9a56-0d3b8c2f7e41")

_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")
_LOINC_CODE = re.compile(r"[0-9]{1,7}-[0-9]")
_LOINC_SYSTEMS = frozenset({"LN", "LOINC", "2.16.840.1.113883.6.1", LOINC.upper()})
_INS_OIDS = frozenset(
    {"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"}
)
_COMPLETION_STATUSES = frozenset({"AU", "DI", "DO", "IN", "IP", "LA", "PA"})  # table 0271
_SHARED_STATUSES = frozenset({"AU", "LA"})
_CONFIDENTIALITY = {"": "N", "U": "N", "N": "N", "R": "R", "V": "V"}  # table 0272
# ED-2 type of data (table 0191, or the MIME top-level type many senders write instead).
_DATA_TYPES = {"AP": "application", "APPLICATION": "application", "SD": "application"}
_DATA_TYPES |= {"TEXT": "text", "TX": "text", "IM": "image", "IMAGE": "image"}
# ED-3 data subtype (table 0291, or a MIME subtype) to the media types the platform shows.
_SUBTYPES = {
    "PDF": "application/pdf",
    "XML": "text/xml",
    "HL7-CDA+XML": "text/xml",
    "X-HL7-CDA-LEVEL-ONE": "text/xml",
    "X-HL7-CDA-LEVEL-ONE+XML": "text/xml",
    "PLAIN": "text/plain",
    "JPEG": "image/jpeg",
    "PNG": "image/png",
}
_FORMAT_CODES = {
    "application/pdf": "urn:ihe:iti:xds-sd:pdf:2008",
    "text/plain": "urn:ihe:iti:xds-sd:text:2008",
}
_TEXT_TYPES = frozenset({"TX", "ST", "FT"})
_BLANKS = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class DocumentNumber:
    """HL7 EI: TXA-12 or TXA-13."""

    value: str
    namespace: str = ""
    universal_id: str = ""

    def unique_id(self, scope_oid: str) -> str:
        """The XDS uniqueId it stands for (see the module docstring)."""
        if self.universal_id and _OID.fullmatch(self.universal_id):
            return f"{self.universal_id}^{self.value}"
        if _OID.fullmatch(self.value):
            return self.value
        return f"{scope_oid}^{self.value}"


@dataclass(frozen=True, slots=True)
class MdmMessage:
    header: MessageHeader
    patient: PatientId
    unique_number: DocumentNumber
    parent_number: DocumentNumber | None  # T10: the document replaced
    content: bytes
    mime_type: str
    type: Coding | None  # None only for a CDA document, whose header gives it
    title: str | None
    creation_time: datetime | None
    service_start: datetime | None
    authors: tuple[AuthorRef, ...]
    completion_status: str
    confidentiality: str  # N, R or V

    @property
    def event(self) -> str:
        return self.header.event

    @property
    def control_id(self) -> str:
        return self.header.control_id


# --- parsing ------------------------------------------------------------------------------


def parse_mdm(raw: bytes | str) -> MdmMessage:
    """Parse one MDM message. Raises `AdtError` (and nothing else) when it must be refused."""
    header: MessageHeader | None = None
    try:
        if isinstance(raw, bytes):
            text, codec, charset_problem = decode(raw)
        else:
            text, codec, charset_problem = raw, "utf-8", None
        text = text.strip().replace("\r\n", "\r").replace("\n", "\r")
        encoding = Encoding.read(text.split("\r", 1)[0]) if text.startswith("MSH") else None
        if encoding is None:
            raise AdtError(
                ErrorCode.segment_sequence,
                "not an HL7 v2 message: no MSH segment with usable separators",
                segment="MSH",
                ack=AckCode.reject,
            )
        try:
            segments = split_segments(text, encoding, codec)
        except Exception as exc:  # any failure to split means the message cannot be read
            raise AdtError(
                ErrorCode.segment_sequence,
                "the message structure cannot be read (segment names, separators)",
                ack=AckCode.reject,
            ) from exc
        evn = next((s for s in segments if s.name == "EVN"), None)
        header = _header(segments[0], encoding, evn)
        if charset_problem:
            raise charset_problem
        _check_header(header, segments)
        return _message(header, segments, encoding)
    except AdtError as error:
        error.header = error.header or header or salvage_header(raw)
        raise


def _check_header(header: MessageHeader, segments: tuple[Segment, ...]) -> None:
    # The checks HL7 v2.5 2.9.2 makes before the application sees the message: AR.
    if header.message_type != "MDM":
        raise AdtError(
            ErrorCode.unsupported_message_type,
            "only MDM messages are read here",
            segment="MSH",
            field=9,
            component=1,
        )
    if header.event not in HANDLED_EVENTS:
        raise AdtError(
            ErrorCode.unsupported_event,
            "only MDM^T02 (new document) and MDM^T10 (replacement) are accepted",
            segment="MSH",
            field=9,
            component=2,
        )
    check_version_and_processing(header, "HL7 v2.5")
    check_control_and_batch(header, segments)


def _one(segments: tuple[Segment, ...], name: str) -> Segment:
    found = [s for s in segments if s.name == name]
    if len(found) != 1:
        raise AdtError(
            ErrorCode.segment_sequence,
            f"an MDM message carries exactly one {name} segment ({len(found)} found)",
            segment=name,
        )
    return found[0]


def _message(header: MessageHeader, segments: tuple[Segment, ...], enc: Encoding) -> MdmMessage:
    patient = _ipp(_one(segments, "PID"))
    txa = _one(segments, "TXA")
    obx = [s for s in segments if s.name == "OBX"]
    if not obx:
        raise AdtError(
            ErrorCode.segment_sequence,
            "no OBX segment: the document content is missing",
            segment="OBX",
        )
    content, mime_type = _content(obx, enc)
    unique_number = _number(txa, 12)
    if unique_number is None:
        raise _missing("TXA", 12, "TXA-12 unique document number")
    parent_number = _number(txa, 13) if header.event == "T10" else None
    if header.event == "T10" and parent_number is None:
        raise _missing("TXA", 13, "TXA-13 parent document number (the document replaced)")
    document_type = _document_type(txa)
    if document_type is None and mime_type not in CDA_MIME_TYPES:
        raise _missing("TXA", 2, "TXA-2 document type (a LOINC code)")
    activity = _time(txa, 4)
    authors = tuple(_author(rep, 9, i) for i, rep in enumerate(txa.repetitions(9), start=1))
    if not authors:
        # The authenticating professional answers for the document the originator left out.
        authors = tuple(_author(rep, 22, i) for i, rep in enumerate(txa.repetitions(22), 1))
    return MdmMessage(
        header=header,
        patient=patient,
        unique_number=unique_number,
        parent_number=parent_number,
        content=content,
        mime_type=mime_type,
        type=document_type,
        title=document_type.display if document_type else None,
        creation_time=_time(txa, 6) or activity,
        service_start=activity,
        authors=tuple(a for a in authors if a is not None),
        completion_status=_completion_status(txa),
        confidentiality=_confidentiality(txa),
    )


def _missing(segment: str, field: int, what: str) -> AdtError:
    return AdtError(
        ErrorCode.required_field_missing, f"{what} missing", segment=segment, field=field
    )


def _ipp(pid: Segment) -> PatientId:
    candidates: list[tuple[int, str, PatientId]] = []
    for index, rep in enumerate(pid.field(3), start=1):
        authority = HierarchicDesignator(part(rep, 4, 1), part(rep, 4, 2), part(rep, 4, 3))
        candidates.append((index, part(rep, 5).upper(), PatientId(part(rep, 1), authority)))
    typed = [c for c in candidates if c[1] == "PI"]
    if not typed:
        typed = [
            c
            for c in candidates
            if c[1] != "INS" and c[2].authority and c[2].authority.universal_id not in _INS_OIDS
        ]
    if not typed or not typed[0][2].value:
        raise AdtError(
            ErrorCode.required_field_missing,
            "PID-3 has no patient identifier (IPP, type PI)",
            segment="PID",
            field=3,
        )
    index, _, ipp = typed[0]
    if not ipp.authority:
        raise AdtError(
            ErrorCode.required_field_missing,
            "PID-3 identifier has no assigning authority (its domain)",
            segment="PID",
            field=3,
            repetition=index,
            component=4,
        )
    oid = ipp.authority.universal_id
    if oid and ipp.authority.universal_id_type.upper() == "ISO" and not _OID.fullmatch(oid):
        raise AdtError(
            ErrorCode.data_type,
            "PID-3 assigning authority universal id is not an OID",
            segment="PID",
            field=3,
            repetition=index,
            component=4,
        )
    return ipp


def _document_type(txa: Segment) -> Coding | None:
    code, display, system = txa.value(2, 1), txa.value(2, 2), txa.value(2, 3)
    if not code:
        return None
    if system.upper() not in _LOINC_SYSTEMS and not (not system and _LOINC_CODE.fullmatch(code)):
        raise AdtError(
            ErrorCode.table_value_not_found,
            "TXA-2 document type must be a LOINC code (code^text^LN)",
            segment="TXA",
            field=2,
        )
    if not _LOINC_CODE.fullmatch(code):
        raise AdtError(
            ErrorCode.data_type, "TXA-2 is not a LOINC code", segment="TXA", field=2, component=1
        )
    return Coding(LOINC, code, display[:300] or None)


def _time(segment: Segment, field: int) -> datetime | None:
    value = segment.value(field)
    if not value:
        return None
    parsed = parse_hl7_time(value)
    if parsed is None:
        raise AdtError(
            ErrorCode.data_type,
            f"{segment.name}-{field} is not an HL7 date/time",
            segment=segment.name,
            field=field,
        )
    return parsed.at


def _number(txa: Segment, field: int) -> DocumentNumber | None:
    value = txa.value(field, 1)
    if not value:
        return None
    number = DocumentNumber(value, txa.value(field, 2), txa.value(field, 3))
    # The longest uniqueId it can give (scoped by an OID) must fit the registry's 128.
    if len(number.unique_id("0" * 64)) > 128:
        raise AdtError(
            ErrorCode.data_type,
            f"TXA-{field} document number is too long",
            segment="TXA",
            field=field,
        )
    return number


def _national_id(value: str, authority_oid: str, id_type: str) -> str | None:
    """The directory's national id ("8" + RPPS, "0" + ADELI) an XCN id stands for, or None
    when it is not a national id of a health professional."""
    if id_type == "ADELI" and re.fullmatch(r"[0-9]{9}", value):
        return "0" + value
    if authority_oid != IDNPS_OID and id_type != "RPPS":
        return None
    if re.fullmatch(r"[0-9]{11}", value):
        return "8" + value
    if re.fullmatch(r"[0-9][0-9A-Z]{1,11}", value):
        return value  # already prefixed, as under the national id OID
    return None


def _author(rep: Repetition, field: int, index: int) -> AuthorRef | None:
    value = part(rep, 1)
    given, family = part(rep, 3), part(rep, 2, 1)
    name = " ".join(p for p in (part(rep, 6), given, family) if p) or None
    if not value:
        return AuthorRef(label=name) if name else None
    authority = part(rep, 9, 2)
    id_type = part(rep, 13).upper()
    national_id = _national_id(value, authority, id_type)
    if national_id is not None:
        return AuthorRef(practitioner_national_id=national_id, label=name)
    if authority == IDNPS_OID or id_type in ("RPPS", "ADELI"):
        raise AdtError(
            ErrorCode.data_type,
            f"TXA-{field} author id is not a valid RPPS or ADELI number",
            segment="TXA",
            field=field,
            repetition=index,
            component=1,
        )
    # A local staff code: nothing in the territory's directory to check it against.
    namespace = part(rep, 9, 1)
    return AuthorRef(label=name or (f"{value} ({namespace})" if namespace else value))


def _completion_status(txa: Segment) -> str:
    status = txa.value(17).upper()
    if not status:
        raise _missing("TXA", 17, "TXA-17 document completion status")
    if status not in _COMPLETION_STATUSES:
        raise AdtError(
            ErrorCode.table_value_not_found,
            "TXA-17 is not a completion status of table 0271",
            segment="TXA",
            field=17,
        )
    if status not in _SHARED_STATUSES:
        raise AdtError(
            ErrorCode.table_value_not_found,
            f"TXA-17 completion status {status}: only authenticated documents (AU, LA) are shared",
            segment="TXA",
            field=17,
        )
    return status


def _confidentiality(txa: Segment) -> str:
    code = txa.value(18).upper()
    if code not in _CONFIDENTIALITY:
        raise AdtError(
            ErrorCode.table_value_not_found,
            "TXA-18 confidentiality is not U, N, R or V",
            segment="TXA",
            field=18,
        )
    return _CONFIDENTIALITY[code]


# --- content ------------------------------------------------------------------------------


def _whole(rep: Repetition, enc: Encoding, first: int = 1) -> str:
    """A repetition's components from `first` on, put back together as they were sent (a
    text value's separators are text, when the sender did not escape them)."""
    return enc.component.join(enc.subcomponent.join(c) for c in rep[first - 1 :])


def _content(obx: list[Segment], enc: Encoding) -> tuple[bytes, str]:
    kinds = {s.value(2).upper() for s in obx}
    if kinds <= _TEXT_TYPES:
        lines = [_whole(rep, enc) for s in obx for rep in s.field(5)]
        text = "\n".join(lines).strip("\n")
        if not text.strip():
            raise _missing("OBX", 5, "OBX-5 document text")
        return text.encode("utf-8"), "text/plain"
    if kinds != {"ED"}:
        unknown = kinds - _TEXT_TYPES - {"ED"}
        raise AdtError(
            ErrorCode.table_value_not_found if unknown else ErrorCode.data_type,
            "OBX-2 value type must be ED (encapsulated data) or TX (text lines), one kind "
            "per message",
            segment="OBX",
            field=2,
        )
    return _encapsulated(obx, enc)


def _encapsulated(obx: list[Segment], enc: Encoding) -> tuple[bytes, str]:
    kind: tuple[str, str, str] | None = None
    pieces: list[str] = []
    for number, segment in enumerate(obx, start=1):
        for rep in segment.field(5):
            if not any(any(c) for c in rep):
                continue
            declared = (part(rep, 2).upper(), part(rep, 3).upper(), part(rep, 4).upper())
            if kind is None:
                kind = declared
            elif any(d and d != k for d, k in zip(declared, kind, strict=True)):
                # A continuation piece may leave its type out; it may not change it.
                raise AdtError(
                    ErrorCode.data_type,
                    f"OBX-5 pieces of one document declare different types (OBX {number})",
                    segment="OBX",
                    field=5,
                )
            pieces.append(_whole(rep, enc, 5))
    if kind is None or not "".join(pieces).strip():
        raise _missing("OBX", 5, "OBX-5 encapsulated data")
    data_type, subtype, encoding = kind
    mime_type = _SUBTYPES.get(subtype)
    top = _DATA_TYPES.get(data_type)
    if mime_type is None or top is None:
        raise AdtError(
            ErrorCode.table_value_not_found,
            "OBX-5 type of data is not one the platform shares: PDF (application^pdf), CDA "
            "(text^xml), plain text, JPEG or PNG",
            segment="OBX",
            field=5,
            component=3,
        )
    content = _decoded("".join(pieces), encoding)
    # A message cut short can still hold valid base64: a PDF says where it ends.
    if mime_type == "application/pdf" and not (
        content.startswith(b"%PDF-") and b"%%EOF" in content[-1024:]
    ):
        raise AdtError(
            ErrorCode.data_type,
            "OBX-5 is not a whole PDF file (from %PDF- to %%EOF): truncated?",
            segment="OBX",
            field=5,
            component=5,
        )
    return content, mime_type


def _decoded(data: str, encoding: str) -> bytes:
    try:
        if encoding == "BASE64":
            return base64.b64decode(_BLANKS.sub("", data), validate=True)
        if encoding == "HEX":
            return bytes.fromhex(_BLANKS.sub("", data))
    except (binascii.Error, ValueError):
        raise AdtError(
            ErrorCode.data_type,
            f"OBX-5 data is not valid {encoding.lower()}",
            segment="OBX",
            field=5,
            component=5,
        ) from None
    if encoding in ("A", ""):
        return data.encode("utf-8")
    raise AdtError(
        ErrorCode.table_value_not_found,
        "OBX-5 encoding is not Base64, Hex or A (table 0299)",
        segment="OBX",
        field=5,
        component=4,
    )


# --- to the documents domain --------------------------------------------------------------


def submission_unique_id(header: MessageHeader) -> str:
    """The submission set's uniqueId: an OID (2.25, UUID-based) derived from the sending
    application and facility and the message control id, the same for a retransmission."""

    def hd(value: HierarchicDesignator) -> str:
        return f"{value.namespace_id}&{value.universal_id}&{value.universal_id_type.upper()}"

    key = f"{hd(header.sending_application)}|{hd(header.sending_facility)}|{header.control_id}"
    return f"2.25.{uuid.uuid5(SUBMISSION_NAMESPACE, key).int}"


def submission_of(
    message: MdmMessage, *, establishment_oid: str, patient_domain_oid: str
) -> Submission:
    """The submission a message carries, for the establishment whose patient-id OID is
    `establishment_oid` (it scopes document numbers that are not OIDs), about the patient
    identified in the domain `patient_domain_oid`."""
    relations = []
    if message.parent_number is not None:
        relations.append(
            Relation(
                RelationKind.replaces,
                target_unique_id=message.parent_number.unique_id(establishment_oid),
            )
        )
    is_cda = message.mime_type in CDA_MIME_TYPES
    document = NewDocument(
        unique_id=message.unique_number.unique_id(establishment_oid),
        content=message.content,
        mime_type=message.mime_type,
        type=message.type,
        format_code=_FORMAT_CODES.get(message.mime_type),
        # A CDA document's own title beats the type's label.
        title=None if is_cda else message.title,
        creation_time=message.creation_time,
        service_start=message.service_start,
        authors=list(message.authors),
        confidentiality=message.confidentiality,
        relations=relations,
        where="TXA",
    )
    application = message.header.sending_application.universal_id
    return Submission(
        unique_id=submission_unique_id(message.header),
        source_id=application if _OID.fullmatch(application) else establishment_oid,
        patient=PatientRef(domain_oid=patient_domain_oid, local_id=message.patient.value),
        channel="mdm",
        documents=[document],
    )


# Where the documents domain's error locations point in an MDM message.
_LOCATIONS: tuple[tuple[str, str, int], ...] = (
    ("subject", "PID", 3),
    ("SubmissionSet.identifier", "MSH", 10),
    ("TXA.author", "TXA", 9),
    ("TXA.relatesTo", "TXA", 13),
    ("TXA.masterIdentifier", "TXA", 12),
    ("TXA.type", "TXA", 2),
    ("TXA", "OBX", 5),  # the content itself, its size, hash, media type, CDA header
)
_CODES = {
    "not-found": ErrorCode.unknown_key,
    "required": ErrorCode.required_field_missing,
    "duplicate": ErrorCode.duplicate_key,
    "code-invalid": ErrorCode.table_value_not_found,
}


def refusal(error: SubmissionError) -> AdtError:
    """The ERR of a deposit the documents domain refused (AE)."""
    segment, field = "", 0
    for prefix, segment_name, number in _LOCATIONS:
        if error.where.startswith(prefix):
            segment, field = segment_name, number
            break
    return AdtError(
        _CODES.get(error.code, ErrorCode.data_type), error.message, segment=segment, field=field
    )


__all__ = [
    "HANDLED_EVENTS",
    "DocumentNumber",
    "MdmMessage",
    "parse_mdm",
    "refusal",
    "submission_of",
    "submission_unique_id",
]
