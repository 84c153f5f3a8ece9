"""The master patient index as FHIR R4: the Patient resource type, as the FHIR API serves it.

A Patient is a territorial person (`fhir_patient`: the FR Core resource and its identifiers);
its search is IHE PDQm ITI-78 (`fhir_search`); its operations are `$match`, PDQm ITI-119
(`fhir_match`), and `$ihe-pix`, PIXm ITI-83 (`fhir_pix`).
"""

from __future__ import annotations

from partage.access.decision import Action
from partage.identity.fhir_match import MATCH_OPERATION
from partage.identity.fhir_patient import PATIENT_PROFILE, patient_resources, read_person
from partage.identity.fhir_pix import PIX_OPERATION
from partage.identity.fhir_search import PATIENTS
from partage.interop.fhir.resources import Audit, ResourceType

RESOURCE_TYPES = (
    ResourceType(
        name="Patient",
        profile=PATIENT_PROFILE,
        spec=PATIENTS,
        read=read_person,
        render=patient_resources,
        action=Action.identity_read,
        audit=Audit(action="patient", person_of=lambda person: str(person.id)),
        operations=(MATCH_OPERATION, PIX_OPERATION),
    ),
)
