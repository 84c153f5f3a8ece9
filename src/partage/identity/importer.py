"""Bulk federation: an establishment's whole patient file at once.

`partage identities import FILE.csv --source DOMAIN`. The file's new identities are matched
in memory — against the territory's known identities and each other, one by one with the
same rules as the incremental path — after re-estimating the model on everything (EM), then
written with bulk statements in one transaction: all of the file, or nothing. Identities
already known under the same local id are updated through the incremental path.
"""

from __future__ import annotations

import csv
import gc
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any, cast, overload

from sqlalchemy import Table, select, text
from sqlalchemy.orm import Session

from partage.audit.actions import Actor, record
from partage.bulk import Bulk
from partage.db import utcnow
from partage.identity.blocking import KEY_COLUMNS
from partage.identity.decide import Verdict
from partage.identity.engine import ESTIMATION_RECORDS, MemoryIndex, estimate_model
from partage.identity.features import Features
from partage.identity.import_writes import CHUNK_ROWS, Chunk, Writer, identity_row, large_cache
from partage.identity.ins import InvalidIns, ins_oid, validate_ins
from partage.identity.known_scoring import KnownScoring, Placement
from partage.identity.model import TermFrequencies
from partage.identity.models import (
    Link,
    LinkMethod,
    LocalIdentity,
    NameFrequency,
    Person,
    Review,
)
from partage.identity.service import (
    MODEL_CACHE,
    IdentityError,
    IdentityInput,
    author_of,
    checked_input,
    do_receive_identity,
    explanation,
)
from partage.identity.store import (
    TRAIT_COLUMNS,
    count_names,
    features_from_columns,
    save_model,
)
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
    workers: int | None = None,
) -> IdentityImport:
    """Federate the file's rows. `workers`: processes scoring the new records against the
    known territory (`known_scoring`); by default as many as the CPUs and the memory allow,
    for large files."""
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
        with _collector_paused():
            _federate_new(session, establishment, new, actor, report, now, progress, workers)
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
    if report.created or report.updated:
        _refresh_statistics(session)
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


def _refresh_statistics(session: Session) -> None:
    """The query planner's statistics of the identity tables, after a bulk change.

    Without them SQLite takes any equality for selective: with tens of thousands of open
    reviews, superseding the reviews within a person (every automatic link of the
    incremental path) then scans all the open ones (about 10 ms at a million identities)
    instead of looking up the person's few. A full pass takes about a second at that size.
    """
    quote = session.get_bind().dialect.identifier_preparer.quote
    for table in (_PERSONS, _IDENTITIES, _LINKS, _REVIEWS, cast(Table, NameFrequency.__table__)):
        session.execute(text(f"ANALYZE {quote(table.name)}"))


# --- federating the new identities ---------------------------------------------------------
#
# The territory's known identities are read as plain rows (no ORM objects): their stored
# blocking keys go straight into the memory index, and their matching form (`Features`) is
# computed only for those that a new identity meets as a candidate, or that the model's
# estimation sample draws — a small part of a large territory. The names' frequencies come
# from the table the incremental path keeps (`identity_name_frequencies`, the active
# identities' names), not from every known identity.

_KNOWN_COLUMNS = ("id", "person_id", *KEY_COLUMNS, *TRAIT_COLUMNS)
_FIRST_KEY, _FIRST_TRAIT = 2, 2 + len(KEY_COLUMNS)
_FETCH = 20_000


class _Known:
    """The active identities already in the territory, as the driver returns them."""

    def __init__(self) -> None:
        self.ids: list[Any] = []  # driver form: hex text on SQLite, uuid.UUID on PostgreSQL
        self.persons: list[Any] = []
        self.traits: list[tuple[Any, ...]] = []  # TRAIT_COLUMNS


def _known_identities(session: Session, index: MemoryIndex, number: Callable[[Any], int]) -> _Known:
    """Read the active identities in table order, filling `index` from their stored keys
    (those the SQL candidates of the incremental path use)."""
    known = _Known()
    quote = session.get_bind().dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in _KNOWN_COLUMNS)
    sql = f"SELECT {names} FROM {quote(_IDENTITIES.name)} WHERE active"  # noqa: S608
    driver: Any = session.connection().connection.dbapi_connection
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        # From the table's first page, in its order: a scan joining another one in progress
        # ("synchronized" scans of large tables) starts anywhere, and the identities' order
        # decides the model's estimation sample, hence the matching.
        setting = driver.cursor()
        setting.execute("SET LOCAL synchronize_seqscans = off")
        setting.close()
    # PostgreSQL: a server-side cursor, so that a million rows are not all sent at once.
    cursor = driver.cursor(name="partage_known_identities") if postgresql else driver.cursor()
    columns = [index.columns[name] for name in KEY_COLUMNS]
    person_of, members = index.person_of, index.members
    ids, persons, traits = known.ids, known.persons, known.traits
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(_FETCH):
            for row in rows:
                i = len(ids)
                ids.append(row[0])
                persons.append(row[1])
                traits.append(row[_FIRST_TRAIT:])
                for column, value in zip(columns, row[_FIRST_KEY:_FIRST_TRAIT], strict=True):
                    if value is not None:
                        block = column.get(value)
                        if block is None:
                            column[value] = [i]
                        else:
                            block.append(i)
                person = number(row[1])
                person_of.append(person)
                group = members.get(person)
                if group is None:
                    members[person] = [i]
                else:
                    group.append(i)
    finally:
        cursor.close()
    return known


