"""`chumphae channels …`: a user's contact points and preferences, LINE link codes, test messages, the worker."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from chumphae.config import get_settings
from chumphae.errors import ConfigError

app = typer.Typer(help="Alert delivery: LINE, SMS, webhooks (docs/delivery.md).", no_args_is_help=True)

PHONE = re.compile(r"^\+?[0-9]{9,15}$")
LINE_ID = re.compile(r"^U[0-9a-f]{32}$")
USER_HELP = "User id, or their exact name."


def _engine() -> Engine:
    from chumphae.db import init_engine

    return init_engine(get_settings().effective_database_url)


def _user_id(session, who: str) -> int:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from chumphae.models import User

    user = session.get(User, int(who)) if who.isdigit() else None
    if user is None:
        found = session.exec(select(User).where(User.name == who)).all()
        if len(found) > 1:
            raise ConfigError(f"{len(found)} users are named {who!r}: give the user id")
        user = found[0] if found else None
    if user is None:
        raise ConfigError(f"no user {who!r}")
    return int(user.id)


@app.command("set")
def set_contacts(
    user: Annotated[str, typer.Argument(help=USER_HELP)],
    line: Annotated[str | None, typer.Option(help="LINE user id (U + 32 hex); usually linked by `link-code`.")] = None,
    sms: Annotated[str | None, typer.Option(help="Phone number for SMS, e.g. 0812345678 or +66812345678.")] = None,
    webhook: Annotated[str | None, typer.Option(help="http(s):// URL for a system user's webhook (https outside a test bench).")] = None,
    remove: Annotated[list[str] | None, typer.Option(help="Channel to stop using (line, sms, webhook).")] = None,
    severity: Annotated[list[str] | None, typer.Option(
        help="SEVERITY=CHANNEL,... e.g. critical=line,sms or low=feed (repeat; 'default' to forget).")] = None,
    quiet: Annotated[str | None, typer.Option(help="Quiet hours HH:MM-HH:MM Asia/Bangkok ('off' to clear).")] = None,
) -> None:
    """Set a user's contact points, channels per severity and quiet hours; prints what is set (addresses masked)."""
    from sqlmodel import Session, select

    from chumphae.deliver.linehook import set_contact
    from chumphae.deliver.plan import CHANNELS, DEFAULTS, parse_hhmm
    from chumphae.models import ContactPoint, DeliveryPreference
    from chumphae.timeutil import utcnow

    if line is not None and not LINE_ID.match(line):
        raise ConfigError("--line must be a LINE user id: U followed by 32 hex digits")
    if sms is not None and not PHONE.match(sms.replace("-", "").replace(" ", "")):
        raise ConfigError("--sms must be a phone number (9–15 digits, + allowed)")
    if webhook is not None and not webhook.startswith(("https://", "http://")):
        raise ConfigError("--webhook must be an http(s) URL")
    unknown = [c for c in remove or [] if c not in ("line", "sms", "webhook")]
    if unknown:
        raise ConfigError(f"--remove: unknown channel {unknown[0]!r} (line, sms, webhook)")
    with Session(_engine()) as session:
        uid = _user_id(session, user)
        for channel, address in (("line", line), ("sms", sms and sms.replace("-", "").replace(" ", "")),
                                 ("webhook", webhook)):
            if address:
                set_contact(session, user_id=uid, channel=channel, address=address)
        for channel in remove or []:
            for cp in session.exec(select(ContactPoint).where(ContactPoint.user_id == uid,
                                                              ContactPoint.channel == channel)):
                session.delete(cp)
        if severity or quiet:
            pref = session.get(DeliveryPreference, uid) or DeliveryPreference(user_id=uid)
            channels = dict(pref.channels or {})
            for item in severity or []:
                sev, _, names = item.partition("=")
                if sev not in DEFAULTS:
                    raise ConfigError(f"--severity: {sev!r} is not one of {', '.join(DEFAULTS)}")
                wanted = [c.strip() for c in names.split(",") if c.strip()]
                if wanted == ["default"]:
                    channels.pop(sev, None)
                    continue
                bad = [c for c in wanted if c not in CHANNELS]
                if bad:
                    raise ConfigError(f"--severity: unknown channel {bad[0]!r} (line, sms, webhook, feed)")
                channels[sev] = wanted
            pref.channels = channels
            if quiet == "off":
                pref.quiet_start = pref.quiet_end = None
            elif quiet:
                start, _, end = quiet.partition("-")
                try:
                    parse_hhmm(start), parse_hhmm(end)
                except ValueError as exc:
                    raise ConfigError(f"--quiet: {exc}") from None
                pref.quiet_start, pref.quiet_end = start, end
            pref.updated_at = utcnow()
            session.add(pref)
        session.commit()
        _show(session, uid)


def _mask(address: str) -> str:
    return address if len(address) <= 6 else f"{address[:3]}…{address[-3:]}"


