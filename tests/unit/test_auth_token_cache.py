"""Verified tokens are remembered, but never past their expiry, their key, or the cache's bounds."""

from __future__ import annotations

import time

import jwt
import pytest

from gateway.auth import tokens
from gateway.auth.jwks import KeySet
from gateway.auth.tokens import VerificationPolicy, VerifiedTokens, verify_token
from gateway.errors import AuthenticationError
from tests.support.jose import SigningKey, access_claims

ISSUER, AUDIENCE = "https://idp.example", "gateway"
POLICY = VerificationPolicy(issuer=ISSUER, audience=AUDIENCE, algorithms=("ES256",), leeway_s=0)


class Keys:
    """A key source whose key set the test replaces (as a JWKS refetch does)."""

    def __init__(self, *keys: SigningKey) -> None:
        self.publish(*keys)

    def publish(self, *keys: SigningKey) -> None:
        self.set = KeySet.parse({"keys": [k.public_jwk() for k in keys]}, ("ES256",))

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        key = self.set.find(kid, algorithm)
        if key is None:
            raise AuthenticationError("no key: unknown kid")
        return key


@pytest.fixture
def decodes(monkeypatch):
    """Counts the signature checks (`tokens._decode` calls)."""
    calls = []
    real = tokens._decode

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(tokens, "_decode", counting)
    return calls


async def test_a_repeated_token_is_verified_once_and_gives_the_same_claims(decodes):
    key = SigningKey.ec()
    keys, cache = Keys(key), VerifiedTokens(16)
    token = key.sign(access_claims(ISSUER, AUDIENCE, groups=["finance"]))
    first = await verify_token(token, keys, POLICY, cache)
    second = await verify_token(token, keys, POLICY, cache)
    assert first == second and second["groups"] == ["finance"]
    assert len(decodes) == 1
    second.update(sub="mallory")  # a caller changing its copy changes nothing remembered
    assert (await verify_token(token, keys, POLICY, cache))["sub"] == "alice"


async def test_a_remembered_token_stops_working_when_it_expires(decodes):
    key = SigningKey.ec()
    keys, cache = Keys(key), VerifiedTokens(16)
    token = key.sign(access_claims(ISSUER, AUDIENCE, exp=int(time.time()) + 1))
    await verify_token(token, keys, POLICY, cache)
    time.sleep(1.1)
    with pytest.raises(AuthenticationError) as refused:
        await verify_token(token, keys, POLICY, cache)
    assert refused.value.reason.startswith("expired")
    assert len(decodes) == 2


async def test_a_remembered_token_stops_working_when_its_key_is_withdrawn(decodes):
    old, new = SigningKey.ec(), SigningKey.ec()
    keys, cache = Keys(old), VerifiedTokens(16)
    token = old.sign(access_claims(ISSUER, AUDIENCE))
    await verify_token(token, keys, POLICY, cache)
    keys.publish(new)
    with pytest.raises(AuthenticationError) as refused:
        await verify_token(token, keys, POLICY, cache)
    assert refused.value.reason.startswith("no key")


async def test_a_refetched_key_set_verifies_remembered_tokens_again(decodes):
    key = SigningKey.ec()
    keys, cache = Keys(key), VerifiedTokens(16)
    token = key.sign(access_claims(ISSUER, AUDIENCE))
    await verify_token(token, keys, POLICY, cache)
    keys.publish(key)  # same key material, new key objects
    await verify_token(token, keys, POLICY, cache)
    assert len(decodes) == 2


async def test_a_forged_signature_on_a_remembered_payload_is_checked(decodes):
    key = SigningKey.ec()
    keys, cache = Keys(key), VerifiedTokens(16)
    token = key.sign(access_claims(ISSUER, AUDIENCE))
    await verify_token(token, keys, POLICY, cache)
    head, body, _ = token.split(".")
    forged = f"{head}.{body}.{SigningKey.ec(key.kid).sign({'x': 1}).split('.')[2]}"
    with pytest.raises(AuthenticationError) as refused:
        await verify_token(forged, keys, POLICY, cache)
    assert refused.value.reason.startswith("bad signature")


def test_the_cache_is_bounded_and_remembers_at_most_max_age():
    key = SigningKey.ec()
    pyjwk = jwt.PyJWK(key.public_jwk())
    now = [1000.0]
    cache = VerifiedTokens(2, max_age_s=60, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        cache.put(name, pyjwk, {"exp": 10_000}, POLICY)
    assert cache.get("a", pyjwk) is None
    assert cache.get("b", pyjwk) == cache.get("c", pyjwk) == {"exp": 10_000}
    now[0] += 60
    assert cache.get("c", pyjwk) is None
    disabled = VerifiedTokens(0)
    disabled.put("a", pyjwk, {"exp": time.time() + 600}, POLICY)
    assert disabled.get("a", pyjwk) is None
