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
    """Who is calling and what they may do. Empty `prefixes` means every topic.

    `via_token`: authenticated by a connection token rather than an API key (tokens may
    not mint tokens, so a short-lived token cannot renew itself forever)."""

    name: str
    scopes: frozenset[str]
    prefixes: tuple[str, ...] = ()
    expires_at: int | None = None
    """When the credential stops being valid (epoch seconds): connection tokens only."""
    via_token: bool = False

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def may_use(self, topic: str) -> bool:
        return not self.prefixes or any(topic.startswith(p) for p in self.prefixes)


ANONYMOUS = Principal("anonymous", frozenset({"admin"}))
"""Who everyone is while auth is off (the embedded default)."""


class MintRefused(Exception):
    """A token request asked for more than the caller holds; nothing was minted."""

    def __init__(self, reason: str, scopes: list[str] | None = None,
                 prefixes: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.scopes = scopes or []
        """Requested scopes the caller does not hold."""
        self.prefixes = prefixes or []
        """Requested prefixes outside the caller's prefixes."""


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
        """Never raises: any string that is not a valid key or token gives None."""
        if not self.enabled:
            return ANONYMOUS
        if not credential or not isinstance(credential, str):
            return None
        try:
            raw = credential.encode("utf-8", "surrogatepass")
        except UnicodeError:
            return None
        if credential.startswith(TOKEN_PREFIX):
            return self._verify_token(raw[len(TOKEN_PREFIX):])
        # Dict lookup by digest: timing does not reveal how much of a key matched.
        return self._by_digest.get(hashlib.sha256(raw).digest())

    def mint(self, principal: Principal, scopes: set[str] | None = None,
             prefixes: list[str] | None = None, ttl_s: int | None = None) -> tuple[str, int]:
        """A token carrying at most the principal's own rights; returns (token, expires_at).

        Asking for a scope the principal lacks, or a prefix outside its prefixes, raises
        `MintRefused` naming them (nothing is silently narrowed); so does a principal that
        itself came from a token. Omitted `scopes`/`prefixes` default to the principal's."""
        if principal.via_token:
            raise MintRefused("connection tokens cannot mint tokens; use an API key")
        granted = set(principal.scopes) if scopes is None else set(scopes)
        refused_scopes = [] if "admin" in principal.scopes else sorted(
            granted - principal.scopes)
        wanted = list(principal.prefixes) if prefixes is None else list(dict.fromkeys(prefixes))
        refused_prefixes = [p for p in wanted if principal.prefixes
                            and not any(p.startswith(q) for q in principal.prefixes)]
        if refused_scopes or refused_prefixes:
            raise MintRefused("the token would exceed the key's rights", refused_scopes,
                              refused_prefixes)
        # An empty list from a key limited to prefixes would mean "every topic": keep the key's.
        narrowed = wanted or list(principal.prefixes)
        exp = int(time.time()) + min(ttl_s or self._ttl, self._ttl)
        claims = _TokenClaims(principal.name, sorted(granted), narrowed, exp)
        body = _b64(msgspec.json.encode(claims))
        sig = _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        return f"{TOKEN_PREFIX}{body}.{sig}", exp

    def _verify_token(self, token: bytes) -> Principal | None:
        """`token` is what follows `lt1.`: `<base64url claims>.<base64url signature>`.
        Every malformed input (bad bytes, bad base64, bad JSON, wrong types) gives None."""
        body, _, sig = token.partition(b".")
        if not body or not sig:
            return None
        expected = _b64(hmac.new(self._secret, body, hashlib.sha256).digest()).encode()
        # Compared as bytes: compare_digest refuses non-ASCII str (TypeError, once a 500).
        if not hmac.compare_digest(sig, expected):
            return None
        try:
            claims = msgspec.json.decode(_unb64(body.decode("ascii")), type=_TokenClaims)
        except (msgspec.DecodeError, ValueError):
            return None
        if claims.exp < time.time():
            return None
        return Principal(claims.sub, frozenset(claims.scopes), tuple(claims.prefixes),
                         expires_at=claims.exp, via_token=True)
