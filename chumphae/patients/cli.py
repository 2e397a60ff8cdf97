"""`chumphae patients import-43 FOLDER`: patients from the hospital's 43-file export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chumphae.config import get_settings
from chumphae.errors import ConfigError

app = typer.Typer(help="Patients.", no_args_is_help=True)


@app.command("import-43")
def import_43(
    folder: Annotated[Path, typer.Argument(help="Folder with PERSON, HOME and FUNCTIONAL files (| or , separated).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only; change nothing.")] = False,
) -> None:
    """Create or update patients; prints rows taken, updated and refused (never CIDs or names)."""
    from chumphae.db import init_engine
    from chumphae.patients.import43 import import_folder
    from sqlmodel import Session

    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder")
    with Session(init_engine(get_settings().effective_database_url)) as session:
        report = import_folder(session, folder)
        if "PERSON" not in report.files:
            raise ConfigError(f"no PERSON file in {folder} (looked for PERSON.txt, person.csv, PERSON_*.txt …)")
        if dry_run:
            session.rollback()
        else:
            session.commit()
    for line in report.lines():
        typer.echo(line)
    if dry_run:
        typer.echo("dry run: nothing was changed")
