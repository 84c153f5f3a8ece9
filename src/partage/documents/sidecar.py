"""The drop-folder's sidecar: the metadata a sender writes next to a document (`NAME.json`),
read strictly (each faulty field named), and what the connector says of a refused file in
French as well as English.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from partage.documents.cda import CdaDocument
from partage.documents.models import Confidentiality, RelationKind
from partage.documents.submission import (
    LOINC,
    VISIBILITY_CODES,
    AuthorRef,
    Coding,
    NewDocument,
    PatientRef,
    Relation,
    SubmissionError,
)
from partage.identity.ins import InvalidIns, validate_ins

OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
# An XDS uniqueId: an OID, or a CDA id `root^extension` (at most 128 characters).
UNIQUE_ID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+(\^[^\s^]{1,64})?$")


class Refused(SubmissionError):
    """A file refused by the connector itself, with the reason in French too."""

    def __init__(self, message: str, *, french: str, where: str = "", code: str = "invalid"):
        super().__init__(message, where=where, code=code)
        self.french = french


class _Strict(BaseModel):
    # An unknown key is a typo more often than not ("titel"): refused, not ignored.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class SidecarPatient(_Strict):
    """The patient: the local identifier (IPP) in the establishment's domain (its OID may be
    left out: the connector's own), or a qualified INS."""

    local_id: str | None = Field(default=None, min_length=1, max_length=64)
    domain_oid: str | None = Field(default=None, pattern=OID.pattern, max_length=128)
    ins: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> SidecarPatient:
        if self.ins is not None:
            if self.local_id is not None or self.domain_oid is not None:
                raise ValueError("give either local_id (with domain_oid) or ins, not both")
            try:
                validate_ins(self.ins)
            except InvalidIns as error:
                raise ValueError(f"ins: {error}") from None
        elif self.local_id is None:
            raise ValueError("give local_id (the IPP, with domain_oid) or ins")
        return self


class SidecarCoding(_Strict):
    system: str = Field(default=LOINC, min_length=1, max_length=200)
    code: str = Field(min_length=1, max_length=64)
    display: str | None = Field(default=None, max_length=300)


class SidecarAuthor(_Strict):
    """A professional by RPPS / ADELI, a structure by FINESS (both must be in the
    territory's directory), or a name as written."""

    rpps: str | None = Field(default=None, pattern=r"^[0-9]{9,12}$")
    finess: str | None = Field(default=None, pattern=r"^[0-9A-B]{9}$")
    name: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _not_empty(self) -> SidecarAuthor:
        if not (self.rpps or self.finess or self.name):
            raise ValueError("give rpps, finess or name")
        return self


class Sidecar(_Strict):
    """`NAME.json`: the metadata of `NAME.pdf` / `.xml` / `.txt`. For a CDA, what is left out
    is taken from its header."""

    patient: SidecarPatient | None = None
    type: SidecarCoding | None = None
    class_: SidecarCoding | None = Field(default=None, alias="class")
    title: str | None = Field(default=None, min_length=1, max_length=300)
    created: AwareDatetime | None = None
    service_start: AwareDatetime | None = None
    service_end: AwareDatetime | None = None
    author: SidecarAuthor | None = None
    confidentiality: Literal["N", "R", "V"] = "N"
    visibility: list[
        Literal["INVISIBLE_PATIENT", "MASQUE_PS", "INVISIBLE_REPRESENTANTS_LEGAUX"]
    ] = Field(default_factory=list)
    replaces: str | None = Field(default=None, pattern=UNIQUE_ID.pattern, max_length=128)
    unique_id: str | None = Field(default=None, pattern=UNIQUE_ID.pattern, max_length=128)