class _Features(Sequence[Features]):
    """Known identities then new ones; a known one's features are computed when first read."""

    def __init__(self, known: list[tuple[Any, ...]], new: list[Features]) -> None:
        self._known = known
        self._items: list[Features | None] = [None] * len(known)
        self._items.extend(new)

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, i: int) -> Features: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Features]: ...

    def __getitem__(self, i: int | slice) -> Features | Sequence[Features]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        f = self._items[i]
        if f is None:
            f = self._items[i] = features_from_columns(self._known[i])
            self._known[i] = ()  # the row is not needed any more
        return f


def _estimation_sample(features: Sequence[Features]) -> Sequence[Features]:
    """The records `estimate_model` samples (the same draw: `random.Random(0).sample` of the
    positions), so that only these known identities need their features computed."""
    if len(features) <= ESTIMATION_RECORDS:
        return features
    chosen = random.Random(0).sample(range(len(features)), ESTIMATION_RECORDS)  # noqa: S311
    return [features[i] for i in chosen]


def _name_frequencies(session: Session, known: int) -> TermFrequencies:
    """The known identities' names, from the table kept with every change (see `count_names`)."""
    frequencies = TermFrequencies(total=known)
    rows = session.execute(
        select(NameFrequency.kind, NameFrequency.value, NameFrequency.count).where(
            NameFrequency.kind.in_(("family", "given")), NameFrequency.count > 0
        )
    )
    for kind, value, count in rows:
        (frequencies.family if kind == "family" else frequencies.given)[value] = count
    return frequencies


def _federate_new(
    session: Session,
    establishment: Establishment,
    new: list[tuple[int, str, IdentityInput]],
    actor: Actor,
    report: IdentityImport,
    now: datetime,
    progress: Progress | None,
    workers: int | None,
) -> None:
    index = MemoryIndex()
    person_number: dict[Any, int] = {}
    numbers: list[Any] = []  # person ids, driver form, by number

    def number(person: Any) -> int:
        found = person_number.get(person)
        if found is None:
            found = person_number[person] = len(numbers)
            numbers.append(person)
        return found

    if progress is not None:
        progress("reading the territory", 0, 1)
    known = _known_identities(session, index, number)
    count = len(known.ids)
    bulk = Bulk(session)
    features = _Features(
        known.traits, [Features(value.traits, value.status) for _, _, value in new]
    )
    identity_ids: list[Any] = [*known.ids, *(bulk.new_id() for _ in new)]
    origins = [bulk.new_id() for _ in new]  # each new identity's own person
    if progress is not None:
        progress("estimating the model", 0, 1)
    model = estimate_model(_estimation_sample(features), MODEL_CACHE.get(session)[0])
    save_model(session, model, identities=len(features), now=now)
    MODEL_CACHE.invalidate()
    frequencies = _name_frequencies(session, count)
    for n in range(len(new)):
        frequencies.add(features[count + n])
    author = author_of(actor)
    origin_link, probabilistic = LinkMethod.origin.value, LinkMethod.probabilistic.value
    certain = LinkMethod.qualified_ins.value
    total = len(new)
    reviewed: set[tuple[Any, ...]] = set()
    chunk = Chunk()
    placement = Placement(index, features, model, frequencies, known_persons=len(numbers))
    scoring = KnownScoring(
        index=index,
        features=features,
        first=count,
        count=total,
        model=model,
        frequencies=frequencies,
        workers=workers,
    )
    with (
        scoring,
        large_cache(session),
        Writer(session, bulk, author, now) as writer,
    ):
        for n, ((_, local_id, value), known_found) in enumerate(zip(new, scoring, strict=True)):
            i = count + n
            f = features[i]
            outcome = placement.place(i, known_found)
            origin = origins[n]
            person = origin
            if outcome.verdict is Verdict.link and outcome.person is not None:
                assert outcome.judgement is not None
                person = numbers[outcome.person]
                method = certain if outcome.judgement.certain else probabilistic
                chunk.persons.append((origin, "merged", person))
                chunk.links.append(
                    (bulk.new_id(), identity_ids[i], origin, origin_link, None, None, method)
                )
                chunk.links.append(
                    (
                        bulk.new_id(),
                        identity_ids[i],
                        person,
                        method,
                        outcome.judgement.weight,
                        explanation(outcome.judgement, model),
                        None,
                    )
                )
                report.linked += 1
            else:
                chunk.persons.append((origin, "active", None))
                chunk.links.append(
                    (bulk.new_id(), identity_ids[i], origin, origin_link, None, None, None)
                )
            placement.add(i, number(person))
            for item in outcome.reviews:
                pair = tuple(sorted((identity_ids[i], identity_ids[item.record])))
                if pair not in reviewed:  # the first proposal of a pair is kept
                    reviewed.add(pair)
                    why = explanation(item.judgement, model)
                    chunk.reviews.append((bulk.new_id(), *pair, item.judgement.weight, why))
                report.reviews += 1
            chunk.identities.append(
                identity_row(establishment, local_id, value, f, identity_ids[i], person, origin)
            )
            report.created += 1
            if len(chunk.identities) >= CHUNK_ROWS:
                writer.put(chunk)
                chunk = Chunk()
            if progress is not None and (n + 1) % 2000 == 0:
                progress("matching", n + 1, total)
        writer.put(chunk)
        if progress is not None:
            progress("writing", 0, 1)
    count_names(session, [features[count + n] for n in range(len(new))])


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while millions of long-lived objects are being built:
    each full collection would walk them all again (about a tenth of a large import's time);
    nothing here makes cycles worth collecting before the end."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
