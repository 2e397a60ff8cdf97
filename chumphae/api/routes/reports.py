"""The daily summary for the district hospital over HTTP (the same rows as `chumphae export daily`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from chumphae import audit
from chumphae.api.deps import SessionDep, require_roles
from chumphae.api.schemas import Day
from chumphae.models import Role, User
from chumphae.report.daily import daily_summary
from chumphae.report.nightly import file_name
from chumphae.report.writers import MEDIA_TYPES, render

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Reader = Annotated[User, Depends(require_roles(Role.HOSPITAL, Role.CARE_MANAGER, Role.ADMIN))]


@router.get("/daily", responses={200: {"content": {
    "text/csv": {"example": "date,hospcode,pid,cid,hn,patient_id,...\r\n2025-01-15,10707,000123,...\r\n"},
    MEDIA_TYPES["xlsx"]: {}, "application/json": {}}}})
def daily(
    request: Request, session: SessionDep, user: Reader,
    day: Annotated[Day, Query(alias="date", description="Asia/Bangkok calendar day, YYYY-MM-DD.")],
    format: Annotated[Literal["csv", "xlsx", "json"], Query(description="csv (UTF-8 with BOM), xlsx or json")] = "csv",
) -> Response:
    """One row per patient for the day (docs/daily-summary.md); CID only for the hospital role."""
    with_cid = Role(user.role) == Role.HOSPITAL
    summary = daily_summary(session, day=day, hospcode=request.app.state.settings.hospcode, with_cid=with_cid)
    audit.record(session, user=user, action="export", entity="daily_summary", entity_id=day.isoformat(),
                 route=f"{request.method} {request.url.path}",
                 detail={"rows": len(summary.rows), "format": format, "cid": with_cid})
    return Response(render(summary, format), media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="{file_name(day, format)}"'})
