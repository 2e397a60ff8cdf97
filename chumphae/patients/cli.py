"""`chumphae patients import-43 EXPORT` (the hospital's 43-file export, zip or folder) and `chumphae patients erase ID` (PDPA)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chumphae.config import get_settings
from chumphae.errors import ConfigError

app = typer.Typer(help="Patients.", no_args_is_help=True)


@app.command("erase")
def erase(patient_id: Annotated[int, typer.Argument(help="The patient's id.", min=1, max=2**63 - 1)]) -> None:
    """Erase a patient's personal data and positions (PDPA); anonymous counts for the reports stay."""
    from chumphae.db import init_engine, session_scope
    from chumphae.models import Patient
    from chumphae.patients.erase import erase_patient

    with session_scope(init_engine(get_settings().effective_database_url)) as session:
        patient = session.get(Patient, patient_id)
        if patient is None:
            raise ConfigError(f"no patient with id {patient_id}")
        done = erase_patient(session, patient=patient, user=None, route="CLI patients erase")
    typer.echo(f"patient {done.patient_id} erased: {done.positions} positions, {done.feed_frames} feed frames, "
               f"{done.zones} safe zones deleted; {done.alerts} alerts and {done.visits} visits kept without "
               f"personal data; {done.bands} bands retired; {done.assignments} care assignments removed")


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
            report = import_export(session, export, dry_run=dry_run)
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
