"""Credentials: configured API keys with scopes and topic prefixes, and short-lived
signed connection tokens for browsers (which cannot set headers on a WebSocket)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import msgspec

from loopai.config import ApiKey

TOKEN_PREFIX = "lt1."


class Principal(msgspec.Struct, frozen=True):
    """Who is calling and what they may do. Empty `prefixes` means every topic."""

    name: str
    scopes: frozenset[str]
    prefixes: tuple[str, ...] = ()
    expires_at: int | None = None
    """When the credential stops being valid (epoch seconds): connection tokens only."""

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def may_use(self, topic: str) -> bool:
        return not self.prefixes or any(topic.startswith(p) for p in self.prefixes)


ANONYMOUS = Principal("anonymous", frozenset({"admin"}))
"""Who everyone is while auth is off (the embedded default)."""


class _TokenClaims(msgspec.Struct, frozen=True):
    sub: str
    scopes: list[str]
    prefixes: list[str]
    exp: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """Turns a presented credential into a Principal, or None when it is not valid."""

    def __init__(self, keys: list[ApiKey], secret: str, token_ttl_s: int) -> None:
        self.enabled = bool(keys)
        self._secret = secret.encode()
        self._ttl = token_ttl_s
        self._by_digest = {
            hashlib.sha256(k.key.encode()).digest(): Principal(
                k.name or f"key-{hashlib.sha256(k.key.encode()).hexdigest()[:8]}",
                frozenset(k.scopes),
                tuple(k.prefixes),
            )
            for k in keys
        }

    def authenticate(self, credential: str | None) -> Principal | None:
        if not self.enabled:
            return ANONYMOUS
        if not credential:
            return None
        if credential.startswith(TOKEN_PREFIX):
            return self._verify_token(credential)
        # Dict lookup by digest: timing does not reveal how much of a key matched.
        return self._by_digest.get(hashlib.sha256(credential.encode()).digest())

    def mint(self, principal: Principal, scopes: set[str] | None = None,
             prefixes: list[str] | None = None, ttl_s: int | None = None) -> tuple[str, int]:
        """A token carrying at most the principal's own rights; returns (token, expires_at)."""
        granted = set(principal.scopes) if scopes is None else set(scopes)
        if "admin" not in principal.scopes:
            granted &= set(principal.scopes)
        narrowed = list(prefixes or principal.prefixes)
        if principal.prefixes:
            narrowed = [p for p in narrowed if any(p.startswith(q) for q in principal.prefixes)]
            narrowed = narrowed or list(principal.prefixes)
        exp = int(time.time()) + min(ttl_s or self._ttl, self._ttl)
        claims = _TokenClaims(principal.name, sorted(granted), narrowed, exp)
        body = _b64(msgspec.json.encode(claims))
        sig = _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        return f"{TOKEN_PREFIX}{body}.{sig}", exp

    def _verify_token(self, token: str) -> Principal | None:
        body, _, sig = token[len(TOKEN_PREFIX):].partition(".")
        expected = _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        if not sig or not hmac.compare_digest(sig, expected):
            return None
        try:
            claims = msgspec.json.decode(_unb64(body), type=_TokenClaims)
        except (msgspec.DecodeError, ValueError):
            return None
        if claims.exp < time.time():
            return None
        return Principal(claims.sub, frozenset(claims.scopes), tuple(claims.prefixes),
                         expires_at=claims.exp)
