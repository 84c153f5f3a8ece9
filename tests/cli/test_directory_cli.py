"""`partage directory`: generate an extract, import it twice, refuse a wrong file."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import Cli, cli  # noqa: F401 - the command-line fixture


def test_generate_and_import_an_rpps_extract(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    extract = tmp_path / "PS_LibreAcces_Personne_activite_test.txt"
    generated = cli.run("directory", "generate-rpps", str(extract), "--professionals", "120")
    assert "120 professionals" in generated.stdout
    first = json.loads(cli.run("directory", "import-rpps", str(extract), "--json").stdout)
    assert first["rows"] == first["created"] > 120
    assert first["rejected"] == 0
    second = json.loads(cli.run("directory", "import-rpps", str(extract), "--json").stdout)
    assert second["unchanged"] == first["rows"]
    assert (second["created"], second["updated"], second["closed"]) == (0, 0, 0)
    readable = cli.run("directory", "import-rpps", str(extract))
    assert "RPPS import of" in readable.stdout
    assert "directory.import" in cli.run("audit", "tail", "--limit", "1", "--json").stdout


def test_a_file_of_another_kind_is_refused(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    wrong = tmp_path / "etalab.csv"
    wrong.write_text("nofinesset;nofinessej\n860014208;860014208\n", encoding="latin-1")
    refused = cli.run("directory", "import-rpps", str(wrong), expect=1)
    assert "not the header" in refused.stderr


def test_generate_and_import_a_finess_extract(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    extract = tmp_path / "etalab-cs1100507-stock-test.csv"
    assert (
        "40 establishments"
        in cli.run("directory", "generate-finess", str(extract), "--establishments", "40").stdout
    )
    first = json.loads(cli.run("directory", "import-finess", str(extract), "--json").stdout)
    assert (first["rows"], first["created"], first["rejected"]) == (40, 40, 0)
    second = json.loads(cli.run("directory", "import-finess", str(extract), "--json").stdout)
    assert second["unchanged"] == 40
