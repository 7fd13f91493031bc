"""The IdP key cache against a real HTTP IdP stand-in: rotation, outages, rate limits, single flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from structlog.testing import capture_logs

from gateway.auth.idp import IdpClient
from gateway.auth.jwks import JwksKeySource
from gateway.errors import AuthenticationError, ConfigurationError
from tests.support.idp import StubIdp
from tests.support.jose import SigningKey

pytestmark = pytest.mark.integration
DISCOVERY = "/.well-known/openid-configuration"
ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.rsa("k1")


@pytest.fixture
def idp(key):
    with StubIdp([key]) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (in real time) for a background refresh to have had its effect."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def logged(logs: list[dict], event: str) -> Callable[[], bool]:
    return lambda: any(e["event"] == event for e in logs)


async def refusal(lookup: Awaitable[object]) -> str:
    """The logged reason of an AuthenticationError the lookup must raise."""
    with pytest.raises(AuthenticationError) as caught:
        await lookup
    return caught.value.reason


def source_for(idp: StubIdp, clock: Clock, *, issuer: str | None = None,
               jwks_url: str | None = None) -> JwksKeySource:
    client = IdpClient(issuer=issuer or idp.issuer, jwks_url=jwks_url, timeout_s=2)
    return JwksKeySource(client, algorithms=ALGORITHMS, min_refresh_s=30, max_age_s=3600,
                         clock=clock)


async def test_keys_come_from_discovery_and_are_cached(idp, clock, key):
    source = source_for(idp, clock)
    await source.start()
    for _ in range(5):
        assert (await source.key_for("k1", "RS256")).key_id == "k1"
    assert idp.count(DISCOVERY) == 1
    assert idp.count() == 1
    await source.aclose()


async def test_fixed_jwks_url_skips_discovery(idp, clock):
    source = source_for(idp, clock, jwks_url=idp.jwks_url)
    assert (await source.key_for("k1", "RS256")).key_id == "k1"
    assert idp.count(DISCOVERY) == 0
    assert idp.count() == 1
    await source.aclose()


async def test_unknown_kids_refetch_at_most_once_per_interval(idp, clock):
    source = source_for(idp, clock)
    await source.start()
    for n in range(20):
        assert "unknown kid" in await refusal(source.key_for(f"made-up-{n}", "RS256"))
    assert idp.count() == 1  # the startup fetch was less than 30 s ago
    clock.advance(31)
    for n in range(20):
        assert "unknown kid" in await refusal(source.key_for(f"made-up-{n}", "RS256"))
    assert idp.count() == 2
    await source.aclose()


async def test_concurrent_requests_share_one_fetch(idp, clock):
    idp.delay_s = 0.3
    source = source_for(idp, clock, jwks_url=idp.jwks_url)
    keys = await asyncio.gather(*(source.key_for("k1", "RS256") for _ in range(25)))
    assert {k.key_id for k in keys} == {"k1"}
    assert idp.count() == 1
    await source.aclose()


async def test_rotation_is_picked_up_without_restart_and_retired_keys_stop_working(idp, clock):
    source = source_for(idp, clock)
    await source.start()
    idp.keys = [SigningKey.rsa("k2")]
    clock.advance(31)
    assert (await source.key_for("k2", "RS256")).key_id == "k2"
    assert "unknown kid" in await refusal(source.key_for("k1", "RS256"))
    await source.aclose()


async def test_stale_keys_are_kept_while_the_idp_fails(idp, clock):
    source = source_for(idp, clock)
    await source.start()
    idp.failing = True
    clock.advance(4000)  # past the maximum age: a refresh is due, and fails
    with capture_logs() as logs:
        assert (await source.key_for("k1", "RS256")).key_id == "k1"
        await eventually(logged(logs, "jwks_refresh_failed"))
    assert (await source.key_for("k1", "RS256")).key_id == "k1"
    assert idp.count(DISCOVERY) == 2
    assert any(e["event"] == "jwks_refresh_failed" and e["keys_kept"] == 1 for e in logs)
    assert "unknown kid" in await refusal(source.key_for("k9", "RS256"))
    assert idp.count(DISCOVERY) == 2  # the failed refresh also counts towards the rate limit
    await source.aclose()


async def test_stale_keys_are_kept_while_the_idp_is_unreachable(idp, clock):
    source = source_for(idp, clock)
    await source.start()
    idp.stop()
    clock.advance(4000)
    assert (await source.key_for("k1", "RS256")).key_id == "k1"
    assert "unknown kid" in await refusal(source.key_for("k9", "RS256"))
    await source.aclose()


async def test_idp_down_at_startup_is_tolerated_until_keys_arrive(idp, clock):
    idp.stop()
    source = source_for(idp, clock)
    await source.start()  # does not raise
    assert "key set unavailable" in await refusal(source.key_for("k1", "RS256"))
    idp.start()
    clock.advance(31)
    assert (await source.key_for("k1", "RS256")).key_id == "k1"
    await source.aclose()


async def test_discovery_naming_another_issuer_fails_startup(idp, clock):
    idp.announced_issuer = "https://attacker.example"
    with pytest.raises(ConfigurationError, match="must be identical"):
        await source_for(idp, clock).start()


async def test_issuer_differing_only_by_trailing_slash_fails_startup(idp, clock):
    with pytest.raises(ConfigurationError, match="must be identical"):
        await source_for(idp, clock, issuer=idp.issuer + "/").start()


async def test_discovery_mismatch_at_refresh_keeps_keys_and_is_logged(idp, clock):
    source = source_for(idp, clock)
    await source.start()
    idp.announced_issuer = "https://attacker.example"
    idp.keys = [SigningKey.rsa("evil")]
    clock.advance(4000)
    with capture_logs() as logs:
        assert (await source.key_for("k1", "RS256")).key_id == "k1"
        await eventually(logged(logs, "jwks_refresh_failed"))
    failure = next(e for e in logs if e["event"] == "jwks_refresh_failed")
    assert failure["log_level"] == "error"
    assert "must be identical" in failure["error"]
    clock.advance(31)
    with pytest.raises(AuthenticationError):
        await source.key_for("evil", "RS256")
    await source.aclose()


async def test_periodic_refresh_after_max_age(idp, clock):
    source = source_for(idp, clock)
    await source.start()
    clock.advance(3599)
    await source.key_for("k1", "RS256")
    assert idp.count() == 1
    clock.advance(2)
    await source.key_for("k1", "RS256")
    await eventually(lambda: idp.count() == 2)
    await source.aclose()


async def test_refresh_due_by_age_does_not_stall_requests_with_cached_keys(idp, clock):
    source = source_for(idp, clock)
    await source.start()
    idp.delay_s = 1.5
    clock.advance(4000)
    started = time.monotonic()
    assert (await source.key_for("k1", "RS256")).key_id == "k1"
    assert time.monotonic() - started < 0.5
    await eventually(lambda: idp.count(DISCOVERY) == 2)
    await source.aclose()  # cancels the refresh still waiting on the slow IdP


async def test_document_without_usable_keys_keeps_the_old_ones(idp, clock):
    source = source_for(idp, clock)
    await source.start()
    idp.keys = []
    idp.extra_jwks = [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]
    clock.advance(4000)
    with capture_logs() as logs:
        assert (await source.key_for("k1", "RS256")).key_id == "k1"
        await eventually(logged(logs, "jwks_refresh_failed"))
    assert idp.count() == 2
    assert (await source.key_for("k1", "RS256")).key_id == "k1"
    await source.aclose()


async def test_oversized_jwks_document_is_refused(idp, clock):
    idp.extra_jwks = [{"kty": "RSA", "kid": f"pad-{n}", "n": "x" * 1000, "e": "AQAB"}
                      for n in range(600)]
    source = source_for(idp, clock)
    with capture_logs() as logs:
        await source.start()
    assert any("too large" in e.get("error", "") for e in logs)
    with pytest.raises(AuthenticationError):
        await source.key_for("k1", "RS256")
    await source.aclose()


def test_plain_http_is_refused_for_non_loopback_idps():
    with pytest.raises(ConfigurationError, match="https"):
        IdpClient(issuer="http://login.example.com", jwks_url=None, timeout_s=1)
    with pytest.raises(ConfigurationError, match="https"):
        IdpClient(issuer="https://login.example.com", jwks_url="http://keys.example.com/jwks",
                  timeout_s=1)
    with pytest.raises(ConfigurationError, match="credentials"):
        IdpClient(issuer="https://user:pw@login.example.com", jwks_url=None, timeout_s=1)
    assert IdpClient(issuer="http://[::1]:9000", jwks_url=None, timeout_s=1).issuer
