"""Synthetic documents for the demo territory, the benchmarks and the tests: real PDF files
(one page of text, padded to a size) and ITI-65 Bundles around them."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime
from typing import Any

from partage.directory.service import IDNPS_OID
from partage.documents.mhd import MHD_LIST_TYPES, SOURCE_ID_URL

# Common document types of a territory's exchanges (LOINC), with their XDS class.
DOCUMENT_TYPES: tuple[tuple[str, str, str, str], ...] = (
    ("11488-4", "Compte rendu de consultation", "11488-4", "Compte rendu"),
    ("34874-8", "Compte rendu opératoire", "11488-4", "Compte rendu"),
    ("18748-4", "Compte rendu d'imagerie médicale", "18748-4", "Imagerie"),
    ("11502-2", "Compte rendu d'examens biologiques", "11502-2", "Biologie"),
    ("18842-5", "Lettre de liaison à la sortie", "18842-5", "Synthèse"),
)


def _pdf_text(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return escaped.encode("latin-1", "replace").decode("latin-1")


def pdf(lines: list[str], *, size: int = 0, seed: str = "") -> bytes:
    """A one-page PDF showing `lines`; padded with an incompressible stream to `size`
    bytes (documents weigh what real ones do: scanned letters are not compressible)."""
    text_ops = ["BT", "/F1 11 Tf", "14 TL", "56 780 Td"]
    for line in lines:
        text_ops.append(f"({_pdf_text(line)}) Tj T*")
    text_ops.append("ET")
    stream = "\n".join(text_ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    body = _assemble(objects, padding=b"")
    if size > len(body) + 128:
        # An unreferenced object of pseudo-random bytes: compressed, it stays this size.
        missing = size - len(body) - 64
        for _ in range(3):  # the lengths written in the file change the length by digits
            noise = _noise(seed or "\n".join(lines), max(0, missing))
            padding = b"<< /Length %d >>\nstream\n" % len(noise) + noise + b"\nendstream"
            body = _assemble(objects, padding=padding)
            if len(body) == size:
                break
            missing += size - len(body)
    return body


def _noise(seed: str, size: int) -> bytes:
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def _assemble(objects: list[bytes], *, padding: bytes) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    all_objects = objects + ([padding] if padding else [])
    for number, obj in enumerate(all_objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(all_objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(all_objects) + 1,
        xref,
    )
    return bytes(out)


def provide_bundle(
    *,
    content: bytes,
    domain_oid: str,
    local_id: str,
    author_rpps: str | None = None,
    author_reference: str | None = None,
    type_code: str = "11488-4",
    type_display: str = "Compte rendu de consultation",
    class_code: str = "11488-4",
    title: str = "Compte rendu",
    mime_type: str = "application/pdf",
    created: datetime | None = None,
    source_oid: str = "1.2.250.1.999.1",
    with_hash: bool = True,
    visibility: tuple[str, ...] = (),
    replaces: str | None = None,
) -> dict[str, Any]:
    """An ITI-65 transaction Bundle: a submission set, one DocumentReference, its Binary."""
    document_url = f"urn:uuid:{uuid.uuid4()}"
    binary_url = f"urn:uuid:{uuid.uuid4()}"
    subject = {"identifier": {"system": f"urn:oid:{domain_oid}", "value": local_id}}
    author: dict[str, Any]
    if author_reference:
        author = {"reference": author_reference}
    else:
        author = {
            "identifier": {"system": f"urn:oid:{IDNPS_OID}", "value": author_rpps or ""},
            "type": "Practitioner",
        }
    attachment: dict[str, Any] = {
        "contentType": mime_type,
        "url": binary_url,
        "size": len(content),
        "title": title,
        "language": "fr-FR",
        "creation": (created or datetime.now().astimezone()).isoformat(timespec="seconds"),
    }
    if with_hash:
        attachment["hash"] = base64.b64encode(
            hashlib.sha1(content, usedforsecurity=False).digest()
        ).decode()
    labels: list[dict[str, Any]] = [
        {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}
            ]
        }
    ] + [
        {"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.13", "code": code}]}
        for code in visibility
    ]
    document: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {
            "system": "urn:ietf:rfc:3986",
            "value": f"urn:oid:2.25.{uuid.uuid4().int}",
        },
        "status": "current",
        "type": {
            "coding": [{"system": "http://loinc.org", "code": type_code, "display": type_display}]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": class_code}]}],
        "subject": subject,
        "author": [author],
        "securityLabel": labels,
        "content": [
            {
                "attachment": attachment,
                "format": {
                    "system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                    "code": "urn:ihe:iti:xds-sd:pdf:2008",
                },
            }
        ],
        "context": {
            "facilityType": {
                "coding": [{"code": "SA01", "display": "Établissement public de santé"}]
            },
            "practiceSetting": {
                "coding": [{"code": "ETABLISSEMENT", "display": "Établissement de santé"}]
            },
        },
    }
    if replaces:
        document["relatesTo"] = [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}
        ]
    submission_set = {
        "resourceType": "List",
        "status": "current",
        "mode": "working",
        "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "submissionset"}]},
        "extension": [
            {"url": SOURCE_ID_URL, "valueIdentifier": {"value": f"urn:oid:{source_oid}"}}
        ],
        "identifier": [
            {
                "use": "official",
                "system": "urn:ietf:rfc:3986",
                "value": f"urn:oid:2.25.{uuid.uuid4().int}",
            }
        ],
        "subject": subject,
        "entry": [{"item": {"reference": document_url}}],
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "meta": {
            "profile": [
                "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.ProvideBundle"
            ]
        },
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": submission_set,
                "request": {"method": "POST", "url": "List"},
            },
            {
                "fullUrl": document_url,
                "resource": document,
                "request": {"method": "POST", "url": "DocumentReference"},
            },
            {
                "fullUrl": binary_url,
                "resource": {
                    "resourceType": "Binary",
                    "contentType": mime_type,
                    "data": base64.b64encode(content).decode(),
                },
                "request": {"method": "POST", "url": "Binary"},
            },
        ],
    }
