"""Bearer tokens: signed JWTs checked for signature, issuer, audience and expiry.

SLRT signs its own tokens (HS256, `slrt users token`) for stand-alone installs, and
accepts tokens from an existing identity provider whose public keys are configured
(RS256/ES256). Keys are chosen by the token's `kid`, so a key can be rotated: sign
with the new one while the old one stays in `jwt_verification_keys` until its tokens
expire.

Claims: `sub` (user id), `slrt_role`, `slrt_region`, and `slrt_agency` for agency users.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import jwt

from slrt.config import Settings
from slrt.domain.common import Actor, DomainError, Role
from slrt.domain.user import validate_assignment


class Unauthenticated(DomainError):
    title = "Unauthenticated"


_PUBLIC_KEY_ALGORITHMS = ["RS256", "ES256"]


def _keys(settings: Settings) -> dict[str, str]:
    keys = dict(settings.jwt_verification_keys)
    if settings.jwt_signing_key:
        keys[settings.jwt_signing_kid] = settings.jwt_signing_key
    return keys


def issue_token(settings: Settings, actor: Actor, *, now: datetime) -> str:
    if not settings.jwt_signing_key:
        msg = "SLRT_JWT_SIGNING_KEY is not set; SLRT cannot issue tokens"
        raise RuntimeError(msg)
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": actor.user_id,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=settings.token_ttl_minutes),
        "slrt_role": actor.role.value,
        "slrt_region": actor.region,
    }
    if actor.agency:
        claims["slrt_agency"] = actor.agency
    return jwt.encode(
        claims,
        settings.jwt_signing_key,
        algorithm="HS256",
        headers={"kid": settings.jwt_signing_kid},
    )


class TokenVerifier:
    """Checks bearer tokens and remembers the ones it has accepted until they expire, so
    a client sending the same token on every request pays for the signature check and
    the claims once (that was ~5 % of a command's CPU time under load). A token is only
    ever compared as the exact string that was verified; the settings (keys, issuer,
    audience) are fixed for the life of the process."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.max_entries = max_entries
        self._clock = clock
        self._accepted: dict[str, tuple[Actor, float]] = {}

    def actor(self, token: str) -> Actor:
        """The caller named by a valid token; any fault is an Unauthenticated error."""
        accepted = self._accepted.get(token)
        if accepted is not None:
            actor, until = accepted
            if self._clock() < until:
                return actor
            self._accepted.pop(token, None)
        actor, expires = _verify(self.settings, token, now=self._clock())
        if len(self._accepted) >= self.max_entries:
            self._accepted.clear()
        self._accepted[token] = (actor, expires + self.settings.token_leeway_seconds)
        return actor


def actor_from_token(settings: Settings, token: str) -> Actor:
    """The caller named by a valid token; any fault is an Unauthenticated error."""
    return _verify(settings, token, now=time.time())[0]


def _verify(settings: Settings, token: str, *, now: float) -> tuple[Actor, float]:
    """The token's actor and expiry (seconds since the epoch), or Unauthenticated."""
    keys = _keys(settings)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("the bearer token is not a JWT") from None
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise Unauthenticated("the bearer token was signed with an unknown key (kid)")
    algorithms = _PUBLIC_KEY_ALGORITHMS if key.lstrip().startswith("-----BEGIN") else ["HS256"]
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.token_leeway_seconds,
            options={"require": ["exp", "iss", "aud", "sub"], "verify_exp": False},
        )
        # Expiry is checked here, against the caller's clock, as TokenVerifier does.
        expires = claims["exp"]
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            raise jwt.InvalidTokenError("exp must be a number of seconds")
        if now >= expires + settings.token_leeway_seconds:
            raise jwt.ExpiredSignatureError
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the bearer token has expired") from None
    except jwt.PyJWTError as error:
        raise Unauthenticated(f"the bearer token is not valid: {error}") from None
    try:
        role, region, agency = validate_assignment(
            claims.get("slrt_role"), claims.get("slrt_region"), claims.get("slrt_agency")
        )
    except DomainError as error:
        raise Unauthenticated(f"the bearer token's claims are not usable: {error.detail}") from None
    actor = Actor(user_id=str(claims["sub"]), role=Role(role), region=region, agency=agency)
    return actor, float(expires)
