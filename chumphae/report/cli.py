"""`chumphae export daily --date YYYY-MM-DD --format csv|xlsx|json --out PATH` and `export catch-up`."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from chumphae.config import get_settings
from chumphae.errors import ConfigError

app = typer.Typer(help="Reports for the district hospital.", no_args_is_help=True)


@app.command("daily")
def export_daily(
    day: Annotated[str | None, typer.Option("--date", help="Asia/Bangkok day YYYY-MM-DD (default: yesterday).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv | xlsx | json")] = "csv",
    out: Annotated[Path | None, typer.Option(help="File to write (default: daily-DATE.FORMAT in the export dir).")] = None,
    with_cid: Annotated[bool, typer.Option("--with-cid", help="Include the national ID (CID) column (needs --out: "
                                           "the export folder's files carry no CID).")] = False,
) -> None:
    """Write one day's summary, one row per patient."""
    from chumphae.db import init_engine
    from chumphae.report.daily import daily_summary
    from chumphae.report.nightly import file_name
    from chumphae.report.writers import FORMATS, render, write_atomically
    from chumphae.timeutil import BANGKOK, utcnow

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}")
    try:
        when = date.fromisoformat(day) if day else utcnow().astimezone(BANGKOK).date() - timedelta(days=1)
    except ValueError:
        raise ConfigError(f"--date must be YYYY-MM-DD, not {day!r}") from None
    if with_cid and out is None:
        raise ConfigError("--with-cid needs --out PATH: the export folder holds the nightly files, which carry no "
                          "CID (docs/daily-summary.md)")
    settings = get_settings()
    from sqlmodel import Session

    with Session(init_engine(settings.effective_database_url)) as session:
        summary = daily_summary(session, day=when, hospcode=settings.hospcode, with_cid=with_cid)
    path = write_atomically(out or settings.effective_export_dir / file_name(when, fmt), render(summary, fmt))
    typer.echo(f"{len(summary.rows)} patients for {when.isoformat()} → {path}")


@app.command("catch-up")
def export_catch_up() -> None:
    """Write the nightly files that are missing (what the backend does at start and at 00:15)."""
    from chumphae.db import init_engine
    from chumphae.report.nightly import catch_up

    settings = get_settings()
    paths = catch_up(init_engine(settings.effective_database_url), folder=settings.effective_export_dir,
                     hospcode=settings.hospcode)
    typer.echo(f"{len(paths)} files written to {settings.effective_export_dir}")
