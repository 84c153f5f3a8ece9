"""Bulk federation: an establishment's whole patient file at once.

`partage identities import FILE.csv --source DOMAIN`. The file's new identities are matched
in memory — against the territory's known identities and each other, one by one with the
same rules as the incremental path — after re-estimating the model on everything (EM), then
written with bulk statements in one transaction: all of the file, or nothing. Identities
already known under the same local id are updated through the incremental path.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from partage.audit.actions import Actor, record
from partage.bulk import Bulk
from partage.db import utcnow
from partage.identity.blocking import KEY_COLUMNS, stored_keys
from partage.identity.decide import Verdict
from partage.identity.engine import MemoryIndex, estimate_model, place
from partage.identity.features import Features
from partage.identity.ins import InvalidIns, ins_oid, validate_ins
from partage.identity.model import TermFrequencies
from partage.identity.models import Link, LinkMethod, LocalIdentity, Person, Review
from partage.identity.service import (
    MODEL_CACHE,
    IdentityError,
    IdentityInput,
    author_of,
    checked_input,
    do_receive_identity,
    explanation,
)
from partage.identity.store import count_names, features_of, save_model, trait_columns
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex
from partage.security.models import Establishment

COLUMNS = (
    "local_id",
    "birth_family_name",
    "used_family_name",
    "given_names",
    "sex",
    "birth_date",
    "birth_place_code",
    "address",
    "postal_code",
    "city",
    "phone",
    "ins",
)
_PERSONS = cast(Table, Person.__table__)
_IDENTITIES = cast(Table, LocalIdentity.__table__)
_LINKS = cast(Table, Link.__table__)
_REVIEWS = cast(Table, Review.__table__)
_SEXES = {"M": Sex.male, "F": Sex.female, "U": Sex.unknown, "": Sex.unknown, "I": Sex.unknown}
Progress = Callable[[str, int, int], None]


class UnreadableFile(ValueError):
    """The file cannot be imported at all (wrong header, not UTF-8 text)."""


@dataclass
class IdentityImport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    linked: int = 0
    reviews: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)


def parse_date(text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    for parse in (date.fromisoformat, _french_date):
        try:
            return parse(text)
        except ValueError:
            continue
    raise IdentityError(f"birth date {text!r} is not YYYY-MM-DD")


def _french_date(text: str) -> date:
    day, month, year = text.split("/")
    return date(int(year), int(month), int(day))


def parse_rows(
    stream: IO[bytes], report: IdentityImport
) -> Iterator[tuple[int, str, IdentityInput]]:
    """The file's rows as inputs; rejected rows go to the report with line and reason."""
    reader = csv.reader(_decoded_lines(stream, report))
    try:
        header = [h.strip().lower().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        raise UnreadableFile("the file is empty") from None
    if header == ["\x00"] or not any(header):
        raise UnreadableFile("the first line is not a CSV header")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UnreadableFile(f"missing columns: {', '.join(missing)}")
    position = {name: header.index(name) for name in header}
    seen: set[str] = set()
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            line = reader.line_num
            report.rejected.append((line, f"unreadable line: {error}"))
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        report.rows += 1
        if len(row) != len(header):
            report.rejected.append((line, f"{len(row)} fields, the header has {len(header)}"))
            continue
        values = {name: row[index].strip() for name, index in position.items()}
        local_id = values["local_id"]
        if local_id in seen:
            report.rejected.append((line, f"local id {local_id} appears twice in the file"))
            continue
        try:
            value = _input(values, line, report)
        except IdentityError as error:
            report.rejected.append((line, str(error)))
            continue
        seen.add(local_id)
        yield line, local_id, value


def _decoded_lines(stream: IO[bytes], report: IdentityImport) -> Iterator[str]:
    """UTF-8 lines; a line that is not UTF-8 is reported and skipped, not fatal."""
    for number, raw in enumerate(stream, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            if number == 1:
                raise UnreadableFile(f"the file is not UTF-8 text: {error.reason}") from None
            report.rejected.append((number, f"not UTF-8 text: {error.reason}"))
            yield "\n"


def _input(values: dict[str, str], line: int, report: IdentityImport) -> IdentityInput:
    if not values["local_id"] or len(values["local_id"]) > 64:
        raise IdentityError("the local id must have 1 to 64 characters")
    sex = _SEXES.get(values["sex"].upper())
    if sex is None:
        raise IdentityError(f"sex {values['sex']!r} is not M, F or U")
    ins = values["ins"]
    if ins:
        try:
            ins = validate_ins(ins)
        except InvalidIns as error:
            # The identity is kept: a mistyped INS is dropped, not the patient.
            report.warnings.append((line, f"INS ignored: {error}"))
            ins = ""
    status_text = values.get("status", "").upper()
    if status_text:
        try:
            status = IdentityStatus(status_text)
        except ValueError:
            raise IdentityError(
                f"status {status_text!r} is not PROV, RECUP, VALI or QUAL"
            ) from None
    else:
        # An INS in an establishment's file came from the national teleservice.
        status = IdentityStatus.recovered if ins else IdentityStatus.provisional
    if status in (IdentityStatus.qualified, IdentityStatus.recovered) and not ins:
        status = IdentityStatus.provisional
    traits = IdentityTraits(
        birth_family_name=values["birth_family_name"],
        given_names=tuple(values["given_names"].split()),
        sex=sex,
        birth_date=parse_date(values["birth_date"]),
        used_family_name=values["used_family_name"],
        birth_place_code=values["birth_place_code"][:5],
        address=values["address"][:200],
        postal_code=values["postal_code"][:10],
        city=values["city"][:100],
        phone=values["phone"][:32],
        ins=ins,
    )
    return checked_input(
        IdentityInput(traits=traits, status=status, ins_oid=ins_oid(ins) if ins else "")
    )


def import_identities(
    session: Session,
    *,
    establishment: Establishment,
    stream: IO[bytes],
    actor: Actor,
    progress: Progress | None = None,
) -> IdentityImport:
    report = IdentityImport()
    rows = list(parse_rows(stream, report))
    known = {
        local_id
        for (local_id,) in session.execute(
            select(LocalIdentity.local_id).where(LocalIdentity.establishment_id == establishment.id)
        )
    }
    new = [(line, local_id, value) for line, local_id, value in rows if local_id not in known]
    updates = [(line, local_id, value) for line, local_id, value in rows if local_id in known]
    now = utcnow()
    if new:
        _federate_new(session, establishment, new, actor, report, now, progress)
    for done, (line, local_id, value) in enumerate(updates, start=1):
        try:
            with session.begin_nested():
                received = do_receive_identity(
                    session,
                    establishment=establishment,
                    local_id=local_id,
                    value=value,
                    actor=actor,
                    now=now,
                )
        except IdentityError as error:
            report.rejected.append((line, str(error)))
            continue
        if received.changed:
            report.updated += 1
            report.reviews += received.reviews
        else:
            report.unchanged += 1
        if progress is not None and done % 500 == 0:
            progress("updating", done, len(updates))
    record(
        session,
        actor=actor,
        action="identity.imported",
        entity_type="establishment",
        entity_id=str(establishment.id),
        detail={
            "establishment": establishment.code,
            "rows": report.rows,
            "created": report.created,
            "updated": report.updated,
            "linked": report.linked,
            "reviews": report.reviews,
            "rejected": len(report.rejected),
        },
    )
    return report


def _known_identities(session: Session) -> Iterable[tuple[LocalIdentity, Features]]:
    rows = session.scalars(
        select(LocalIdentity).where(LocalIdentity.active).execution_options(yield_per=20_000)
    )
    for row in rows:
        yield row, features_of(row)
        session.expunge(row)


def _federate_new(
    session: Session,
    establishment: Establishment,
    new: list[tuple[int, str, IdentityInput]],
    actor: Actor,
    report: IdentityImport,
    now: datetime,
    progress: Progress | None,
) -> None:
    features: list[Features] = []
    person_ids: list[uuid.UUID] = []
    identity_ids: list[uuid.UUID] = []
    for row, f in _known_identities(session):
        features.append(f)
        person_ids.append(row.person_id)
        identity_ids.append(row.id)
    known = len(features)
    bulk = Bulk(session)
    for _, _, value in new:
        features.append(Features(value.traits, value.status))
        identity_ids.append(_uuid(bulk.new_id()))
        person_ids.append(_uuid(bulk.new_id()))
    if progress is not None:
        progress("estimating the model", 0, 1)
    model = estimate_model(features, MODEL_CACHE.get(session)[0])
    save_model(session, model, identities=len(features), now=now)
    MODEL_CACHE.invalidate()
    frequencies = TermFrequencies()
    for f in features:
        frequencies.add(f)
    index = MemoryIndex()
    person_number: dict[uuid.UUID, int] = {}
    numbers: list[uuid.UUID] = []

    def number(person: uuid.UUID) -> int:
        if person not in person_number:
            person_number[person] = len(numbers)
            numbers.append(person)
        return person_number[person]

    for i in range(known):
        index.add(i, features[i], number(person_ids[i]))
    author = author_of(actor)
    persons_rows: list[tuple[Any, ...]] = []
    identity_rows: list[tuple[Any, ...]] = []
    link_rows: list[tuple[Any, ...]] = []
    review_rows: list[dict[str, Any]] = []
    total = len(new)
    for n, (_, local_id, value) in enumerate(new):
        i = known + n
        f = features[i]
        outcome = place(f, index, features, model, frequencies)
        origin = person_ids[i]
        person = origin
        if outcome.verdict is Verdict.link and outcome.person is not None:
            assert outcome.judgement is not None
            person = numbers[outcome.person]
            method = (
                LinkMethod.qualified_ins if outcome.judgement.certain else LinkMethod.probabilistic
            )
            persons_rows.append((origin, "merged", person))
            link_rows.append(
                (
                    identity_ids[i],
                    origin,
                    LinkMethod.origin.value,
                    None,
                    None,
                    now,
                    now,
                    method.value,
                )
            )
            link_rows.append(
                (
                    identity_ids[i],
                    person,
                    method.value,
                    outcome.judgement.weight,
                    explanation(outcome.judgement, model),
                    now,
                    None,
                    None,
                )
            )
            report.linked += 1
        else:
            persons_rows.append((origin, "active", None))
            link_rows.append(
                (identity_ids[i], origin, LinkMethod.origin.value, None, None, now, None, None)
            )
        index.add(i, f, number(person))
        for item in outcome.reviews:
            first, second = sorted((identity_ids[i], identity_ids[item.record]))
            review_rows.append(
                {
                    "first_id": first,
                    "second_id": second,
                    "score": item.judgement.weight,
                    "explanation": explanation(item.judgement, model),
                    "created_at": now,
                }
            )
        identity_rows.append(
            _identity_row(establishment, local_id, value, f, identity_ids[i], person, origin, now)
        )
        report.created += 1
        if progress is not None and (n + 1) % 2000 == 0:
            progress("matching", n + 1, total)
    if progress is not None:
        progress("writing", 0, 1)
    _write(session, bulk, persons_rows, identity_rows, link_rows, author, now)
    if review_rows:
        session.execute(insert(_REVIEWS), _unique_reviews(review_rows))
    report.reviews += len(review_rows)
    count_names(session, features[known:])


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(hex=value)


def _unique_reviews(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[uuid.UUID, uuid.UUID], dict[str, Any]] = {}
    for row in rows:
        seen.setdefault((row["first_id"], row["second_id"]), row)
    return list(seen.values())


_IDENTITY_COLUMNS = (
    "id", "establishment_id", "local_id", "person_id", "origin_person_id",
    "birth_family_name", "given_names", "sex", "birth_date", "birth_place_code",
    "used_family_name", "address", "postal_code", "city", "phone", "ins", "family_folded",
    "used_folded", "given_folded", "ins_oid", "status",
    "doubtful", "fictitious", "homonym", "usurped", "active", "version", "created_at",
    "updated_at", *KEY_COLUMNS,
)  # fmt: skip


def _identity_row(
    establishment: Establishment,
    local_id: str,
    value: IdentityInput,
    f: Features,
    identity_id: uuid.UUID,
    person: uuid.UUID,
    origin: uuid.UUID,
    now: datetime,
) -> tuple[Any, ...]:
    traits = trait_columns(value.traits)
    return (
        identity_id, establishment.id, local_id, person, origin,
        traits["birth_family_name"], traits["given_names"], traits["sex"], traits["birth_date"],
        traits["birth_place_code"], traits["used_family_name"], traits["address"],
        traits["postal_code"], traits["city"], traits["phone"], traits["ins"],
        traits["family_folded"], traits["used_folded"], traits["given_folded"], value.ins_oid,
        value.status.value,
        *(name in value.attributes for name in ("doubtful", "fictitious", "homonym", "usurped")),
        True, 1, now, now, *stored_keys(f),
    )  # fmt: skip


def _write(
    session: Session,
    bulk: Bulk,
    persons_rows: list[tuple[Any, ...]],
    identity_rows: list[tuple[Any, ...]],
    link_rows: list[tuple[Any, ...]],
    author: str,
    now: datetime,
) -> None:

    def converted(
        table: Any, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        return [
            tuple(
                bulk.value(table, column, value) for column, value in zip(columns, row, strict=True)
            )
            for row in rows
        ]

    # Persons first (surviving ones before those merged into them: foreign keys).
    person_columns = ("id", "status", "merged_into_id", "created_at", "updated_at")
    ordered = sorted(persons_rows, key=lambda row: row[1] != "active")
    bulk.insert(
        _PERSONS,
        person_columns,
        converted(_PERSONS, person_columns, [(*r, now, now) for r in ordered]),
    )
    bulk.insert(
        _IDENTITIES, _IDENTITY_COLUMNS, converted(_IDENTITIES, _IDENTITY_COLUMNS, identity_rows)
    )
    link_columns = (
        "id", "local_identity_id", "person_id", "method", "score", "explanation", "started_at",
        "ended_at", "ended_reason", "author",
    )  # fmt: skip
    bulk.insert(
        _LINKS,
        link_columns,
        converted(
            _LINKS, link_columns, [(_uuid(bulk.new_id()), *row, author) for row in link_rows]
        ),
    )
