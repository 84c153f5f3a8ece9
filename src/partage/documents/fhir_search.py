"""ITI-67 (Find Document References): the search parameters of DocumentReference.

The patient (`patient` or `patient.identifier`) is required and resolved by the route, which
asks the access decision about that person; the conditions here narrow their record.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, true

from partage.directory.models import Practitioner
from partage.documents.models import DocumentEntry, DocumentStatus
from partage.identity.fhir_search import date_range
from partage.search import Criterion, InvalidSearch, Parameter, SearchSpec, any_of, split_token

PATIENT_PARAMETERS = ("patient", "patient.identifier")
# `_sort` values and the order each gives (the id last: a total order for paging).
SORTS: dict[str, tuple[Any, ...]] = {
    "-creation": (DocumentEntry.creation_time.desc(), DocumentEntry.id.desc()),
    "creation": (DocumentEntry.creation_time, DocumentEntry.id),
    "-date": (DocumentEntry.deposited_at.desc(), DocumentEntry.id.desc()),
    "date": (DocumentEntry.deposited_at, DocumentEntry.id),
}
DEFAULT_SORT = "-creation"
_FHIR_STATUSES = {s.value for s in DocumentStatus}


def _handled_by_route(criterion: Criterion) -> ColumnElement[bool]:
    return true()


def _token(column: Any, system_column: Any | None = None) -> Any:
    def build(criterion: Criterion) -> ColumnElement[bool]:
        alternatives = []
        for value in criterion.values:
            system, code = split_token(value)
            condition = column == code
            if system and system_column is not None:
                condition = and_(condition, system_column == system)
            alternatives.append(condition)
        return any_of(alternatives)

    return build


def _status(criterion: Criterion) -> ColumnElement[bool]:
    for value in criterion.values:
        if value not in _FHIR_STATUSES:
            raise InvalidSearch(
                f"'{value}' is not a document status (current, superseded, entered-in-error, "
                "archived)"
            )
    return DocumentEntry.status.in_(criterion.values)


def _instants(value: str) -> tuple[str, datetime, datetime]:
    """A date search value as [start, end) instants, UTC days."""
    # Day precision: a dateTime searches its whole day.
    prefix, first, last = date_range(value.split("T", 1)[0])
    start = datetime.combine(first, time.min, UTC)
    end = datetime.combine(last + timedelta(days=1), time.min, UTC)
    return prefix, start, end


def _on_dates(column: Any) -> Any:
    def build(criterion: Criterion) -> ColumnElement[bool]:
        alternatives = []
        for value in criterion.values:
            prefix, start, end = _instants(value)
            alternatives.append(
                {
                    "eq": and_(column >= start, column < end),
                    "ne": or_(column < start, column >= end),
                    "gt": column >= end,
                    "sa": column >= end,
                    "lt": column < start,
                    "eb": column < start,
                    "ge": column >= start,
                    "le": column < end,
                }[prefix]
            )
        return any_of(alternatives)

    return build


def _period(criterion: Criterion) -> ColumnElement[bool]:
    """The service period overlaps the date given (a period with one end open is open)."""
    alternatives = []
    for value in criterion.values:
        prefix, start, end = _instants(value)
        begins = DocumentEntry.service_start
        ends = DocumentEntry.service_end
        if prefix in ("ge", "gt", "sa"):
            bound = start if prefix == "ge" else end
            alternatives.append(or_(ends >= bound, and_(ends.is_(None), begins >= bound)))
        elif prefix in ("le", "lt", "eb"):
            bound = end if prefix == "le" else start
            alternatives.append(begins < bound)
        elif prefix == "eq":
            alternatives.append(
                and_(begins < end, or_(ends >= start, and_(ends.is_(None), begins >= start)))
            )
        else:
            raise InvalidSearch("period supports the prefixes eq, ge, gt, le, lt")
    return any_of(alternatives)


def _uuid(value: str, resource_type: str) -> uuid.UUID:
    tail = value.rsplit(f"{resource_type}/", 1)[-1]
    try:
        return uuid.UUID(tail)
    except ValueError:
        raise InvalidSearch(f"'{value}' is not a {resource_type} reference") from None


def _author(criterion: Criterion) -> ColumnElement[bool]:
    alternatives = []
    for value in criterion.values:
        if "Organization/" in value:
            alternatives.append(
                DocumentEntry.author_organization_id == _uuid(value, "Organization")
            )
        else:
            alternatives.append(
                DocumentEntry.author_practitioner_id == _uuid(value, "Practitioner")
            )
    return any_of(alternatives)


def _author_identifier(criterion: Criterion) -> ColumnElement[bool]:
    national_ids = [split_token(v)[1] for v in criterion.values]
    practitioners = select(Practitioner.id).where(Practitioner.national_id.in_(national_ids))
    return DocumentEntry.author_practitioner_id.in_(practitioners.scalar_subquery())


def _ids(criterion: Criterion) -> ColumnElement[bool]:
    return DocumentEntry.id.in_([_uuid(v, "DocumentReference") for v in criterion.values])


def _identifier(criterion: Criterion) -> ColumnElement[bool]:
    values = []
    for value in criterion.values:
        _, code = split_token(value)
        values.append(code.removeprefix("urn:oid:"))
    return DocumentEntry.unique_id.in_(values)


def _parameter(name: str, kind: Any, description: str, build: Any) -> tuple[str, Parameter]:
    return name, Parameter(name, kind, description, build)


DOCUMENTS: SearchSpec[DocumentEntry] = SearchSpec(
    model=DocumentEntry,
    parameters=dict(
        [
            _parameter(
                "patient",
                "reference",
                "The patient: Patient/<id> (required, or patient.identifier)",
                _handled_by_route,
            ),
            _parameter(
                "patient.identifier",
                "token",
                "The patient by an identifier: INS or an establishment's IPP (system|value)",
                _handled_by_route,
            ),
            _parameter("_id", "token", "The DocumentReference's id", _ids),
            _parameter("identifier", "token", "The document's uniqueId", _identifier),
            _parameter(
                "status", "token", "current | superseded | entered-in-error | archived", _status
            ),
            _parameter(
                "type",
                "token",
                "The document type (LOINC)",
                _token(DocumentEntry.type_code, DocumentEntry.type_system),
            ),
            _parameter(
                "category",
                "token",
                "The document class",
                _token(DocumentEntry.class_code, DocumentEntry.class_system),
            ),
            _parameter(
                "class",
                "token",
                "The document class (XDS name of category)",
                _token(DocumentEntry.class_code, DocumentEntry.class_system),
            ),
            _parameter(
                "date", "date", "When it was deposited", _on_dates(DocumentEntry.deposited_at)
            ),
            _parameter(
                "creation",
                "date",
                "When the document was written",
                _on_dates(DocumentEntry.creation_time),
            ),
            _parameter("period", "date", "The period of the care it reports", _period),
            _parameter("author", "reference", "Practitioner/<id> or Organization/<id>", _author),
            _parameter(
                "author.identifier", "token", "The author's RPPS number", _author_identifier
            ),
            _parameter(
                "facility", "token", "The facility type", _token(DocumentEntry.facility_type_code)
            ),
            _parameter(
                "setting",
                "token",
                "The practice setting",
                _token(DocumentEntry.practice_setting_code),
            ),
            _parameter("format", "token", "The format code", _token(DocumentEntry.format_code)),
        ]
    ),
    order=SORTS[DEFAULT_SORT],
)
