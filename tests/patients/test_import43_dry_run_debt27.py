"""debt27: `import-43 --dry-run` on an empty map stored the whole shipped map (~6 s: 18,000 features) only to roll
it back. It now names the villages from the map's file without storing it: the same names as the import gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from chumphae.cli import app as cli
from chumphae.map.store import DEFAULT_DATASET, map_info, remove_dataset
from chumphae.models import Patient
from tests.patients.test_import43 import database_url, write_export


def test_a_dry_run_on_an_empty_map_names_villages_as_the_import_without_storing_the_map(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", database_url(engine))
    folder = write_export(tmp_path / "43")
    done = CliRunner().invoke(cli, ["patients", "import-43", str(folder)])
    assert done.exit_code == 0, done.output
    assert "the shipped tax map loaded first" in done.output
    with Session(engine) as s:  # the patients keep the map's name for their village; the map is taken away
        assert s.exec(select(Patient).where(Patient.pid == "000101")).one().village == "Chumphae town"
        assert remove_dataset(s, DEFAULT_DATASET) > 0
        s.commit()
        assert not map_info(s)

    stored: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "map_feature" in statement.lower() and statement.lstrip().lower().startswith("insert"):
            stored.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        dry = CliRunner().invoke(cli, ["patients", "import-43", str(folder), "--dry-run"])
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert dry.exit_code == 0, dry.output
    # The same village names as the import gave (else patient 000101 would be "updated" to หมู่ที่ 1 ต.ชุมแพ) ...
    assert "patients taken (new): 0; updated: 0; unchanged: 2" in dry.output, dry.output
    # ... without writing the map only to roll it back
    assert stored == [], f"{len(stored)} INSERTs into map_feature"
    assert "villages named from the shipped tax map's file, not loaded (dry run" in dry.output
    assert "no tax map loaded" not in dry.output and "dry run: nothing was changed" in dry.output
    with Session(engine) as s:
        assert not map_info(s)
