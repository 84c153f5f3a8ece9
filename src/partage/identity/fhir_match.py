"""`$match` (IHE PDQm ITI-119): the persons resembling a Patient, graded (certain,
probable, possible) and scored by the territory's matching model."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from partage.audit.actions import record
from partage.identity.decide import PairJudgement, Verdict, judge, person_standing
from partage.identity.features import Features
from partage.identity.fhir_patient import (
    BIRTH_PLACE_URL,
    IDENTITY_RELIABILITY_URL,
    INS_SYSTEMS,
    INSEE_CODE_URL,
    SEXES,
    load_persons,
    patient_resources,
)
from partage.identity.ins import InvalidIns, validate_ins
from partage.identity.model import MatchModel
from partage.identity.service import MODEL_CACHE
from partage.identity.store import candidates, features_of, frequencies_for
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex
from partage.interop.fhir.outcome import FhirError
from partage.interop.fhir.resources import (
    Operation,
    OperationCall,
    OperationResult,
)

MATCH_GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"
MATCH_DEFINITION = "https://profiles.ihe.net/ITI/PDQm/OperationDefinition/PDQmMatch"
DEFAULT_MATCHES = 10
MAX_MATCHES = 200
# "possible": a best pair this many bits below the review threshold (16 times less likely).
POSSIBLE_MARGIN = 4.0
_GRADE_ORDER = {"certain": 3, "probable": 2, "possible": 1}


@dataclass(frozen=True)
class MatchInput:
    patient: dict[str, Any]
    only_certain: bool = False
    count: int = DEFAULT_MATCHES


@dataclass(frozen=True)
class Graded:
    person_id: uuid.UUID
    grade: str
    score: float


def _invalid(message: str, expression: str = "") -> FhirError:
    return FhirError(400, message, expression=expression)


def match_input(body: Any) -> MatchInput:
    """The Parameters of `$match` (or, as PDQm allows, a bare Patient)."""
    if not isinstance(body, dict):
        raise _invalid("the body must be a Parameters resource holding a Patient")
    if body.get("resourceType") == "Patient":
        return MatchInput(body)
    if body.get("resourceType") != "Parameters":
        raise _invalid("the body must be a Parameters resource holding a Patient")
    parameters = body.get("parameter")
    if not isinstance(parameters, list):
        raise _invalid("the Parameters resource has no parameter", "Parameters.parameter")
    patient: dict[str, Any] | None = None
    only_certain, count = False, DEFAULT_MATCHES
    for parameter in parameters:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name == "resource" and patient is None:
            resource = parameter.get("resource")
            if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
                raise _invalid("the parameter 'resource' must be a Patient", "resource")
            patient = resource
        elif name == "onlyCertainMatches":
            value = parameter.get("valueBoolean")
            if not isinstance(value, bool):
                raise _invalid("onlyCertainMatches takes a valueBoolean", name)
            only_certain = value
        elif name == "count":
            value = parameter.get("valueInteger")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _invalid("count takes a positive valueInteger", name)
            count = min(value, MAX_MATCHES)
        else:
            raise _invalid(f"unexpected parameter {name!r} (resource, onlyCertainMatches, count)")
    if patient is None:
        raise _invalid("the parameter 'resource' (the Patient to match) is missing", "resource")
    return MatchInput(patient, only_certain, count)


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(f"{where} must be a string", where)
    return value.strip()


def _items(value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _invalid(f"{where} must be a list of objects", where)
    return value


def _name_parts(names: list[dict[str, Any]]) -> tuple[str, tuple[str, ...], str]:
    """Birth family name, given names and used name, from FR Core's official/usual names."""
    by_use: dict[str, dict[str, Any]] = {}
    for name in names:
        by_use.setdefault(_text(name.get("use"), "Patient.name.use") or "", name)
    official = by_use.get("official") or by_use.get("") or by_use.get("maiden")
    usual = by_use.get("usual")
    main = official or usual or (names[0] if names else None)
    if main is None:
        return "", (), ""
    family = _text(main.get("family"), "Patient.name.family")
    given_values = main.get("given") or (usual or {}).get("given") or []
    if not isinstance(given_values, list):
        raise _invalid("Patient.name.given must be a list", "Patient.name.given")
    given = tuple(g for g in (_text(v, "Patient.name.given") for v in given_values) if g)
    used = _text(usual.get("family"), "Patient.name.family") if usual and usual is not main else ""
    return family, given, used


