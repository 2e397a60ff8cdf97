"""API tokens: random, shown once, stored only as a SHA-256 hash.

Tokens carry 256 bits of randomness, so a fast hash is enough (no password
stretching needed) and lets us look a token up by its hash directly.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIXES = {"user": "chu_", "gateway": "chg_"}


def new_token(kind: str = "user") -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_prefix(token: str) -> str:
    """The first characters, enough for an admin to tell tokens apart, useless to an attacker."""
    return token[:10]


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
