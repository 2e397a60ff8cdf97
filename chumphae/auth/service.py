"""Creating users and gateways with tokens, and finding them again by token."""

from __future__ import annotations

from sqlmodel import Session, col, select

from chumphae.auth.tokens import hash_token, new_token, token_prefix
from chumphae.models import CareAssignment, Gateway, Role, User
from chumphae.timeutil import utcnow


def create_user(session: Session, *, name: str, role: Role | str, lang: str = "th") -> tuple[User, str]:
    """A new user and their token; the token is returned once and never stored."""
    role = Role(role)
    token = new_token("user")
    user = User(name=name, role=role, token_hash=hash_token(token), token_prefix=token_prefix(token), lang=lang)
    session.add(user)
    session.flush()
    return user, token


def rotate_user_token(session: Session, *, user: User) -> str:
    """A new token for the user; the old one stops working at once (open feed sockets close with 4001)."""
    token = new_token("user")
    user.token_hash, user.token_prefix = hash_token(token), token_prefix(token)
    session.add(user)
    session.flush()
    return token


def revoke_user(session: Session, *, user: User) -> None:
    """The user's token stops working at once; their open feed sockets close within seconds (4001)."""
    user.active = False
    session.add(user)
    session.flush()


def restore_user(session: Session, *, user: User) -> str:
    """A revoked user back, with a new token (the old one stays dead)."""
    user.active = True
    return rotate_user_token(session, user=user)


def find_user(session: Session, ref: str) -> User | None:
    """A user by id."""
    return session.get(User, int(ref)) if ref.isdigit() and len(ref) < 19 else None


def revoke_gateway(session: Session, *, gateway: Gateway) -> None:
    """The gateway's token stops working; its open socket is closed with 4001 within seconds."""
    gateway.active = False
    session.add(gateway)
    session.flush()


class ReceiverClash(ValueError):
    """Rotating a revoked gateway would put its receivers back into the site config beside another active
    gateway's receivers of the same ids (its replacement's, registered while it was revoked)."""

    def __init__(self, gateway: Gateway, clashes: dict[str, list[str]]) -> None:
        self.clashes = clashes  # the holding active gateway's slug → the receiver ids it shares
        held = "; ".join(f"{', '.join(ids)} held by gateway {slug}" for slug, ids in clashes.items())
        super().__init__(f"gateway {gateway.slug} not rotated: its receiver ids are now active gateways' of site "
                         f"{gateway.site} ({held}); remove them from one of the two (`chumphae gateways "
                         f"receivers … --remove ID`) first")


def refuse_receiver_clash(session: Session, *, gateway: Gateway) -> None:
    """ReceiverClash if any of the gateway's receiver ids is an active gateway's of its site (its replacement's:
    a revoked gateway's ids are free, `gateways create`); nothing is changed."""
    own = {str(r.get("id")) for r in gateway.receivers or []}
    clashes: dict[str, list[str]] = {}
    for other in session.exec(select(Gateway).where(Gateway.site == gateway.site, Gateway.active == True,  # noqa: E712
                                                    Gateway.id != gateway.id).order_by(col(Gateway.id))).all():
        ids = [str(r.get("id")) for r in other.receivers or [] if str(r.get("id")) in own]
        if ids:
            clashes[other.slug] = ids
    if clashes:
        raise ReceiverClash(gateway, clashes)


def rotate_gateway_token(session: Session, *, gateway: Gateway) -> str:
    """A new token for the gateway (the old one stops working; its socket closes with 4001); a revoked one is
    restored, unless its receiver ids are now another active gateway's (ReceiverClash, nothing changed)."""
    refuse_receiver_clash(session, gateway=gateway)
    token = new_token("gateway")
    gateway.token_hash, gateway.token_prefix = hash_token(token), token_prefix(token)
    gateway.active = True
    session.add(gateway)
    session.flush()
    return token


def find_gateway(session: Session, ref: str) -> Gateway | None:
    """A gateway by id or slug."""
    if ref.isdigit() and len(ref) < 19:
        found = session.get(Gateway, int(ref))
        if found is not None:
            return found
    return session.exec(select(Gateway).where(Gateway.slug == ref)).first()


def user_by_token(session: Session, token: str) -> User | None:
    user = session.exec(select(User).where(User.token_hash == hash_token(token))).first()
    if user is None or not user.active:
        return None
    return user


def touch_user(session: Session, *, user: User) -> None:
    user.last_seen_at = utcnow()
    session.add(user)


def create_gateway(
    session: Session, *, slug: str, name: str, site: str = "chumphae",
    lat: float | None = None, lon: float | None = None,
    receivers: list[dict[str, object]] | None = None,
) -> tuple[Gateway, str]:
    token = new_token("gateway")
    gateway = Gateway(
        slug=slug, name=name, site=site, lat=lat, lon=lon, receivers=receivers or [],
        token_hash=hash_token(token), token_prefix=token_prefix(token),
    )
    session.add(gateway)
    session.flush()
    return gateway, token


def gateway_by_token(session: Session, token: str) -> Gateway | None:
    gateway = session.exec(select(Gateway).where(Gateway.token_hash == hash_token(token))).first()
    if gateway is None or not gateway.active:
        return None
    return gateway


def assign(session: Session, *, user_id: int, patient_id: int, relation: str = "caregiver") -> None:
    if session.get(CareAssignment, (user_id, patient_id)) is None:
        session.add(CareAssignment(user_id=user_id, patient_id=patient_id, relation=relation))
        session.flush()
