"""`chumphae patients import-43 EXPORT`: patients from the hospital's 43-file export (zip or folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chumphae.config import get_settings
from chumphae.errors import ConfigError

app = typer.Typer(help="Patients.", no_args_is_help=True)


@app.command("import-43")
def import_43(
    export: Annotated[Path, typer.Argument(
        metavar="EXPORT", help="The hospital's F43_<HOSPCODE>_<timestamp>.zip, or a folder with PERSON, HOME, "
                               "FUNCTIONAL and DISABILITY files (| or , separated).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only; change nothing.")] = False,
) -> None:
    """Create or update patients; prints rows taken, updated and refused (never CIDs or names).
    A bad zip, a missing file or column: one clear error and nothing imported."""
    from sqlmodel import Session

    from chumphae.db import init_engine
    from chumphae.patients.import43 import ImportRefused, import_export

    with Session(init_engine(get_settings().effective_database_url)) as session:
        try:
            report = import_export(session, export)
        except ImportRefused as e:
            session.rollback()
            raise ConfigError(str(e)) from None
        if dry_run:
            session.rollback()
        else:
            session.commit()
    for line in report.lines():
        typer.echo(line)
    if dry_run:
        typer.echo("dry run: nothing was changed")