def _show(session, uid: int) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from chumphae.deliver.plan import DEFAULTS, wanted
    from chumphae.models import ContactPoint, DeliveryPreference

    reachable = set()
    for cp in session.exec(select(ContactPoint).where(ContactPoint.user_id == uid).order_by(ContactPoint.channel)):
        typer.echo(f"{cp.channel}: {_mask(cp.address)}{'' if cp.active else ' (inactive: unfollowed)'}")
        if cp.active:
            reachable.add(cp.channel)
    pref = session.get(DeliveryPreference, uid)
    for sev in DEFAULTS:
        chosen = wanted(sev, pref.channels if pref else None)
        # the live feed goes whatever is chosen (deliver/plan.py): say so rather than let a list without it mislead;
        # and a channel without a contact point is not used (plan.channels_for): say that too
        unreachable = [c for c in chosen if c != "feed" and c not in reachable]
        typer.echo(f"{sev}: {','.join(chosen)}{'' if 'feed' in chosen else ' (+ feed: always)'}"
                   f"{'' if pref and sev in (pref.channels or {}) else ' (default)'}"
                   f"{'; not sent, no contact point: ' + ','.join(unreachable) if unreachable else ''}")
    if pref and pref.quiet_start:
        typer.echo(f"quiet: {pref.quiet_start}-{pref.quiet_end} (critical alerts still go out)")


@app.command("show")
def show(user: Annotated[str, typer.Argument(help=USER_HELP)]) -> None:
    """A user's contact points (masked), channels per severity and quiet hours."""
    from sqlmodel import Session

    with Session(_engine()) as session:
        _show(session, _user_id(session, user))


@app.command("link-code")
def link_code(user: Annotated[str, typer.Argument(help=USER_HELP)]) -> None:
    """A one-time code (24 h) the user sends to our LINE account to link it; printed once, stored hashed."""
    from sqlmodel import Session

    from chumphae.deliver.linehook import new_link_code

    with Session(_engine()) as session:
        code = new_link_code(session, user_id=_user_id(session, user))
        session.commit()
    typer.echo(code)
    typer.echo("เพิ่มเพื่อนบัญชี LINE ของเรา แล้วส่งรหัสนี้เป็นข้อความ (ใช้ได้ 24 ชั่วโมง)\n"
               "Add our LINE account, then send this code to it as a message (valid 24 hours).")


@app.command("test")
def test_user(user: Annotated[str, typer.Argument(help=USER_HELP)],
              wait: Annotated[float, typer.Option(help="Seconds to keep retrying before reporting.")] = 30.0) -> None:
    """Send a test message on each of the user's channels and print each outcome; exit 1 if any failed."""
    from sqlmodel import Session, col, select

    from chumphae.deliver.outbox import queue_test_messages
    from chumphae.models import NoticeStatus, OutboxNotice

    settings = get_settings()
    engine = _engine()
    with Session(engine) as session:
        rows = queue_test_messages(session, user_id=_user_id(session, user))
        session.commit()
        ids = [r.id for r in rows]
    if not ids:
        typer.echo("ผู้ใช้นี้ยังไม่มีช่องทางติดต่อ / this user has no contact point: "
                   "set one with `chumphae channels set` or `link-code`")
        raise typer.Exit(1)
    asyncio.run(_drain(engine, settings, ids, wait))
    failed = False
    with Session(engine) as session:
        for row in session.exec(select(OutboxNotice).where(col(OutboxNotice.id).in_(ids))
                                .order_by(OutboxNotice.channel)):
            ok = row.status == NoticeStatus.SENT
            failed |= not ok
            extra = f" id={row.provider_message_id}" if ok and row.provider_message_id else \
                (f" ({row.last_error})" if row.last_error else "")
            typer.echo(f"{row.channel}: {row.status} after {row.attempts} attempt(s){extra}")
    if failed:
        raise typer.Exit(1)


async def _drain(engine, settings, ids: list[int | None], wait: float) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import Session, col, select

    from chumphae.deliver.run import running_worker
    from chumphae.deliver.worker import WorkerOptions
    from chumphae.models import OutboxNotice
    from chumphae.models.delivery import DONE

    opts = WorkerOptions.from_settings(settings)
    opts = WorkerOptions(poll_s=0.2, give_up_s=wait, backoff_s=opts.backoff_s, backoff_max_s=min(opts.backoff_max_s, 5),
                         lease_s=opts.lease_s)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait + settings.delivery_timeout_s + 5
    async with running_worker(engine, settings, opts):
        while loop.time() < deadline:
            with Session(engine) as session:
                statuses = session.exec(select(OutboxNotice.status).where(col(OutboxNotice.id).in_(ids))).all()
            if all(s in DONE for s in statuses):
                return
            await asyncio.sleep(0.2)


@app.command("worker")
def worker() -> None:
    """Run only the delivery worker (the backend runs one too; any number may run, each notice goes once)."""
    from chumphae import logs
    from chumphae.deliver.run import running_worker

    settings = get_settings()
    logs.setup(settings.log_level)
    engine = _engine()

    async def forever() -> None:
        async with running_worker(engine, settings):
            await asyncio.Event().wait()

    try:
        asyncio.run(forever())
    except KeyboardInterrupt:
        pass
