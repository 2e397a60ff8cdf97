"""`GET /api/v1/alerts/{alert_id}/deliveries`: who was told about an alert, on which channel, delivered or not.

Same visibility as the alert itself (403 and an audited denial otherwise);
contact addresses (LINE ids, phone numbers, URLs) are never shown.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from chumphae import audit
from chumphae.alert import service
from chumphae.alert.render import deliveries_summary
from chumphae.api.deps import CurrentUser, SessionDep, deny
from chumphae.api.http import problems
from chumphae.api.problems import Problem
from chumphae.api.schemas import AlertId
from chumphae.deliver.outbox import deliveries
from chumphae.errors import Forbidden, NotFound

router = APIRouter(prefix="/api/v1/alerts", tags=["delivery"])


class DeliveryOut(BaseModel):
    id: int
    user_id: int
    user_name: str | None
    level: int
    event: str
    channel: str
    status: str
    delivered: bool
    attempts: int
    last_error: str | None
    created_at: str | None
    created_at_local: str | None
    done_at: str | None
    done_at_local: str | None
    next_try_at: str | None


class DeliverySummary(BaseModel):
    total: int
    delivered: int
    pending: int
    failed: int
    cancelled: int
    by_channel: dict[str, dict[str, int]]


class DeliveriesOut(BaseModel):
    alert_id: int
    summary: DeliverySummary
    deliveries: list[DeliveryOut]


@router.get("/{alert_id}/deliveries", response_model=DeliveriesOut, responses=problems(403))
def alert_deliveries(alert_id: AlertId, request: Request, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Every notice of the alert, oldest first, with a summary by channel."""
    try:
        row = service.alert_for_user(session, user=user, alert_id=alert_id)
    except NotFound:
        raise Problem(404, "not_found") from None
    except Forbidden:
        deny(session, user, request, entity="alert", entity_id=alert_id)
        raise Problem(403, "patient_forbidden") from None
    audit.record(session, user=user, action="read", entity="alert_deliveries", entity_id=alert_id,
                 patient_id=row.patient_id, route=f"{request.method} {request.url.path}")
    items = deliveries(session, alert_id)
    session.commit()
    return {"alert_id": alert_id, "summary": deliveries_summary(items), "deliveries": items}
