"""Standards at the platform's edge: FHIR R4 routes (HL7v2 and DICOM to come)."""
