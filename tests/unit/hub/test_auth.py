from __future__ import annotations

import time

from loopai.config import ApiKey
from loopai.hub.auth import Authenticator

KEY = ApiKey(key="0123456789abcdef-sub", scopes=["subscribe"], name="dash", prefixes=["demo."])
ADMIN = ApiKey(key="0123456789abcdef-adm", scopes=["admin"], name="ops")


def auth() -> Authenticator:
    return Authenticator([KEY, ADMIN], "secret", 60)


def test_disabled_is_anonymous_admin() -> None:
    p = Authenticator([], "s", 60).authenticate(None)
    assert p is not None and p.has("publish")


def test_keys_and_scopes() -> None:
    a = auth()
    p = a.authenticate(KEY.key)
    assert p is not None and p.has("subscribe") and not p.has("publish")
    assert p.may_use("demo.x") and not p.may_use("other")
    assert a.authenticate("wrong-key-0000000000") is None
    assert a.authenticate(None) is None


def test_tokens_cannot_exceed_the_key() -> None:
    a = auth()
    p = a.authenticate(KEY.key)
    assert p is not None
    token, exp = a.mint(p, {"subscribe", "publish"}, ["other.", "demo.sub."])
    assert exp > time.time()
    q = a.authenticate(token)
    assert q is not None
    assert q.has("subscribe") and not q.has("publish")
    assert q.prefixes == ("demo.sub.",)


def test_tampered_and_expired_tokens_fail() -> None:
    a = auth()
    p = a.authenticate(ADMIN.key)
    assert p is not None
    token, _ = a.mint(p)
    assert a.authenticate(token[:-2] + "xx") is None
    assert Authenticator([KEY], "other-secret", 60).authenticate(token) is None
    expired, _ = Authenticator([KEY], "secret", 60).mint(p, ttl_s=-100)
    assert a.authenticate(expired) is None
