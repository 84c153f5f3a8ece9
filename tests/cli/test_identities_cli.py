"""`partage identities`: generate files, import them, export the links, refuse bad input."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

from partage.identity.importer import COLUMNS
from partage.identity.synthetic import generate_population
from tests.cli.test_cli import Cli, cli  # noqa: F401 - the command-line fixture

SOURCES = ("CHU-POITIERS", "GHNV")
PERSONS = 150
# A valid INS (NIR and key) and the same with a wrong key.
GOOD_INS = "269054958815780"
BAD_INS = "269054958815781"


def add_establishments(cli: Cli, *codes: str) -> None:  # noqa: F811
    for code in codes:
        cli.json("establishments", "create", "--name", f"Hôpital {code}", "--domain", code)


def links(cli: Cli) -> list[dict[str, str]]:  # noqa: F811
    text = cli.run("identities", "links").stdout
    assert text.splitlines()[0] == "source,local_id,person_id"
    return list(csv.DictReader(io.StringIO(text)))


def row(local_id: str, **values: str) -> list[str]:
    base = {
        "local_id": local_id,
        "birth_family_name": "QUINTARD",
        "used_family_name": "",
        "given_names": "Hortense Marie",
        "sex": "F",
        "birth_date": "1961-03-14",
        "birth_place_code": "86194",
        "address": "12 rue de la Cathédrale",
        "postal_code": "86000",
        "city": "Poitiers",
        "phone": "0549000000",
        "ins": "",
    }
    base.update(values)
    return [base[column] for column in COLUMNS]


def write_csv(path: Path, rows: list[list[str]], header: tuple[str, ...] = COLUMNS) -> Path:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def import_json(cli: Cli, path: Path, source: str) -> dict[str, Any]:  # noqa: F811
    report: dict[str, Any] = cli.json("identities", "import", str(path), "--source", source)
    return report


def test_generate_import_two_sources_and_export_the_links(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    add_establishments(cli, *SOURCES)
    folder = tmp_path / "files"
    generated = cli.run(
        "identities", "generate", str(folder), "--persons", str(PERSONS),
        "--sources", ",".join(SOURCES),
    )  # fmt: skip
    files = {source: folder / f"{source}.csv" for source in SOURCES}
    for path in files.values():
        assert path.name in generated.stdout and path.is_file()

    reports = {source: import_json(cli, files[source], source) for source in SOURCES}
    for source, report in reports.items():
        lines = files[source].read_text(encoding="utf-8").splitlines()
        assert report["rows"] == len(lines) - 1
        assert report["created"] == report["rows"] - len(report["rejected"])
        assert report["rejected"] == []
    # The second file met the first one's patients.
    assert reports["GHNV"]["linked"] > 0

    exported = links(cli)
    created = sum(report["created"] for report in reports.values())
    assert len(exported) == created
    assert len({(r["source"], r["local_id"]) for r in exported}) == created
    person_of = {(r["source"], r["local_id"]): r["person_id"] for r in exported}

    # Against the ground truth of the same generation (same seed): the records of one
    # person in both establishments mostly share a person; different persons almost never.
    truth = generate_population(persons=PERSONS, sources=SOURCES, seed=86)
    assert set(person_of) == {r.record.key for r in truth}
    keys_of: dict[int, dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for item in truth:
        keys_of[item.person][item.record.source].append(item.record.key)
    duplicates = [by_source for by_source in keys_of.values() if len(by_source) == len(SOURCES)]
    assert duplicates
    shared = [
        by_source
        for by_source in duplicates
        if {person_of[k] for k in by_source["CHU-POITIERS"]}
        & {person_of[k] for k in by_source["GHNV"]}
    ]
    assert len(shared) >= 0.8 * len(duplicates)
    owners: dict[str, set[int]] = defaultdict(set)
    for item in truth:
        owners[person_of[item.record.key]].add(item.person)
    wrongly_merged = [person for person, found in owners.items() if len(found) > 1]
    assert len(wrongly_merged) <= 0.02 * len(owners)

    # Importing a file again changes nothing.
    again = import_json(cli, files["GHNV"], "GHNV")
    assert again["unchanged"] == reports["GHNV"]["created"]
    assert (again["created"], again["updated"], again["linked"], again["rejected"]) == (
        0, 0, 0, [],
    )  # fmt: skip
    assert links(cli) == exported


def test_a_file_without_the_columns_is_refused_whole(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    add_establishments(cli, "CHU-POITIERS")
    wrong = write_csv(
        tmp_path / "patients.csv",
        [["P1", "QUINTARD", "Hortense", "F", "1961-03-14"]],
        header=("ipp", "nom", "prenom", "sexe", "date_naissance"),
    )
    refused = cli.run("identities", "import", str(wrong), "--source", "CHU-POITIERS", expect=1)
    assert "patients.csv: missing columns: local_id, birth_family_name" in refused.stderr
    assert refused.stdout == ""
    assert links(cli) == []
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    refused = cli.run("identities", "import", str(empty), "--source", "CHU-POITIERS", expect=1)
    assert "empty.csv: the file is empty" in refused.stderr


def test_bad_rows_are_rejected_with_their_line_and_the_rest_imported(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
) -> None:
    add_establishments(cli, "CHU-POITIERS")
    path = write_csv(
        tmp_path / "chu.csv",
        [
            row("P1"),  # line 2
            row("P2", birth_family_name="MARSAULT", given_names="Léon", sex="X"),  # line 3
            row("P3", birth_family_name="BRUNETEAU", birth_date="1980-13-45"),  # line 4
            row("P1", birth_family_name="PINAUD"),  # line 5: P1 again
            row("P4", birth_family_name="CHAIGNEAU", given_names="Paul", sex="M"),  # line 6
            row("P5", birth_family_name="RIVAULT", birth_date="14/03/1961"),  # line 7
        ],
    )
    readable = cli.run("identities", "import", str(path), "--source", "CHU-POITIERS")
    assert "Identities of chu.csv" in readable.stdout
    assert "rejected line 3: sex 'X' is not M, F or U" in readable.stdout
    assert "rejected line 4: birth date '1980-13-45' is not YYYY-MM-DD" in readable.stdout
    assert "rejected line 5: local id P1 appears twice in the file" in readable.stdout
    assert sorted(r["local_id"] for r in links(cli)) == ["P1", "P4", "P5"]


def test_an_invalid_ins_is_a_warning_and_the_identity_kept(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    add_establishments(cli, "CHU-POITIERS")
    path = write_csv(
        tmp_path / "chu.csv",
        [
            row("P1", ins=BAD_INS),
            row("P2", birth_family_name="MARSAULT", given_names="Léon", sex="M", ins=GOOD_INS),
        ],
    )
    report = import_json(cli, path, "CHU-POITIERS")
    assert (report["rows"], report["created"], report["rejected"]) == (2, 2, [])
    assert [w["line"] for w in report["warnings"]] == [2]
    assert report["warnings"][0]["reason"].startswith("INS ignored:")
    assert sorted(r["local_id"] for r in links(cli)) == ["P1", "P2"]
    readable = cli.run("identities", "import", str(path), "--source", "CHU-POITIERS")
    assert "warning line 2: INS ignored:" in readable.stdout


def test_the_json_summary_and_a_second_import(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    add_establishments(cli, "CHU-POITIERS")
    path = write_csv(
        tmp_path / "chu.csv",
        [
            row("P1"),
            row("P2", birth_family_name="MARSAULT", given_names="Léon", sex="M"),
            row("P3", sex="?"),
        ],
    )
    first = import_json(cli, path, "CHU-POITIERS")
    assert set(first) == {
        "rows", "created", "updated", "unchanged", "linked", "reviews", "rejected", "warnings",
    }  # fmt: skip
    assert first == {
        "rows": 3,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "linked": 0,
        "reviews": 0,
        "rejected": [{"line": 4, "reason": "sex '?' is not M, F or U"}],
        "warnings": [],
    }
    second = import_json(cli, path, "CHU-POITIERS")
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 2)
    assert second["rejected"] == first["rejected"]
    # An identity whose traits changed is updated, the others stay as they are.
    write_csv(
        path,
        [
            row("P1", phone="0549111111"),
            row("P2", birth_family_name="MARSAULT", given_names="Léon", sex="M"),
        ],
    )
    third = import_json(cli, path, "CHU-POITIERS")
    assert (third["rows"], third["created"], third["updated"], third["unchanged"]) == (2, 0, 1, 1)
    assert "identity.imported" in cli.run("audit", "tail", "--limit", "1", "--json").stdout


def test_an_unknown_source_is_refused(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    add_establishments(cli, "CHU-POITIERS")
    path = write_csv(tmp_path / "chu.csv", [row("P1")])
    refused = cli.run("identities", "import", str(path), "--source", "NOWHERE", expect=1)
    assert "no establishment 'NOWHERE'" in refused.stderr
    assert "partage establishments list" in refused.stderr
    assert links(cli) == []
    # Its OID names an establishment as well as its code.
    oid = cli.json("establishments", "list")[0]["patient_id_oid"]
    assert import_json(cli, path, oid)["created"] == 1
    missing = cli.run("identities", "import", str(tmp_path / "nope.csv"), "--source", "X", expect=2)
    assert "nope.csv" in " ".join(missing.stderr.replace("│", " ").split()).replace(" ", "")
