"""HL7 CDA R2 documents (French CI-SIS profiles): safe parsing and header metadata.

A hospital deposits a CDA document; before it is stored, indexed or shown, the platform
needs what its header says (type, patient, author, dates, confidentiality) and what its
body is: level 1 (`nonXMLBody`, a base64 PDF, text or image) or level 3
(`structuredBody`, sections and narrative blocks). This module reads both, and only reads:
the XML is parsed with `defusedxml`, DTDs are refused outright (no entity expansion, no
external entity, no network access), and the size is capped before parsing starts.

Everything extracted may be missing (None or empty): the CI-SIS makes most of it
mandatory, but real documents are not always conformant, and refusing a clinical document
for a missing optional field would lose it. Only what makes the document unusable raises
`InvalidCda`: not XML, not a ClinicalDocument, no patient, no body.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from enum import Enum
from xml.etree.ElementTree import Element, ParseError
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import fromstring as _defused_fromstring  # type: ignore[import-untyped]

from partage.directory.service import IDNPS_OID

HL7_NS = "urn:hl7-org:v3"
_NS = "{" + HL7_NS + "}"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

LOINC_OID = "2.16.840.1.113883.6.1"
# INS assigning authorities (same values as partage.identity.ins, without its Sex import).
INS_ROOTS = frozenset(
    {"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"}
)
_SYSTEM_URIS = {LOINC_OID: "http://loinc.org"}

# XDS formatCode of level-1 documents by the mediaType of nonXMLBody/text (ANS association
# ASS_A12-CorresMediaTypeCDANonStructure-XdsFormatCode-CISIS).
LEVEL1_FORMAT_CODES = {
    "application/pdf": "urn:ihe:iti:xds-sd:pdf:2008",
    "text/plain": "urn:ihe:iti:xds-sd:text:2008",
    "text/rtf": "urn:ihe:iti-fr:xds-sd:rtf:2010",
    "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010",
    "image/tiff": "urn:ihe:iti-fr:xds-sd:tiff:2010",
}
# XDS formatCode of level-3 documents by the templateId of their CI-SIS model (ANS
# association ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS, the models in use in a GHT).
LEVEL3_FORMAT_CODES = {
    "1.2.250.1.213.1.1.1.5.1": "urn:asip:ci-sis:cse-cs8:2017",
    "1.2.250.1.213.1.1.1.5.2": "urn:asip:ci-sis:cse-cs9:2017",
    "1.2.250.1.213.1.1.1.5.3": "urn:asip:ci-sis:cse-cs24:2017",
    "1.2.250.1.213.1.1.1.5.4": "urn:ans:ci-sis:cse-mde:2023",
    "1.2.250.1.213.1.1.1.8": "urn:asip:ci-sis:frcp:2011",
    "1.2.250.1.213.1.1.1.13": "urn:asip:ci-sis:vsm:2012",
    "1.2.250.1.213.1.1.1.15": "urn:asip:ci-sis:aunv:2013",
    "1.2.250.1.213.1.1.1.16": "urn:asip:ci-sis:eunv:2013",
    "1.2.250.1.213.1.1.1.17": "urn:asip:ci-sis:sunv:2013",
    "1.2.250.1.213.1.1.1.21": "urn:asip:ci-sis:ldl-ees:2017",
    "1.2.250.1.213.1.1.1.29": "urn:asip:ci-sis:ldl-ses:2017",
    "1.2.250.1.213.1.1.1.36": "urn:asip:ci-sis:hr:2019",
    "1.2.250.1.213.1.1.1.37": "urn:asip:ci-sis:vac:2019",
    "1.2.250.1.213.1.1.1.38": "urn:asip:ci-sis:tlm-da:2020",
    "1.2.250.1.213.1.1.1.39": "urn:ihe:pharm:pre:2010",
    "1.2.250.1.213.1.1.1.40": "urn:asip:ci-sis:cr-anest:2020",
    "1.2.250.1.213.1.1.1.41": "urn:asip:ci-sis:cr-cpa:2020",
    "1.2.250.1.213.1.1.1.45": "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",
    "1.2.250.1.213.1.1.1.46": "urn:asip:ci-sis:vac-note:2021",
    "1.2.250.1.213.1.1.1.47": "urn:ans:ci-sis:img-da:2022",
    "1.2.250.1.213.1.1.1.51": "urn:ihe:pcc:ips:2020",
    "1.2.250.1.213.1.1.1.52": "urn:ans:ci-sis:bio-ep-bio:2022",
    "1.2.250.1.213.1.1.1.54": "urn:ihe:pharm:dis:2010",
    "1.2.250.1.213.1.1.1.55": "urn:ihe:lab:xd-lab:2008",
    "1.3.6.1.4.1.19376.1.3.3": "urn:ihe:lab:xd-lab:2008",
}
MIME_TYPE_SUFFICIENT = "urn:ihe:iti:xds:2017:mimeTypeSufficient"

# Offset-less times are the sender's local time; a French document means French time.
_LOCAL_TZ = ZoneInfo("Europe/Paris")
_TS = re.compile(
    r"^(?P<year>\d{4})(?P<month>\d{2})?(?P<day>\d{2})?(?P<hour>\d{2})?(?P<minute>\d{2})?"
    r"(?P<second>\d{2})?(?:\.(?P<fraction>\d{1,6})\d*)?(?P<offset>[+-]\d{4})?$"
)


class InvalidCda(ValueError):
    """Not a usable CDA document; the message says why, for the sender's IT team, in English."""


