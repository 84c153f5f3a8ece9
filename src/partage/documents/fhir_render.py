"""Document entries as FHIR R4 DocumentReference resources (IHE MHD Comprehensive, with the
French visibility codes), rendered a page at a time."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from partage.documents import service
from partage.documents.models import DocumentEntry, DocumentRelation, DocumentStatus
from partage.documents.submission import (
    CONFIDENTIALITY_SYSTEM,
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
    VISIBILITY_SYSTEM,
)

MHD_PROFILE = (
    "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference"
)
XDS_FORMAT_SYSTEM = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
# FHIR has no "archived": an archived document is current, tagged.
ARCHIVED_TAG = {"system": "urn:partage:document-status", "code": "archived"}
_CONFIDENTIALITY_DISPLAY = {"N": "normal", "R": "restricted", "V": "very restricted"}


def _concept(system: str | None, code: str | None, display: str | None) -> dict[str, Any] | None:
    if not code:
        return None
    coding: dict[str, Any] = {"code": code}
    if system:
        coding["system"] = system
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _instant(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def document_reference(
    entry: DocumentEntry,
    *,
    person_id: str | None,
    sha1: str | None,
    relations: Sequence[DocumentRelation],
    base: str,
) -> dict[str, Any]:
    status = DocumentStatus(entry.status)
    labels: list[dict[str, Any]] = [
        {
            "coding": [
                {
                    "system": CONFIDENTIALITY_SYSTEM,
                    "code": entry.confidentiality,
                    "display": _CONFIDENTIALITY_DISPLAY.get(entry.confidentiality),
                }
            ]
        }
    ]
    for flag, code in (
        (entry.invisible_patient, INVISIBLE_PATIENT),
        (entry.masked_ps, MASQUE_PS),
        (entry.invisible_legal_reps, INVISIBLE_REPRESENTANTS_LEGAUX),
    ):
        if flag:
            labels.append({"coding": [{"system": VISIBILITY_SYSTEM, "code": code}]})
    attachment: dict[str, Any] = {
        "contentType": entry.mime_type,
        "url": f"{base}/Binary/{entry.id}",
        "size": entry.size,
        "creation": _instant(entry.creation_time),
    }
    if entry.language:
        attachment["language"] = entry.language
    if entry.title:
        attachment["title"] = entry.title
    if sha1:
        attachment["hash"] = base64.b64encode(bytes.fromhex(sha1)).decode()
    content: dict[str, Any] = {"attachment": attachment}
    if entry.format_code:
        content["format"] = {"system": XDS_FORMAT_SYSTEM, "code": entry.format_code}
    authors: list[dict[str, Any]] = []
    if entry.author_practitioner_id:
        authors.append({"reference": f"Practitioner/{entry.author_practitioner_id}"})
    if entry.author_organization_id:
        authors.append({"reference": f"Organization/{entry.author_organization_id}"})
    if not authors and entry.author_label:
        authors.append({"display": entry.author_label})
    elif authors and entry.author_label:
        authors[0]["display"] = entry.author_label
    context: dict[str, Any] = {}
    if entry.service_start or entry.service_end:
        context["period"] = {
            k: v
            for k, v in (
                ("start", _instant(entry.service_start)),
                ("end", _instant(entry.service_end)),
            )
            if v
        }
    facility = _concept(None, entry.facility_type_code, entry.facility_type_display)
    if facility:
        context["facilityType"] = facility
    setting = _concept(None, entry.practice_setting_code, entry.practice_setting_display)
    if setting:
        context["practiceSetting"] = setting
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": str(entry.id),
        "meta": {
            "versionId": str(entry.version),
            "lastUpdated": _instant(entry.updated_at),
            "profile": [MHD_PROFILE],
        },
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": _urn(entry.unique_id)},
        "identifier": [
            {"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{entry.id}"}
        ],
        "status": "current" if status is DocumentStatus.archived else status.value,
        "type": _concept(entry.type_system or None, entry.type_code, entry.type_display),
    }
    if status is DocumentStatus.archived:
        resource["meta"]["tag"] = [ARCHIVED_TAG]
    category = _concept(entry.class_system, entry.class_code, entry.class_display)
    if category:
        resource["category"] = [category]
    if person_id:
        resource["subject"] = {"reference": f"Patient/{person_id}"}
    resource["date"] = _instant(entry.deposited_at)
    if authors:
        resource["author"] = authors
    if relations:
        resource["relatesTo"] = [
            {"code": r.kind, "target": {"reference": f"DocumentReference/{r.target_id}"}}
            for r in relations
        ]
    if entry.title:
        resource["description"] = entry.title
    resource["securityLabel"] = labels
    resource["content"] = [content]
    if context:
        resource["context"] = context
    return resource


def _urn(unique_id: str) -> str:
    if unique_id.startswith(("urn:", "http:", "https:")):
        return unique_id
    if all(part.isdigit() for part in unique_id.split(".")):
        return f"urn:oid:{unique_id}"
    return unique_id


def document_references(
    session: Session, entries: Sequence[DocumentEntry], *, base: str
) -> list[dict[str, Any]]:
    """A page of entries, their persons, hashes and relations read once per page."""
    persons = service.persons_of_identities(session, [e.local_identity_id for e in entries])
    contents = service.contents_by_sha256(session, sorted({e.sha256 for e in entries}))
    relations: dict[Any, list[DocumentRelation]] = {}
    if entries:
        for relation in session.scalars(
            select(DocumentRelation).where(DocumentRelation.source_id.in_([e.id for e in entries]))
        ):
            relations.setdefault(relation.source_id, []).append(relation)
    rendered = []
    for entry in entries:
        person = persons.get(entry.local_identity_id)
        content = contents.get(entry.sha256)
        rendered.append(
            document_reference(
                entry,
                person_id=str(person) if person else None,
                sha1=content.sha1 if content is not None else None,
                relations=relations.get(entry.id, []),
                base=base,
            )
        )
    return rendered