def read_sidecar(data: bytes, name: str) -> Sidecar:
    """The sidecar's metadata, or `SubmissionError` naming each faulty field."""
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not an error.
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise Refused(
            f"the metadata file {name} is not UTF-8 text",
            french=f"le fichier de métadonnées {name} n'est pas du texte UTF-8",
            where=name,
        ) from None
    except json.JSONDecodeError as error:
        at = f"line {error.lineno}, column {error.colno}"
        raise Refused(
            f"the metadata file {name} is not valid JSON ({at}: {error.msg})",
            french=f"le fichier de métadonnées {name} n'est pas du JSON valide "
            f"(ligne {error.lineno}, colonne {error.colno})",
            where=name,
        ) from None
    if not isinstance(raw, dict):
        raise Refused(
            f"the metadata file {name} must hold a JSON object",
            french=f"le fichier de métadonnées {name} doit contenir un objet JSON",
            where=name,
        )
    try:
        return Sidecar.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(_problem(item) for item in error.errors())
        raise Refused(
            f"the metadata file {name} is not valid: {problems}",
            french=f"le fichier de métadonnées {name} n'est pas valide (détail en anglais) : "
            f"{problems}",
            where=name,
        ) from None


def _problem(item: Any) -> str:
    location = ".".join(str(part) for part in item.get("loc", ()))
    message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def cda_unique_id(header: CdaDocument | None) -> str | None:
    """A CDA's XDS uniqueId is its own id (`root^extension`), as the French CI-SIS asks: the
    same document sent twice is then recognised whatever its file name."""
    if header is None or header.id is None or not OID.match(header.id.root):
        return None
    if header.id.extension:
        value = f"{header.id.root}^{header.id.extension}"
        return value if UNIQUE_ID.match(value) and len(value) <= 128 else None
    return header.id.root if len(header.id.root) <= 64 else None


def check_header_agrees(ref: PatientRef, header: CdaDocument) -> None:
    """A sidecar naming another patient than the CDA it describes is a filing error waiting
    to happen (a document in the wrong record): refused."""
    disagrees = False
    if ref.domain_oid is not None:
        disagrees = any(
            i.root == ref.domain_oid and i.extension and i.extension != ref.local_id
            for i in header.patient.ids
        )
    elif ref.ins is not None and header.patient.ins is not None:
        disagrees = header.patient.ins != ref.ins
    if disagrees:
        raise Refused(
            "the patient of the metadata file is not the patient of the CDA header",
            french="le patient du fichier de métadonnées n'est pas celui de l'en-tête CDA",
            where="patient",
            code="value",
        )


def with_sidecar(document: NewDocument, sidecar: Sidecar) -> NewDocument:
    def coding(value: SidecarCoding | None) -> Coding | None:
        return Coding(value.system, value.code, value.display) if value else None

    def utc(value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    author = sidecar.author
    document.type = coding(sidecar.type)
    document.class_ = coding(sidecar.class_)
    document.title = sidecar.title
    document.creation_time = utc(sidecar.created)
    document.service_start = utc(sidecar.service_start)
    document.service_end = utc(sidecar.service_end)
    document.authors = (
        [
            AuthorRef(
                practitioner_national_id=author.rpps,
                organization_finess=author.finess,
                label=author.name,
            )
        ]
        if author is not None
        else []
    )
    document.confidentiality = Confidentiality(sidecar.confidentiality).value
    document.visibility = frozenset(sidecar.visibility) & VISIBILITY_CODES
    if sidecar.replaces:
        document.relations = [Relation(RelationKind.replaces, target_unique_id=sidecar.replaces)]
    return document


_FRENCH_BY_CODE = {
    "required": "une information obligatoire manque",
    "not-found": "une référence est introuvable (auteur, structure ou document lié)",
    "duplicate": "un autre document porte déjà cet identifiant unique",
    "too-long": "le document est trop volumineux",
    "forbidden": "dépôt refusé",
}


def french_reason(error: SubmissionError) -> str:
    """The reason in French: the deposit's messages are in English, so their kind is said in
    French and the English detail follows."""
    if error.code == "not-found" and error.where == "subject":
        summary = (
            "patient inconnu : aucune identité de ce patient dans le domaine d'identification "
            "de l'établissement (indiquez l'IPP avec l'OID du domaine, ou un INS qualifié)"
        )
    elif error.code == "required" and "author" in error.where:
        summary = "l'auteur du document manque"
    elif error.code == "required" and error.where.endswith(".type"):
        summary = "le type du document (code LOINC) manque"
    else:
        summary = _FRENCH_BY_CODE.get(error.code, "valeur invalide")
    return f"{summary} (détail en anglais : {error.message})"