class TimePrecision(Enum):
    """How much of an HL7 TS the sender gave: a date-only value is not "at midnight"."""

    year = "year"
    month = "month"
    day = "day"
    hour = "hour"
    minute = "minute"
    second = "second"


@dataclass(frozen=True)
class Hl7Time:
    """An HL7 TS value: the instant (timezone-aware) and the precision it was given at."""

    at: datetime
    precision: TimePrecision


@dataclass(frozen=True)
class InstanceId:
    """An HL7 II: an OID root and, usually, an extension (the identifier within it)."""

    root: str
    extension: str | None = None


@dataclass(frozen=True)
class CodedValue:
    """An HL7 CD/CE: a code, its code system OID, and the label the sender gave."""

    code: str | None
    code_system: str | None
    display: str | None = None

    @property
    def system(self) -> str | None:
        """The code system as a URI: LOINC's canonical URL, any other OID as urn:oid:."""
        if self.code_system is None:
            return None
        return _SYSTEM_URIS.get(self.code_system, f"urn:oid:{self.code_system}")


@dataclass(frozen=True)
class PersonName:
    prefix: str | None = None
    given: tuple[str, ...] = ()
    family: str | None = None
    suffix: str | None = None


@dataclass(frozen=True)
class Organization:
    id: InstanceId | None = None
    name: str | None = None


@dataclass(frozen=True)
class CdaPatient:
    """recordTarget/patientRole. `ins` is the INS when an id carries an INS OID as root.

    `given_names` are the birth given names in document order (CI-SIS 2024 writes them all
    in one unqualified `given`, then repeats the first with qualifier BR: the repeat is
    dropped); `used_given_name` is the one qualified CL. `used_family_name` is the family
    qualified CL (CI-SIS 2024, "nom utilisé") or else SP (older documents, "nom d'usage").
    """

    ins: str | None
    ins_oid: str | None
    ids: tuple[InstanceId, ...]
    birth_family_name: str | None
    used_family_name: str | None
    given_names: tuple[str, ...]
    first_given_name: str | None
    used_given_name: str | None
    sex: str | None
    birth_date: date | None
    birth_place: str | None
    birth_place_code: str | None


@dataclass(frozen=True)
class CdaAuthor:
    """The first author/assignedAuthor. `national_id` is the extension of an id whose root
    is the RPPS OID, as is ("8" + RPPS for a professional, other prefixes for staff and
    devices): reading it is the directory's business, not the parser's."""

    id: InstanceId | None
    national_id: str | None
    name: PersonName | None
    device_name: str | None
    code: CodedValue | None
    organization: Organization | None
    time: Hl7Time | None


@dataclass(frozen=True)
class LegalAuthenticator:
    id: InstanceId | None
    name: PersonName | None
    time: Hl7Time | None


@dataclass(frozen=True)
class ServiceEvent:
    code: CodedValue | None
    start: Hl7Time | None
    end: Hl7Time | None


@dataclass(frozen=True)
class NonXmlBody:
    """component/nonXMLBody/text: `data` is decoded from base64 when representation is B64,
    the text as UTF-8 when TXT; `reference` is an external reference, never fetched."""

    media_type: str | None
    representation: str | None
    data: bytes
    reference: str | None = None


