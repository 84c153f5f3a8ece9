"""`$ihe-pix` (IHE PIXm ITI-83): a patient's identifiers in the other domains, from one of
its identifiers (an establishment's IPP, the INS of a qualified identity, the territory's
identifier)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from partage.audit.actions import record
from partage.identity.fhir_patient import (
    INS_SYSTEMS,
    PERSON_ID_SYSTEM,
    ins_identifiers,
    load_persons,
    local_identifier,
    territory_identifier,
)
from partage.identity.ins import normalize_ins
from partage.identity.models import LocalIdentity, Person, PersonStatus
from partage.identity.traits import IdentityStatus
from partage.interop.fhir.outcome import FhirError, operation_outcome
from partage.interop.fhir.resources import (
    Operation,
    OperationCall,
    OperationResult,
)
from partage.search import (
    split_token,
)
from partage.security.models import Establishment
from partage.security.service import establishments_by_id

PIX_DEFINITION = "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix"
_PIX_PARAMETERS = frozenset({"sourceIdentifier", "targetSystem", "_format"})
# Persons merged into persons merged since: followed at most this far.
_MAX_HOPS = 8


def survivor_person(session: Session, person: Person | None) -> Person | None:
    for _ in range(_MAX_HOPS):
        if person is None or person.status != PersonStatus.merged or not person.merged_into_id:
            return person
        person = session.get(Person, person.merged_into_id)
    return person


def identity_survivor(session: Session, identity: LocalIdentity) -> LocalIdentity:
    for _ in range(_MAX_HOPS):
        if identity.active or identity.replaced_by_id is None:
            return identity
        replacement = session.get(LocalIdentity, identity.replaced_by_id)
        if replacement is None:
            return identity
        identity = replacement
    return identity


def persons_by_identifier(
    session: Session, system: str, value: str, domains: dict[str, Establishment], base: str
) -> list[Person] | None:
    """The persons a source identifier names ([] when not found); None: unknown domain."""
    if system in (PERSON_ID_SYSTEM, base):
        # PIXm's form for a logical id is `[base]|Patient/<id>`.
        reference = value.removeprefix("Patient/") if system == base else value
        try:
            person = session.get(Person, uuid.UUID(reference))
        except ValueError:
            return []
        return [person] if person is not None else []
    if system in INS_SYSTEMS:
        ins = normalize_ins(value)
        rows = session.scalars(
            select(LocalIdentity).where(
                LocalIdentity.k_ins == ins[:13],
                LocalIdentity.ins == ins,
                LocalIdentity.ins_oid == INS_SYSTEMS[system],
                LocalIdentity.status == IdentityStatus.qualified.value,
                LocalIdentity.active,
            )
        )
        return load_persons(session, sorted({r.person_id for r in rows}))
    establishment = domains.get(system)
    if establishment is None:
        return None
    identity = session.scalars(
        select(LocalIdentity).where(
            LocalIdentity.establishment_id == establishment.id, LocalIdentity.local_id == value
        )
    ).one_or_none()
    if identity is None:
        return []
    return load_persons(session, [identity_survivor(session, identity).person_id])


def _pix_identifiers(session: Session, persons: Sequence[Person]) -> list[dict[str, Any]]:
    """Every current identifier of the persons: the territory's, the INS, each domain's IPP."""
    ids = [p.id for p in persons]
    identities = list(
        session.scalars(
            select(LocalIdentity)
            .where(LocalIdentity.person_id.in_(ids), LocalIdentity.active)
            .order_by(LocalIdentity.created_at, LocalIdentity.id)
        )
    )
    establishments = establishments_by_id(session, (i.establishment_id for i in identities))
    identifiers = [territory_identifier(p.id) for p in persons]
    identifiers += ins_identifiers(identities)
    identifiers += [
        local_identifier(i, establishments[i.establishment_id])
        for i in identities
        if i.establishment_id in establishments
    ]
    return identifiers


def _pix_error(status: int, code: str, diagnostics: str) -> OperationResult:
    return OperationResult(operation_outcome(diagnostics, code=code), status)


def _pix(session: Session, call: OperationCall) -> OperationResult:
    unknown = sorted({name for name, _ in call.parameters} - _PIX_PARAMETERS)
    if unknown:
        raise FhirError(
            400, f"unknown parameters: {', '.join(unknown)} (sourceIdentifier, targetSystem)"
        )
    sources = [v for name, v in call.parameters if name == "sourceIdentifier"]
    if len(sources) != 1:
        raise FhirError(
            400, "give exactly one sourceIdentifier (system|value)", expression="sourceIdentifier"
        )
    system, value = split_token(sources[0])
    if not system or not value:
        raise FhirError(
            400,
            "the sourceIdentifier needs its assigning authority: system|value",
            expression="sourceIdentifier",
        )
    targets = [v.strip() for name, v in call.parameters if name == "targetSystem"]
    domains = {f"urn:oid:{e.patient_id_oid}": e for e in session.scalars(select(Establishment))}
    known = {*domains, PERSON_ID_SYSTEM, *INS_SYSTEMS, call.base}
    if any(t not in known for t in targets):
        return _pix_error(403, "code-invalid", "targetSystem not found")
    found = persons_by_identifier(session, system, value, domains, call.base)
    if found is None:
        return _pix_error(400, "code-invalid", "sourceIdentifier Assigning Authority not found")
    persons: list[Person] = []
    for person in found:
        survivor = survivor_person(session, person)
        if survivor is not None and survivor not in persons:
            persons.append(survivor)
    record(
        session,
        actor=call.principal.actor,
        action="patient.pix",
        outcome="success" if persons else "not_found",
        entity_type="Patient",
        entity_id=str(persons[0].id) if len(persons) == 1 else None,
        person_id=str(persons[0].id) if len(persons) == 1 else None,
        basis=call.decision.basis_code,
        detail={
            "source_system": system,
            "target_systems": targets,
            "persons": [str(p.id) for p in persons],
        },
    )
    if not persons:
        return _pix_error(404, "not-found", "sourceIdentifier Patient Identifier not found")
    parameters = [
        {"name": "targetIdentifier", "valueIdentifier": identifier}
        for identifier in _pix_identifiers(session, persons)
        if (identifier["system"], identifier["value"]) != (system, value)
        and (not targets or identifier["system"] in targets)
    ]
    if not targets or call.base in targets:
        parameters += [
            {"name": "targetId", "valueReference": {"reference": f"Patient/{p.id}"}}
            for p in persons
        ]
    return OperationResult({"resourceType": "Parameters", "parameter": parameters})


PIX_OPERATION = Operation(
    name="ihe-pix",
    definition=PIX_DEFINITION,
    documentation="PIXm [ITI-83]: a patient's identifiers in the other domains "
    "(establishments' IPP, the territory's identifier, the INS when qualified)",
    methods=frozenset({"GET"}),
    run=_pix,
)