def _extension(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next(
        (e for e in _items(element.get("extension"), "extension") if e.get("url") == url), None
    )


def _birth_place_code(patient: dict[str, Any]) -> str:
    extension = _extension(patient, BIRTH_PLACE_URL)
    if extension is None:
        return ""
    address = extension.get("valueAddress")
    if not isinstance(address, dict):
        raise _invalid("the birth place extension takes a valueAddress", "Patient.extension")
    insee = _extension(address, INSEE_CODE_URL)
    coding = insee.get("valueCoding") if insee else None
    code = _text(coding.get("code"), "inseeCode") if isinstance(coding, dict) else ""
    code = code or _text(address.get("district"), "birthPlace.district")
    return code.upper() if len(code) == 5 else ""


def _reliability(patient: dict[str, Any]) -> IdentityStatus | None:
    """FR Core identity reliability: its `identityStatus` (PROV, RECUP, VALI, QUAL)."""
    extension = _extension(patient, IDENTITY_RELIABILITY_URL)
    if extension is None:
        return None
    for part in _items(extension.get("extension"), "identityReliability.extension"):
        coding = part.get("valueCoding")
        if part.get("url") in ("identityStatus", "identityReliability") and isinstance(
            coding, dict
        ):
            try:
                return IdentityStatus(str(coding.get("code")))
            except ValueError:
                return None
    return None


def match_features(patient: dict[str, Any]) -> Features:
    """The traits of the Patient to match, in the matcher's form."""
    family, given, used = _name_parts(_items(patient.get("name"), "Patient.name"))
    gender = _text(patient.get("gender"), "Patient.gender")
    if gender and gender not in (*SEXES, "other"):
        raise _invalid(f"'{gender}' is not a gender", "Patient.gender")
    birth_text = _text(patient.get("birthDate"), "Patient.birthDate")
    birth_date: date | None = None
    if birth_text:
        try:
            birth_date = date.fromisoformat(birth_text) if len(birth_text) == 10 else None
        except ValueError:
            raise _invalid(f"'{birth_text}' is not a date", "Patient.birthDate") from None
    addresses = _items(patient.get("address"), "Patient.address")
    home = next((a for a in addresses if a.get("use") == "home"), addresses[0] if addresses else {})
    lines = home.get("line") or []
    if not isinstance(lines, list):
        raise _invalid("Patient.address.line must be a list", "Patient.address.line")
    phones = [
        t for t in _items(patient.get("telecom"), "Patient.telecom") if t.get("system") == "phone"
    ]
    ins, ins_trait = "", ""
    for identifier in _items(patient.get("identifier"), "Patient.identifier"):
        if _text(identifier.get("system"), "Patient.identifier.system") in INS_SYSTEMS:
            try:
                ins = validate_ins(_text(identifier.get("value"), "Patient.identifier.value"))
            except InvalidIns as error:
                raise _invalid(f"invalid INS: {error}", "Patient.identifier") from None
            ins_trait = ins
    if not family and not ins:
        raise _invalid(
            "the Patient to match needs a family name or an INS identifier", "Patient.name"
        )
    traits = IdentityTraits(
        birth_family_name=family,
        given_names=given,
        sex=SEXES.get(gender, Sex.unknown),
        birth_date=birth_date,
        used_family_name=used,
        birth_place_code=_birth_place_code(patient),
        address=" ".join(_text(line, "Patient.address.line") for line in lines),
        postal_code=_text(home.get("postalCode"), "Patient.address.postalCode"),
        city=_text(home.get("city"), "Patient.address.city"),
        phone=_text(phones[0].get("value"), "Patient.telecom.value") if phones else "",
        ins=ins_trait,
    )
    # FR Core conveys an INS only for a qualified identity; its reliability extension, when
    # given, says so explicitly.
    status = _reliability(patient) or (
        IdentityStatus.qualified if ins else IdentityStatus.provisional
    )
    return Features(traits, status)


def grade(judgements: Sequence[PairJudgement], model: MatchModel) -> tuple[str, float] | None:
    """A person's match grade and score from its identities' pairs with the input; None
    for "certainly not" (a rule excludes it) and for too weak a resemblance.

    Certain: what would link (`decide.person_standing`); probable: what would go to review;
    possible: the best pair just below the lower threshold (POSSIBLE_MARGIN).
    """
    standing = person_standing(judgements, model)
    if standing is None:
        return None
    best = max(j.weight for j in judgements)
    if standing is Verdict.link:
        label = "certain"
    elif standing is Verdict.review:
        label = "probable"
    elif best >= model.lower - POSSIBLE_MARGIN:
        label = "possible"
    else:
        return None
    return label, round(model.probability(best), 6)


def find_matches(session: Session, features: Features) -> list[Graded]:
    """The persons resembling `features`, best first (grade, then score)."""
    model, total = MODEL_CACHE.get(session)
    frequencies = frequencies_for(session, features, total)
    judgements: dict[uuid.UUID, list[PairJudgement]] = defaultdict(list)
    for identity in candidates(session, features):
        judgements[identity.person_id].append(
            judge(features, features_of(identity), model, frequencies)
        )
    found = []
    for person_id, pairs in judgements.items():
        graded = grade(pairs, model)
        if graded is not None:
            found.append(Graded(person_id, *graded))
    found.sort(key=lambda g: (_GRADE_ORDER[g.grade], g.score, str(g.person_id)), reverse=True)
    return found


def _match(session: Session, call: OperationCall) -> OperationResult:
    wanted = match_input(call.body)
    matches = find_matches(session, match_features(wanted.patient))
    if wanted.only_certain:
        certain = [m for m in matches if m.grade == "certain"]
        # Two certain persons cannot both be the patient: PDQm answers none (its case 5).
        matches = certain if len(certain) == 1 else []
    matches = matches[: wanted.count]
    persons = load_persons(session, [m.person_id for m in matches])
    by_id = {m.person_id: m for m in matches}
    entries = []
    for person, resource in zip(persons, patient_resources(session, persons), strict=True):
        graded = by_id[person.id]
        entries.append(
            {
                "fullUrl": f"{call.base}/Patient/{person.id}",
                "resource": resource,
                "search": {
                    "extension": [{"url": MATCH_GRADE_URL, "valueCode": graded.grade}],
                    "mode": "match",
                    "score": graded.score,
                },
            }
        )
    record(
        session,
        actor=call.principal.actor,
        action="patient.match",
        entity_type="Patient",
        person_id=str(matches[0].person_id) if len(matches) == 1 else None,
        basis=call.decision.basis_code,
        detail={
            "persons": [str(m.person_id) for m in matches],
            "grades": [m.grade for m in matches],
            "only_certain": wanted.only_certain,
        },
    )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": datetime.now(UTC).isoformat()},
        "type": "searchset",
        "total": len(entries),
        "link": [{"relation": "self", "url": f"{call.base}/Patient/$match"}],
    }
    if entries:
        bundle["entry"] = entries
    return OperationResult(bundle)


MATCH_OPERATION = Operation(
    name="match",
    definition=MATCH_DEFINITION,
    documentation="PDQm [ITI-119]: the persons resembling a Patient, graded "
    "(match-grade) and scored by the territory's matching model",
    methods=frozenset({"POST"}),
    run=_match,
)
