from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopai.config import ApiKey
from loopai.hub.auth import Authenticator, MintRefused

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


def test_tokens_within_the_key() -> None:
    a = auth()
    p = a.authenticate(KEY.key)
    assert p is not None and not p.via_token
    token, exp = a.mint(p, {"subscribe"}, ["demo.sub."])
    assert exp > time.time()
    q = a.authenticate(token)
    assert q is not None and q.via_token and q.name == "dash"
    assert q.has("subscribe") and not q.has("publish")
    assert q.prefixes == ("demo.sub.",)
    default = a.authenticate(a.mint(p)[0])
    assert default is not None and default.prefixes == ("demo.",)
    assert default.scopes == {"subscribe"}


def test_asking_for_more_than_the_key_is_refused_not_narrowed() -> None:
    a = auth()
    p = a.authenticate(KEY.key)
    assert p is not None
    with pytest.raises(MintRefused) as refused:
        a.mint(p, {"subscribe", "publish", "admin"}, ["other.", "demo.sub.", "dem"])
    assert refused.value.scopes == ["admin", "publish"]
    assert refused.value.prefixes == ["other.", "dem"]
    admin = a.authenticate(ADMIN.key)
    assert admin is not None
    assert a.mint(admin, {"publish"}, ["anything."])  # admin without prefixes may ask anything


def test_tokens_cannot_mint_tokens() -> None:
    a = auth()
    admin = a.authenticate(ADMIN.key)
    assert admin is not None
    q = a.authenticate(a.mint(admin)[0])
    assert q is not None and q.via_token
    with pytest.raises(MintRefused):
        a.mint(q)


def test_tampered_and_expired_tokens_fail() -> None:
    a = auth()
    p = a.authenticate(ADMIN.key)
    assert p is not None
    token, _ = a.mint(p)
    assert a.authenticate(token[:-2] + "xx") is None
    assert Authenticator([KEY], "other-secret", 60).authenticate(token) is None
    expired, _ = Authenticator([KEY], "secret", 60).mint(p, ttl_s=-100)
    assert a.authenticate(expired) is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("junk", [
    "lt1.eyJ9.\u00e9", "lt1.\u00e9.\u00e9", "lt1.", "lt1..", "lt1.a", "lt1.a.", "lt1..sig",
    "lt1.!!!.***", "lt1.eyJ9.eyJ9.eyJ9", "lt1.\ud800.\udfff", "\ud800" * 20, "\x00" * 20,
    "é" * 30, "lt1." + "A" * 10_000 + ".B",
])
def test_malformed_credentials_are_refused_without_raising(junk: str) -> None:
    assert auth().authenticate(junk) is None


def test_signed_but_malformed_claims_are_refused() -> None:
    """Claims that pass the signature yet are not valid (bad base64, JSON, types) give None."""
    a = auth()
    for body in ["!!!", _b64(b"not json"), _b64(b"[]"), _b64(b'{"sub": 1}'),
                 _b64(b'{"sub":"x","scopes":"admin","prefixes":[],"exp":9999999999}'),
                 _b64(b'{"sub":"x","scopes":[],"prefixes":[],"exp":"never"}'),
                 _b64("\u00e9".encode()), "\u00e9"]:
        raw = body.encode()
        sig = _b64(__import__("hmac").new(b"secret", raw, "sha256").digest())
        assert a.authenticate(f"lt1.{body}.{sig}") is None, body


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(),
    st.text().map(lambda t: "lt1." + t),
    st.tuples(st.text(), st.text()).map(lambda p: f"lt1.{p[0]}.{p[1]}"),
    st.binary().map(lambda b: "lt1." + _b64(b) + "." + _b64(b[::-1])),
))
def test_any_junk_string_is_refused_without_raising(junk: str) -> None:
    assert auth().authenticate(junk) is None