@dataclass(frozen=True)
class CdaDocument:
    id: InstanceId | None
    set_id: InstanceId | None
    version_number: int | None
    code: CodedValue | None
    title: str | None
    effective_time: Hl7Time | None
    confidentiality_code: str | None
    language_code: str | None
    patient: CdaPatient
    author: CdaAuthor | None
    custodian: Organization | None
    legal_authenticator: LegalAuthenticator | None
    service_events: tuple[ServiceEvent, ...]
    practice_setting: CodedValue | None
    facility_type: CodedValue | None
    template_ids: tuple[InstanceId, ...]
    level: int  # 1 (nonXMLBody) or 3 (structuredBody)
    non_xml_body: NonXmlBody | None
    format_code: str
    # The parsed tree, for the renderer: not part of equality nor of the repr.
    root: Element = field(repr=False, compare=False)

    @property
    def service_event(self) -> ServiceEvent | None:
        return self.service_events[0] if self.service_events else None


def parse_cda(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> CdaDocument:
    """The CDA document in `data`, or `InvalidCda` saying why it cannot be used."""
    root = _parse_xml(data, max_bytes=max_bytes)
    if root.tag != _NS + "ClinicalDocument":
        raise InvalidCda(f"the root element is {root.tag}, not a CDA ClinicalDocument in {HL7_NS}")
    patient_role = root.find(f"{_NS}recordTarget/{_NS}patientRole")
    if patient_role is None:
        raise InvalidCda("the document has no recordTarget/patientRole")
    non_xml = root.find(f"{_NS}component/{_NS}nonXMLBody")
    structured = root.find(f"{_NS}component/{_NS}structuredBody")
    if non_xml is None and structured is None:
        raise InvalidCda(
            "the document has no body: neither component/nonXMLBody nor structuredBody"
        )

    template_ids = tuple(i for i in map(_ii, root.findall(_NS + "templateId")) if i is not None)
    non_xml_body = _non_xml_body(non_xml) if non_xml is not None else None
    version = _attr(root.find(_NS + "versionNumber"), "value")
    return CdaDocument(
        id=_ii(root.find(_NS + "id")),
        set_id=_ii(root.find(_NS + "setId")),
        version_number=int(version) if version is not None and version.isdigit() else None,
        code=_coded(root.find(_NS + "code")),
        title=_text(root.find(_NS + "title")),
        effective_time=_time(root.find(_NS + "effectiveTime")),
        confidentiality_code=_attr(root.find(_NS + "confidentialityCode"), "code"),
        language_code=_attr(root.find(_NS + "languageCode"), "code"),
        patient=_patient(patient_role),
        author=_author(root.find(f"{_NS}author")),
        custodian=_organization(
            root.find(
                f"{_NS}custodian/{_NS}assignedCustodian/{_NS}representedCustodianOrganization"
            )
        ),
        legal_authenticator=_legal_authenticator(root.find(_NS + "legalAuthenticator")),
        service_events=tuple(
            _service_event(e) for e in root.findall(f"{_NS}documentationOf/{_NS}serviceEvent")
        ),
        practice_setting=_practice_setting(root),
        facility_type=_coded(
            root.find(
                f"{_NS}componentOf/{_NS}encompassingEncounter/{_NS}location"
                f"/{_NS}healthCareFacility/{_NS}code"
            )
        ),
        template_ids=template_ids,
        level=1 if non_xml_body is not None else 3,
        non_xml_body=non_xml_body,
        format_code=_format_code(non_xml_body, template_ids),
        root=root,
    )


def parse_hl7_time(value: str) -> Hl7Time | None:
    """An HL7 TS (`YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+-ZZZZ]`), or None if it is not one.

    Without an offset, the time is French local time; a date alone is midnight UTC (its
    precision says it is a date). Impossible values (month 13, 30 February) give None.
    """
    match = _TS.match(value.strip())
    if match is None:
        return None
    parts = match.groupdict()
    precision = TimePrecision.year
    for name in ("month", "day", "hour", "minute", "second"):
        if parts[name] is not None:
            precision = TimePrecision(name)
    try:
        naive = datetime(
            int(parts["year"]),
            int(parts["month"] or 1),
            int(parts["day"] or 1),
            int(parts["hour"] or 0),
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            int((parts["fraction"] or "0").ljust(6, "0")),
        )
    except ValueError:
        return None
    offset = parts["offset"]
    if offset is not None:
        sign = -1 if offset[0] == "-" else 1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        if delta >= timedelta(hours=24):
            return None
        at = naive.replace(tzinfo=timezone(sign * delta))
    elif precision in (TimePrecision.year, TimePrecision.month, TimePrecision.day):
        at = naive.replace(tzinfo=UTC)
    else:
        at = naive.replace(tzinfo=_LOCAL_TZ)
    return Hl7Time(at=at, precision=precision)


# -- parsing -------------------------------------------------------------------------------


def _parse_xml(data: bytes, *, max_bytes: int) -> Element:
    if len(data) > max_bytes:
        raise InvalidCda(
            f"the CDA document is {len(data)} bytes, more than the {max_bytes} bytes accepted"
        )
    if not data.strip():
        raise InvalidCda("the CDA document is empty")
    try:
        root: Element = _defused_fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":", 1)[0]
        raise InvalidCda(
            f"the CDA document is not well-formed XML: line {line}, column {column}: {reason}"
        ) from None
    except DefusedXmlException as exc:
        raise InvalidCda(
            "the CDA document contains a DOCTYPE (a DTD or entity declarations), which is "
            f"refused for security: remove it and send the document again ({type(exc).__name__})"
        ) from None
    return root


