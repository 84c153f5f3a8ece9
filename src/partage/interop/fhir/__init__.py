"""FHIR R4 over HTTP: search and read of the resources the domains expose."""
