"""IHE MHD ITI-65 (Provide Document Bundle): a FHIR transaction Bundle read into a
`Submission`, and the transaction-response written back.

The Bundle is read field by field, not through a generic model: the content of a 50 KB
document costs more to validate as a FHIR model than to encrypt and store; every field we
use is checked here, with the location of what is wrong (FHIRPath) in the error.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

from partage.directory.service import IDNPS_OID, IDNST_OID
from partage.documents.models import Confidentiality, RelationKind
from partage.documents.submission import (
    CONFIDENTIALITY_SYSTEM,
    VISIBILITY_CODES,
    AuthorRef,
    Coding,
    DepositResult,
    NewDocument,
    NewFolder,
    PatientRef,
    Relation,
    Submission,
    SubmissionError,
)
from partage.identity.ins import INS_OIDS

MHD_LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
SOURCE_ID_URL = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"
_RPPS_SYSTEMS = {f"urn:oid:{IDNPS_OID}", "https://rpps.esante.gouv.fr"}
_FINESS_SYSTEMS = {f"urn:oid:{IDNST_OID}", "https://finess.esante.gouv.fr"}
_MIME = re.compile(r"^[a-z0-9.+-]+/[a-z0-9.+-]+$", re.IGNORECASE)
_RELATIONS = {"replaces": RelationKind.replaces, "appends": RelationKind.appends,
              "transforms": RelationKind.transforms}  # fmt: skip


def _oid_of(system: str | None) -> str | None:
    if system and system.startswith("urn:oid:"):
        return system[len("urn:oid:") :]
    return None


def _uid(value: Any, where: str) -> str:
    """An XDS uniqueId as FHIR gives it: `urn:oid:…`, `urn:uuid:…` or the bare value."""
    if not isinstance(value, str) or not value.strip():
        raise SubmissionError("the identifier is missing", where=where, code="required")
    text: str = value.strip()
    if text.startswith("urn:oid:"):
        text = text[len("urn:oid:") :]
    if len(text) > 128:
        raise SubmissionError("the identifier is longer than 128 characters", where=where)
    return text


def _object(value: Any, where: str, *, required: bool = True) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise SubmissionError("an object is expected here", where=where, code="structure")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SubmissionError("an array is expected here", where=where, code="structure")
    return value


def _string(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise SubmissionError("a value is required here", where=where, code="required")
        return None
    if not isinstance(value, str):
        raise SubmissionError("a string is expected here", where=where, code="structure")
    return value


def _coding(concept: Any, where: str) -> Coding | None:
    """The first coding of a CodeableConcept."""
    if concept is None:
        return None
    codings = _list(_object(concept, where).get("coding"), f"{where}.coding")
    for i, raw in enumerate(codings):
        coding = _object(raw, f"{where}.coding[{i}]")
        code = _string(coding.get("code"), f"{where}.coding[{i}].code")
        if code:
            return Coding(
                _string(coding.get("system"), f"{where}.coding[{i}].system"),
                code[:64],
                _string(coding.get("display"), f"{where}.coding[{i}].display"),
            )
    return None


def parse_datetime(value: Any, where: str) -> datetime | None:
    """A FHIR dateTime or instant; a date alone is midnight UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SubmissionError("a date is expected here", where=where, code="structure")
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        if len(value) == 7:
            return datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=UTC)
        if len(value) == 4:
            return datetime(int(value), 1, 1, tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SubmissionError(f"'{value}' is not a FHIR date or dateTime", where=where) from None
    if parsed.tzinfo is None:
        raise SubmissionError("a dateTime with a time needs its time zone", where=where)
    return parsed.astimezone(UTC)


def _reference_id(reference: str, resource_type: str) -> uuid.UUID | None:
    """`Type/<uuid>` or `<base>/Type/<uuid>`: the id; None when it is not of that form."""
    marker = f"{resource_type}/"
    if marker not in reference:
        return None
    tail = reference.rsplit(marker, 1)[1].split("/_history", 1)[0]
    try:
        return uuid.UUID(tail)
    except ValueError:
        return None


class _Bundle:
    """The entries of a transaction Bundle, by fullUrl."""

    def __init__(self, body: Any) -> None:
        bundle = _object(body, "Bundle")
        if bundle.get("resourceType") != "Bundle":
            raise SubmissionError("the body is not a FHIR Bundle", where="Bundle", code="structure")
        if bundle.get("type") != "transaction":
            raise SubmissionError(
                "ITI-65 expects a Bundle of type 'transaction'", where="Bundle.type", code="value"
            )
        self.entries: list[tuple[str, dict[str, Any], str]] = []
        self.by_url: dict[str, tuple[dict[str, Any], str]] = {}
        for i, raw in enumerate(_list(bundle.get("entry"), "Bundle.entry")):
            where = f"Bundle.entry[{i}]"
            entry = _object(raw, where)
            resource = _object(entry.get("resource"), f"{where}.resource")
            full_url = _string(entry.get("fullUrl"), f"{where}.fullUrl") or ""
            request = _object(entry.get("request"), f"{where}.request", required=False)
            method = request.get("method", "POST")
            if method != "POST":
                raise SubmissionError(
                    "ITI-65 entries are created (POST)", where=f"{where}.request.method"
                )
            self.entries.append((full_url, resource, f"{where}.resource"))
            if full_url:
                if full_url in self.by_url:
                    raise SubmissionError("two entries share a fullUrl", where=f"{where}.fullUrl")
                self.by_url[full_url] = (resource, f"{where}.resource")

    def of_type(self, resource_type: str) -> list[tuple[str, dict[str, Any], str]]:
        return [e for e in self.entries if e[1].get("resourceType") == resource_type]

    def resolve(self, reference: str) -> tuple[dict[str, Any], str] | None:
        return self.by_url.get(reference)


def _list_kind(resource: dict[str, Any], where: str) -> str | None:
    code = _coding(resource.get("code"), f"{where}.code")
    return code.code if code is not None and code.system in (MHD_LIST_TYPES, None) else None


def _official_identifier(resource: dict[str, Any], where: str) -> str:
    identifiers = _list(resource.get("identifier"), f"{where}.identifier")
    for i, raw in enumerate(identifiers):
        identifier = _object(raw, f"{where}.identifier[{i}]")
        if identifier.get("use") == "official":
            return _uid(identifier.get("value"), f"{where}.identifier[{i}].value")
    raise SubmissionError(
        "the uniqueId (identifier with use 'official') is missing",
        where=f"{where}.identifier",
        code="required",
    )


def _contained(resource: dict[str, Any], reference: str) -> dict[str, Any] | None:
    if not reference.startswith("#"):
        return None
    for raw in resource.get("contained") or []:
        if isinstance(raw, dict) and raw.get("id") == reference[1:]:
            return raw
    return None


def _patient(resource: dict[str, Any], where: str) -> PatientRef:
    """The patient of a DocumentReference: the source patient's identifier in its domain
    (context.sourcePatientInfo) when given, else the subject."""
    context = _object(resource.get("context"), f"{where}.context", required=False)
    source = context.get("sourcePatientInfo")
    if isinstance(source, dict):
        reference = source.get("reference")
        patient = _contained(resource, reference) if isinstance(reference, str) else None
        for i, raw in enumerate(_list((patient or {}).get("identifier"), f"{where}.contained")):
            identifier = _object(raw, f"{where}.contained.identifier[{i}]")
            ref = _identifier_patient(identifier)
            if ref is not None:
                return ref
    subject = _object(resource.get("subject"), f"{where}.subject", required=False)
    if isinstance(subject.get("identifier"), dict):
        ref = _identifier_patient(subject["identifier"])
        if ref is not None:
            return ref
    reference = subject.get("reference")
    if isinstance(reference, str):
        person_id = _reference_id(reference, "Patient")
        if person_id is not None:
            return PatientRef(person_id=person_id)
    raise SubmissionError(
        "the patient is missing: give subject (Patient/<id>, or an identifier with its "
        "domain's OID as system)",
        where=f"{where}.subject",
        code="required",
    )


def _identifier_patient(identifier: dict[str, Any]) -> PatientRef | None:
    system, value = identifier.get("system"), identifier.get("value")
    if not isinstance(system, str) or not isinstance(value, str) or not value.strip():
        return None
    oid = _oid_of(system)
    if oid is None:
        return None
    if oid in INS_OIDS:
        return PatientRef(ins=value.strip(), ins_oid=oid)
    return PatientRef(domain_oid=oid, local_id=value.strip())


def _author(resource: dict[str, Any], raw: Any, where: str) -> AuthorRef:
    author = _object(raw, where)
    reference = author.get("reference")
    display = _string(author.get("display"), f"{where}.display")
    if isinstance(reference, str):
        contained = _contained(resource, reference)
        if contained is not None:
            return _contained_author(contained, where)
        practitioner_id = _reference_id(reference, "Practitioner")
        if practitioner_id is not None:
            return AuthorRef(practitioner_id=practitioner_id, label=display)
        organization_id = _reference_id(reference, "Organization")
        if organization_id is not None:
            return AuthorRef(organization_id=organization_id, label=display)
        raise SubmissionError(
            "an author is a Practitioner or an Organization of the directory, or contained",
            where=f"{where}.reference",
        )
    identifier = author.get("identifier")
    if isinstance(identifier, dict):
        return _identified_author(identifier, author.get("type"), display, where)
    if display:
        return AuthorRef(label=display)
    raise SubmissionError("the author is empty", where=where, code="required")


def _identified_author(
    identifier: dict[str, Any], kind: Any, label: str | None, where: str
) -> AuthorRef:
    system, value = identifier.get("system"), identifier.get("value")
    if not isinstance(value, str) or not value.strip():
        raise SubmissionError("the author's identifier has no value", where=where)
    if system in _RPPS_SYSTEMS or kind == "Practitioner":
        return AuthorRef(practitioner_national_id=value.strip(), label=label)
    if system in _FINESS_SYSTEMS or kind == "Organization":
        return AuthorRef(organization_finess=value.strip(), label=label)
    raise SubmissionError(
        f"the author's identifier system {system} is neither RPPS nor FINESS",
        where=f"{where}.identifier.system",
    )


def _contained_author(contained: dict[str, Any], where: str) -> AuthorRef:
    kind = contained.get("resourceType")
    label = None
    names = contained.get("name")
    if kind == "Practitioner" and isinstance(names, list) and names and isinstance(names[0], dict):
        name = names[0]
        given = " ".join(g for g in name.get("given") or [] if isinstance(g, str))
        label = " ".join(p for p in (given, name.get("family") or "") if p) or None
    elif kind == "Organization" and isinstance(names, str):
        label = names
    practitioner_national_id = organization_finess = None
    for raw in contained.get("identifier") or []:
        if not isinstance(raw, dict):
            continue
        if raw.get("system") in _RPPS_SYSTEMS and kind == "Practitioner":
            practitioner_national_id = raw.get("value")
        if raw.get("system") in _FINESS_SYSTEMS and kind == "Organization":
            organization_finess = raw.get("value")
    if kind == "PractitionerRole":
        for key in ("practitioner", "organization"):
            part = contained.get(key)
            if isinstance(part, dict) and isinstance(part.get("identifier"), dict):
                ref = _identified_author(part["identifier"], key.capitalize(), None, where)
                practitioner_national_id = practitioner_national_id or ref.practitioner_national_id
                organization_finess = organization_finess or ref.organization_finess
    if not (practitioner_national_id or organization_finess or label):
        raise SubmissionError(
            "the contained author has neither an RPPS/FINESS identifier nor a name", where=where
        )
    return AuthorRef(
        practitioner_national_id=practitioner_national_id,
        organization_finess=organization_finess,
        label=label,
    )


def security_labels(resource: dict[str, Any], where: str) -> tuple[str, frozenset[str]]:
    confidentiality = Confidentiality.normal.value
    visibility: set[str] = set()
    for i, raw in enumerate(_list(resource.get("securityLabel"), f"{where}.securityLabel")):
        for j, coding_raw in enumerate(
            _list(_object(raw, f"{where}.securityLabel[{i}]").get("coding"), f"{where}.x")
        ):
            coding = _object(coding_raw, f"{where}.securityLabel[{i}].coding[{j}]")
            code = coding.get("code")
            if code in VISIBILITY_CODES:
                visibility.add(code)
            elif code in ("N", "R", "V") and coding.get("system") in (CONFIDENTIALITY_SYSTEM, None):
                confidentiality = code
            elif code in ("L", "M", "U"):
                continue  # other levels of the HL7 scale: no rule reads them
            else:
                raise SubmissionError(
                    f"unknown security label {code!r}",
                    where=f"{where}.securityLabel[{i}].coding[{j}]",
                    code="code-invalid",
                )
    return confidentiality, frozenset(visibility)


def _content(
    bundle: _Bundle, resource: dict[str, Any], where: str
) -> tuple[bytes, dict[str, Any], Coding | None, str]:
    contents = _list(resource.get("content"), f"{where}.content")
    if len(contents) != 1:
        raise SubmissionError(
            "a DocumentReference carries exactly one content", where=f"{where}.content"
        )
    content = _object(contents[0], f"{where}.content[0]")
    at = f"{where}.content[0].attachment"
    attachment = _object(content.get("attachment"), at)
    fmt = _coding({"coding": [content["format"]]} if isinstance(content.get("format"), dict)
                  else None, f"{where}.content[0].format")  # fmt: skip
    data = attachment.get("data")
    if data is None:
        url = _string(attachment.get("url"), f"{at}.url", required=True)
        assert url is not None
        target = bundle.resolve(url)
        if target is None or target[0].get("resourceType") != "Binary":
            raise SubmissionError(
                "the attachment's url names no Binary of the Bundle", where=f"{at}.url"
            )
        binary, binary_where = target
        data = binary.get("data")
        binary_type = binary.get("contentType")
        if (
            binary_type
            and attachment.get("contentType")
            and binary_type != attachment.get("contentType")
        ):
            raise SubmissionError(
                f"the Binary's contentType ({binary_type}) differs from the attachment's",
                where=f"{at}.contentType",
                code="value",
            )
        data_where = f"{binary_where}.data"
    else:
        data_where = f"{at}.data"
    if not isinstance(data, str) or not data:
        raise SubmissionError("the content is missing", where=data_where, code="required")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SubmissionError("the content is not valid base64", where=data_where) from None
    return raw, attachment, fmt, at


def _document(
    bundle: _Bundle, resource: dict[str, Any], where: str, base: str
) -> tuple[NewDocument, PatientRef]:
    master = _object(resource.get("masterIdentifier"), f"{where}.masterIdentifier")
    unique_id = _uid(master.get("value"), f"{where}.masterIdentifier.value")
    status = resource.get("status", "current")
    if status != "current":
        raise SubmissionError(
            "a document is deposited with status 'current'", where=f"{where}.status"
        )
    content, attachment, fmt, at = _content(bundle, resource, where)
    mime_type = _string(attachment.get("contentType"), f"{at}.contentType", required=True) or ""
    if not _MIME.match(mime_type.split(";")[0].strip()):
        raise SubmissionError(f"'{mime_type}' is not a media type", where=f"{at}.contentType")
    size = attachment.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise SubmissionError("the size is not a whole number", where=f"{at}.size")
    declared_hash = None
    if attachment.get("hash") is not None:
        try:
            declared_hash = base64.b64decode(str(attachment["hash"]), validate=True)
        except (binascii.Error, ValueError):
            raise SubmissionError("the hash is not valid base64", where=f"{at}.hash") from None
    categories = _list(resource.get("category"), f"{where}.category")
    context = _object(resource.get("context"), f"{where}.context", required=False)
    period = _object(context.get("period"), f"{where}.context.period", required=False)
    confidentiality, visibility = security_labels(resource, where)
    relations = []
    for i, raw in enumerate(_list(resource.get("relatesTo"), f"{where}.relatesTo")):
        relation = _object(raw, f"{where}.relatesTo[{i}]")
        kind = _RELATIONS.get(str(relation.get("code")))
        if kind is None:
            raise SubmissionError(
                "relatesTo.code is replaces, appends or transforms",
                where=f"{where}.relatesTo[{i}].code",
            )
        target = _object(relation.get("target"), f"{where}.relatesTo[{i}].target")
        reference = target.get("reference")
        target_id = (
            _reference_id(reference, "DocumentReference") if isinstance(reference, str) else None
        )
        target_uid = None
        if target_id is None and isinstance(target.get("identifier"), dict):
            target_uid = _uid(target["identifier"].get("value"), f"{where}.relatesTo[{i}]")
        if target_id is None and target_uid is None:
            raise SubmissionError(
                "relatesTo.target names a DocumentReference/<id> or its identifier",
                where=f"{where}.relatesTo[{i}].target",
            )
        relations.append(Relation(kind, target_id, target_uid))
    document = NewDocument(
        unique_id=unique_id,
        content=content,
        mime_type=mime_type.split(";")[0].strip().lower(),
        type=_coding(resource.get("type"), f"{where}.type"),
        class_=_coding(categories[0], f"{where}.category[0]") if categories else None,
        format_code=fmt.code if fmt else None,
        language=_string(attachment.get("language"), f"{at}.language"),
        title=_string(attachment.get("title"), f"{at}.title")
        or _string(resource.get("description"), f"{where}.description"),
        creation_time=parse_datetime(attachment.get("creation"), f"{at}.creation"),
        service_start=parse_datetime(period.get("start"), f"{where}.context.period.start"),
        service_end=parse_datetime(period.get("end"), f"{where}.context.period.end"),
        authors=[
            _author(resource, raw, f"{where}.author[{i}]")
            for i, raw in enumerate(_list(resource.get("author"), f"{where}.author"))
        ],
        facility_type=_coding(context.get("facilityType"), f"{where}.context.facilityType"),
        practice_setting=_coding(
            context.get("practiceSetting"), f"{where}.context.practiceSetting"
        ),
        confidentiality=confidentiality,
        visibility=visibility,
        relations=relations,
        declared_size=size,
        declared_hash=declared_hash,
        where=where,
    )
    return document, _patient(resource, where)


def parse_provide_bundle(body: Any, *, base: str) -> tuple[Submission, list[str]]:
    """The submission an ITI-65 Bundle carries, and the fullUrl of each document entry."""
    bundle = _Bundle(body)
    lists = bundle.of_type("List")
    submission_sets = [e for e in lists if _list_kind(e[1], e[2]) == "submissionset"]
    if len(submission_sets) != 1:
        raise SubmissionError(
            "an ITI-65 Bundle holds exactly one SubmissionSet (a List coded 'submissionset')",
            where="Bundle.entry",
            code="required",
        )
    _, submission_list, list_where = submission_sets[0]
    source_id = None
    for extension in _list(submission_list.get("extension"), f"{list_where}.extension"):
        if isinstance(extension, dict) and extension.get("url") == SOURCE_ID_URL:
            value = extension.get("valueIdentifier")
            if isinstance(value, dict):
                source_id = _uid(value.get("value"), f"{list_where}.extension(sourceId)")
    if source_id is None:
        raise SubmissionError(
            "the SubmissionSet's sourceId extension is missing",
            where=f"{list_where}.extension",
            code="required",
        )
    folders = [
        NewFolder(_official_identifier(r, w), _string(r.get("title"), f"{w}.title"))
        for _, r, w in lists
        if _list_kind(r, w) == "folder"
    ]
    document_entries = bundle.of_type("DocumentReference")
    if not document_entries:
        raise SubmissionError(
            "the Bundle holds no DocumentReference", where="Bundle.entry", code="required"
        )
    documents: list[NewDocument] = []
    patients: list[PatientRef] = []
    for _, resource, where in document_entries:
        document, patient = _document(bundle, resource, where, base)
        documents.append(document)
        patients.append(patient)
    if any(p != patients[0] for p in patients):
        raise SubmissionError(
            "the documents of a submission are all for one patient",
            where="Bundle.entry.resource.subject",
        )
    for _, resource, where in lists:
        if _list_kind(resource, where) != "folder":
            continue
        folder_uid = _official_identifier(resource, where)
        for i, raw in enumerate(_list(resource.get("entry"), f"{where}.entry")):
            item = _object(_object(raw, f"{where}.entry[{i}]").get("item"), f"{where}.entry[{i}]")
            reference = item.get("reference")
            for (doc_url, _, _), document in zip(document_entries, documents, strict=True):
                if doc_url and reference == doc_url:
                    document.folders.append(folder_uid)
    submission = Submission(
        unique_id=_official_identifier(submission_list, list_where),
        source_id=source_id,
        patient=patients[0],
        channel="mhd",
        documents=documents,
        title=_string(submission_list.get("title"), f"{list_where}.title"),
        folders=folders,
    )
    return submission, [url for url, _, _ in document_entries]


def transaction_response(
    body: Any, result: DepositResult, document_urls: list[str], *, base: str
) -> dict[str, Any]:
    """One response entry per request entry, in order (FHIR transaction-response)."""
    by_url = {url: d for url, d in zip(document_urls, result.documents, strict=True) if url}
    entries: list[dict[str, Any]] = []
    ordered = iter(result.documents)
    for raw in body.get("entry") or []:
        resource = raw.get("resource") or {}
        kind = resource.get("resourceType")
        if kind == "DocumentReference":
            document = by_url.get(raw.get("fullUrl") or "") or next(ordered)
            location = f"DocumentReference/{document.id}/_history/{document.version}"
        elif kind == "Binary":
            location = ""
        elif kind == "List":
            location = f"List/{result.submission_set_id}"
        else:
            location = ""
        response: dict[str, Any] = {"status": "201 Created"}
        if location:
            response["location"] = location
        entries.append({"response": response})
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "transaction-response",
        "entry": entries,
    }
