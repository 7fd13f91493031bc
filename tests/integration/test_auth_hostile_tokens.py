"""Hostile and malformed tokens and headers: each gets 401, never a 5xx, for the right reason.

The gateway runs under uvicorn on loopback (real HTTP parsing), in OIDC mode against a loopback IdP we control, requiring RFC 9068
`at+jwt` access tokens. Every case is its own test id, and asserts the reason the
gateway logged, so a case cannot pass by failing some other check by accident.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import jwt
import pytest
from structlog.testing import capture_logs

from gateway.app import create_app
from tests.support.idp import AUDIENCE, StubIdp, oidc_settings
from tests.support.jose import SigningKey, access_claims, b64url, compact, resign
from tests.support.server import serve_in_thread

pytestmark = pytest.mark.integration
Headers = list[tuple[str, str | bytes]]


@dataclass
class Ctx:
    """The IdP's real key, an attacker's key, and the issuer tokens must name."""

    key: SigningKey
    attacker: SigningKey
    issuer: str

    def claims(self, **extra: object) -> dict[str, object]:
        return access_claims(self.issuer, AUDIENCE, **extra)

    def good(self, **extra: object) -> str:
        return self.key.sign(self.claims(**extra))

    def header(self, **extra: object) -> dict[str, object]:
        return {"alg": "RS256", "typ": "at+jwt", "kid": self.key.kid, **extra}


def bearer(token: str) -> Headers:
    return [("Authorization", f"Bearer {token}")]


def _nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


def _tampered(ctx: Ctx) -> str:
    head, _, sig = ctx.good(roles=["reader"]).split(".")
    body = b64url(json.dumps(ctx.claims(roles=["admin"])))
    return f"{head}.{body}.{sig}"


def _truncated(ctx: Ctx) -> str:
    head, body, sig = ctx.good().split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    return f"{head}.{body}.{b64url(raw[:-16])}"


def _swapped_signature(ctx: Ctx) -> str:
    head, body, _ = ctx.good(sub="mallory").split(".")
    return f"{head}.{body}.{ctx.good(sub='alice').split('.')[2]}"


def _hs256_with_public_key(ctx: Ctx) -> str:
    pem = ctx.key.public_pem()
    signing = jwt.get_algorithm_by_name("HS256")
    head = b64url(json.dumps(ctx.header(alg="HS256")))
    body = b64url(json.dumps(ctx.claims()))
    return f"{head}.{body}.{b64url(signing.sign(f'{head}.{body}'.encode(), pem))}"


def _signed_raw(ctx: Ctx, header: dict[str, object], payload: object) -> str:
    """A token the IdP key really signed, with an arbitrary header and payload."""
    return resign(compact(header, json.dumps(payload).encode(), b"x"), ctx.key)


def _attacker_with_embedded_jwk(ctx: Ctx) -> str:
    return ctx.attacker.sign(ctx.claims(), kid=None, jwk=ctx.attacker.public_jwk())


CASES: list[tuple[str, Callable[[Ctx], Headers], str]] = [
    ("alg-none-unsigned", lambda c: bearer(compact(c.header(alg="none"), c.claims())), "malformed token"),
    ("alg-none-signed", lambda c: bearer(compact(c.header(alg="none"), c.claims(), b"s")),
     "algorithm not allowed"),
    ("alg-None", lambda c: bearer(compact(c.header(alg="None"), c.claims(), b"s")), "algorithm not allowed"),
    ("alg-NONE", lambda c: bearer(compact(c.header(alg="NONE"), c.claims(), b"s")), "algorithm not allowed"),
    ("alg-nOnE-with-signature", lambda c: bearer(compact(c.header(alg="nOnE"), c.claims(), b"sig")),
     "algorithm not allowed"),
    ("alg-missing", lambda c: bearer(compact({"typ": "at+jwt", "kid": c.key.kid}, c.claims(), b"s")),
     "algorithm not allowed"),
    ("alg-as-list", lambda c: bearer(compact(c.header(alg=["RS256"]), c.claims(), b"s")),
     "algorithm not allowed"),
    ("hs256-signed-with-public-key-pem", lambda c: bearer(_hs256_with_public_key(c)), "algorithm not allowed"),
    ("wrong-issuer", lambda c: bearer(c.good(iss="https://login.attacker.example")), "wrong issuer"),
    ("issuer-as-list", lambda c: bearer(_signed_raw(c, c.header(), c.claims(iss=[c.issuer]))), "wrong issuer"),
    ("absent-issuer", lambda c: bearer(c.good(iss=None)), "missing claim"),
    ("wrong-audience", lambda c: bearer(c.good(aud="api://another-service")), "wrong audience"),
    ("audience-list-without-ours", lambda c: bearer(c.good(aud=["a", "b"])), "wrong audience"),
    ("absent-audience", lambda c: bearer(c.good(aud=None)), "missing claim"),
    ("absent-exp", lambda c: bearer(c.good(exp=None)), "missing claim"),
    ("exp-not-a-number", lambda c: bearer(c.good(exp="tomorrow")), "malformed token"),
    ("expired", lambda c: bearer(c.good(exp=int(time.time()) - 3600)), "expired"),
    ("not-yet-valid", lambda c: bearer(c.good(nbf=int(time.time()) + 3600)), "not yet valid"),
    ("issued-in-the-future", lambda c: bearer(c.good(iat=int(time.time()) + 3600)), "not yet valid"),
    ("absent-subject", lambda c: bearer(c.good(sub=None)), "missing claim"),
    ("attacker-key-known-kid", lambda c: bearer(c.attacker.sign(c.claims(), kid=c.key.kid)), "bad signature"),
    ("attacker-key-unknown-kid", lambda c: bearer(c.attacker.sign(c.claims())), "no key"),
    ("attacker-key-without-kid", lambda c: bearer(c.attacker.sign(c.claims(), kid=None)), "bad signature"),
    ("embedded-jwk", lambda c: bearer(_attacker_with_embedded_jwk(c)), "key-bearing header"),
    ("jku-header", lambda c: bearer(c.attacker.sign(c.claims(), jku="https://attacker.example/jwks")),
     "key-bearing header"),
    ("x5u-header", lambda c: bearer(c.attacker.sign(c.claims(), x5u="https://attacker.example/cert.pem")),
     "key-bearing header"),
    ("kid-path-traversal", lambda c: bearer(c.attacker.sign(c.claims(), kid="../../../../etc/passwd")), "no key"),
    ("kid-sql-injection", lambda c: bearer(c.attacker.sign(c.claims(), kid="x' OR '1'='1'; --")), "no key"),
    ("kid-too-long", lambda c: bearer(c.attacker.sign(c.claims(), kid="k" * 600)), "malformed kid"),
    ("kid-not-a-string", lambda c: bearer(_signed_raw(c, c.header(kid={"$ne": None}), c.claims())),
     "malformed kid"),
    ("tampered-payload", lambda c: bearer(_tampered(c)), "bad signature"),
    ("truncated-signature", lambda c: bearer(_truncated(c)), "bad signature"),
    ("signature-not-base64url", lambda c: bearer(c.good()[:-1] + "*"), "malformed token"),
    ("signature-of-another-token", lambda c: bearer(_swapped_signature(c)), "bad signature"),
    ("empty-signature", lambda c: bearer(c.good().rsplit(".", 1)[0] + "."), "malformed token"),
    ("two-segments", lambda c: bearer(".".join(c.good().split(".")[:2])), "malformed token"),
    ("four-segments", lambda c: bearer(c.good() + ".e30"), "malformed token"),
    ("five-segments-jwe-shape", lambda c: bearer("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d"), "malformed token"),
    ("header-not-json", lambda c: bearer(compact(b"{alg: RS256", c.claims(), b"s")), "malformed token"),
    ("header-not-base64", lambda c: bearer("%%%%." + c.good().split(".", 1)[1]), "malformed token"),
    ("header-json-array", lambda c: bearer(compact(b'["RS256"]', c.claims(), b"s")), "malformed token"),
    ("header-deeply-nested", lambda c: bearer(c.attacker.sign(c.claims(), kid=c.key.kid, x=_nested(400))),
     "bad signature"),
    ("header-huge", lambda c: bearer(c.attacker.sign(c.claims(), pad="p" * 9000)), "malformed token"),
    ("token-huge", lambda c: bearer(c.good(pad="p" * 20000)), "malformed token"),
    ("unknown-crit", lambda c: bearer(c.key.sign(c.claims(), crit=["urn:example:policy"],
                                                 **{"urn:example:policy": 1})),
     "unsupported critical header"),
    ("b64-false-unencoded-payload", lambda c: bearer(_signed_raw(c, c.header(b64=False, crit=["b64"]),
                                                                 c.claims())),
     "unsupported critical header"),
    ("id-token-typ-jwt", lambda c: bearer(c.key.sign(c.claims(nonce="n", at_hash="h"), typ="JWT")),
     "not an access token"),
    ("typ-absent", lambda c: bearer(_signed_raw(c, {"alg": "RS256", "kid": c.key.kid}, c.claims())),
     "not an access token"),
    ("es256-against-an-rsa-kid", lambda c: bearer(SigningKey.ec().sign(c.claims(), kid=c.key.kid)),
     "key does not fit algorithm"),
    ("ps256-with-a-key-published-for-rs256",
     lambda c: bearer(SigningKey(c.key.private, "PS256", c.key.kid).sign(c.claims())),
     "key does not fit algorithm"),
    ("payload-json-array", lambda c: bearer(_signed_raw(c, c.header(), ["sub", "alice"])), "malformed token"),
    ("payload-not-base64", lambda c: bearer(c.good().split(".")[0] + ".!!!!." + "c2ln"), "malformed token"),
    ("subject-ambiguous-list", lambda c: bearer(c.good(sub=["alice", "bob"])), "malformed claim"),
    ("tenant-as-object", lambda c: bearer(c.good(tenant={"id": "acme"})), "malformed claim"),
    ("basic-scheme", lambda c: [("Authorization", "Basic YWxpY2U6c2VjcmV0")], "unsupported scheme"),
    ("valid-token-under-dpop-scheme", lambda c: [("Authorization", f"DPoP {c.good()}")], "unsupported scheme"),
    ("scheme-glued-to-token", lambda c: [("Authorization", f"Bearer{c.good()}")], "unsupported scheme"),
    ("empty-bearer", lambda c: [("Authorization", "Bearer")], "malformed bearer credentials"),
    ("bearer-token-with-tab", lambda c: [("Authorization", "Bearer " + c.good().replace(".", "\t.", 1))],
     "malformed token"),
    ("bearer-two-tokens", lambda c: [("Authorization", f"Bearer {c.good()} {c.good()}")],
     "malformed bearer credentials"),
    ("two-authorization-headers", lambda c: bearer(c.good()) + bearer(c.good()),
     "multiple authorization headers"),
    ("non-ascii-token", lambda c: [("Authorization", "Bearer jéton.ünïcode.签名".encode())], "malformed token"),
    ("no-authorization-header", lambda c: [], "no credentials"),
]
NO_TOKEN_REASONS = {"no credentials", "unsupported scheme"}


@pytest.fixture(scope="module")
def ctx_and_client(module_settings) -> Iterator[tuple[Ctx, httpx.Client]]:
    key = SigningKey.rsa("idp-key-1")
    with StubIdp([key]) as idp:
        app = create_app(oidc_settings(module_settings, idp, require_at_jwt=True))
        with serve_in_thread(app) as base, httpx.Client(base_url=base) as client:
            yield Ctx(key=key, attacker=SigningKey.rsa("attacker-1"), issuer=idp.issuer), client


def test_a_well_formed_token_is_accepted_so_the_battery_means_something(ctx_and_client):
    ctx, client = ctx_and_client
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = client.get("/v1/me", headers={"Authorization": f"{scheme} {ctx.good()}"})
        assert response.status_code == 200, response.text


def test_battery_has_at_least_25_distinct_cases():
    assert len({name for name, _, _ in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize(("build", "reason"), [pytest.param(b, r, id=n) for n, b, r in CASES])
def test_hostile_request_is_refused_with_401(ctx_and_client, build, reason):
    ctx, client = ctx_and_client
    headers = build(ctx)
    with capture_logs() as logs:
        response = client.get("/v1/me", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == "Missing or invalid bearer token."
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    assert ('error="invalid_token"' in challenge) is (reason not in NO_TOKEN_REASONS)
    failures = [e for e in logs if e["event"] == "authentication_failed"]
    assert len(failures) == 1
    assert failures[0]["reason"].split(":")[0] == reason
    for _, value in headers:
        secret = value.decode("latin-1") if isinstance(value, bytes) else value
        token = secret.partition(" ")[2]
        if len(token) > 16:
            assert token not in repr(logs)