def _attr(element: Element | None, name: str) -> str | None:
    if element is None:
        return None
    value = element.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _text(element: Element | None) -> str | None:
    if element is None:
        return None
    text = " ".join("".join(element.itertext()).split())
    return text or None


def _ii(element: Element | None) -> InstanceId | None:
    root = _attr(element, "root")
    if root is None:
        return None
    return InstanceId(root=root, extension=_attr(element, "extension"))


def _coded(element: Element | None) -> CodedValue | None:
    if element is None:
        return None
    code = _attr(element, "code")
    display = _attr(element, "displayName")
    if code is None and display is None:
        return None
    return CodedValue(code=code, code_system=_attr(element, "codeSystem"), display=display)


def _time(element: Element | None) -> Hl7Time | None:
    value = _attr(element, "value")
    return parse_hl7_time(value) if value is not None else None


def _person_name(element: Element | None) -> PersonName | None:
    if element is None:
        return None
    name = PersonName(
        prefix=_text(element.find(_NS + "prefix")),
        given=tuple(g for g in map(_text, element.findall(_NS + "given")) if g),
        family=_text(element.find(_NS + "family")),
        suffix=_text(element.find(_NS + "suffix")),
    )
    if name.family is None and not name.given:
        # A name written as plain text (allowed by the PN type) is a family name here.
        text = _text(element)
        return PersonName(family=text) if text else None
    return name


def _organization(element: Element | None) -> Organization | None:
    if element is None:
        return None
    organization = Organization(
        id=_ii(element.find(_NS + "id")), name=_text(element.find(_NS + "name"))
    )
    return organization if organization.id or organization.name else None


def _patient(role: Element) -> CdaPatient:
    ins: str | None = None
    ins_oid: str | None = None
    ids: list[InstanceId] = []
    for element in role.findall(_NS + "id"):
        identifier = _ii(element)
        if identifier is None:
            continue
        if identifier.root in INS_ROOTS and identifier.extension and ins is None:
            ins, ins_oid = identifier.extension, identifier.root
        else:
            ids.append(identifier)
    person = role.find(_NS + "patient")
    name = person.find(_NS + "name") if person is not None else None
    families: dict[str | None, str] = {}
    birth_given: list[str] = []
    first_given: str | None = None
    used_given: str | None = None
    if name is not None:
        for family in name.findall(_NS + "family"):
            text = _text(family)
            if text:
                families.setdefault(_attr(family, "qualifier"), text)
        seen_words: set[str] = set()
        for given in name.findall(_NS + "given"):
            text = _text(given)
            qualifier = _attr(given, "qualifier")
            if not text:
                continue
            if qualifier == "CL":
                used_given = used_given or text
                continue
            if qualifier == "BR":
                first_given = first_given or text
            words = set(text.split())
            if not words <= seen_words:
                birth_given.append(text)
                seen_words |= words
    first_family = next(iter(families.values()), None)
    birth_place = (
        person.find(f"{_NS}birthplace/{_NS}place/{_NS}addr") if person is not None else None
    )
    birth = _time(person.find(_NS + "birthTime")) if person is not None else None
    return CdaPatient(
        ins=ins,
        ins_oid=ins_oid,
        ids=tuple(ids),
        birth_family_name=families.get("BR", first_family),
        used_family_name=families.get("CL", families.get("SP")),
        given_names=tuple(birth_given),
        first_given_name=first_given or (birth_given[0].split()[0] if birth_given else None),
        used_given_name=used_given,
        sex=_attr(person.find(_NS + "administrativeGenderCode"), "code")
        if person is not None
        else None,
        birth_date=birth.at.date() if birth is not None else None,
        birth_place=_text(birth_place.find(_NS + "city")) if birth_place is not None else None,
        birth_place_code=_text(birth_place.find(_NS + "county"))
        if birth_place is not None
        else None,
    )


def _author(author: Element | None) -> CdaAuthor | None:
    if author is None:
        return None
    assigned = author.find(_NS + "assignedAuthor")
    if assigned is None:
        return None
    ids = [i for i in map(_ii, assigned.findall(_NS + "id")) if i is not None]
    national = next((i.extension for i in ids if i.root == IDNPS_OID and i.extension), None)
    return CdaAuthor(
        id=ids[0] if ids else None,
        national_id=national,
        name=_person_name(assigned.find(f"{_NS}assignedPerson/{_NS}name")),
        device_name=_text(assigned.find(f"{_NS}assignedAuthoringDevice/{_NS}softwareName"))
        or _text(assigned.find(f"{_NS}assignedAuthoringDevice/{_NS}manufacturerModelName")),
        code=_coded(assigned.find(_NS + "code")),
        organization=_organization(assigned.find(_NS + "representedOrganization")),
        time=_time(author.find(_NS + "time")),
    )


def _legal_authenticator(element: Element | None) -> LegalAuthenticator | None:
    if element is None:
        return None
    entity = element.find(_NS + "assignedEntity")
    return LegalAuthenticator(
        id=_ii(entity.find(_NS + "id")) if entity is not None else None,
        name=_person_name(entity.find(f"{_NS}assignedPerson/{_NS}name"))
        if entity is not None
        else None,
        time=_time(element.find(_NS + "time")),
    )


def _service_event(event: Element) -> ServiceEvent:
    effective = event.find(_NS + "effectiveTime")
    start = end = None
    if effective is not None:
        start = _time(effective.find(_NS + "low"))
        end = _time(effective.find(_NS + "high"))
        if start is None and end is None:
            start = _time(effective)
    return ServiceEvent(code=_coded(event.find(_NS + "code")), start=start, end=end)


def _practice_setting(root: Element) -> CodedValue | None:
    path = (
        f"{_NS}documentationOf/{_NS}serviceEvent/{_NS}performer/{_NS}assignedEntity"
        f"/{_NS}representedOrganization/{_NS}standardIndustryClassCode"
    )
    for element in root.findall(path):
        coded = _coded(element)
        if coded is not None:
            return coded
    return None


def _non_xml_body(body: Element) -> NonXmlBody:
    text = body.find(_NS + "text")
    if text is None:
        raise InvalidCda("the nonXMLBody has no text element")
    representation = _attr(text, "representation") or "TXT"
    reference = _attr(text.find(_NS + "reference"), "value")
    content = "".join(t for t in [text.text] if t)
    if representation.upper() == "B64":
        try:
            data = base64.b64decode("".join(content.split()), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidCda(
                "the nonXMLBody text is declared B64 but is not valid base64"
            ) from None
    else:
        data = content.encode("utf-8")
    return NonXmlBody(
        media_type=(_attr(text, "mediaType") or "text/plain").lower(),
        representation=representation,
        data=data,
        reference=reference,
    )


def _format_code(body: NonXmlBody | None, template_ids: tuple[InstanceId, ...]) -> str:
    if body is not None:
        return LEVEL1_FORMAT_CODES.get(body.media_type or "", MIME_TYPE_SUFFICIENT)
    for template in reversed(template_ids):  # the specific model comes after the generic ones
        if template.root in LEVEL3_FORMAT_CODES:
            return LEVEL3_FORMAT_CODES[template.root]
    return MIME_TYPE_SUFFICIENT
