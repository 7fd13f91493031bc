"""Authentication settings that must fail startup rather than weaken verification."""

import pytest

from gateway.errors import ConfigurationError
from gateway.settings import load_settings


def test_jwks_url_without_issuer_is_refused_since_iss_could_not_be_checked():
    with pytest.raises(ConfigurationError, match="GATEWAY_OIDC_ISSUER"):
        load_settings({"GATEWAY_JWKS_URL": "https://idp.example/keys",
                       "GATEWAY_OIDC_AUDIENCE": "api"}, dotenv=None)


@pytest.mark.parametrize("leeway", ["-5", "301"])
def test_leeway_outside_0_to_300_seconds_is_refused(leeway):
    with pytest.raises(ConfigurationError, match="GATEWAY_JWT_LEEWAY_SECONDS"):
        load_settings({"GATEWAY_JWT_LEEWAY_SECONDS": leeway}, dotenv=None)


@pytest.mark.parametrize("algorithms", ["RS256,none", "hs512", "RS256, HS256"])
def test_symmetric_or_none_algorithms_cannot_be_configured(algorithms):
    with pytest.raises(ConfigurationError, match="GATEWAY_OIDC_ALGORITHMS"):
        load_settings({"GATEWAY_OIDC_ALGORITHMS": algorithms}, dotenv=None)


def test_access_token_type_requirement_is_off_by_default_and_can_be_enabled():
    assert load_settings({}, dotenv=None).auth.require_at_jwt is False
    assert load_settings({"GATEWAY_OIDC_REQUIRE_AT_JWT": "true"}, dotenv=None).auth.require_at_jwt


def test_unknown_algorithm_names_fail_when_the_authenticator_is_built(tmp_path):
    from gateway.auth.setup import build_authenticator

    settings = load_settings({"GATEWAY_OIDC_ISSUER": "https://idp.example",
                              "GATEWAY_OIDC_AUDIENCE": "api", "GATEWAY_OIDC_ALGORITHMS": "RS999",
                              "GATEWAY_DATA_DIR": str(tmp_path)}, dotenv=None)
    with pytest.raises(ConfigurationError, match="GATEWAY_OIDC_ALGORITHMS"):
        build_authenticator(settings)


def test_token_cache_size_is_zero_or_more():
    assert load_settings({}, dotenv=None).auth.token_cache_size == 4096
    assert load_settings({"GATEWAY_AUTH_TOKEN_CACHE_SIZE": "0"}, dotenv=None).auth.token_cache_size == 0
    with pytest.raises(ConfigurationError, match="GATEWAY_AUTH_TOKEN_CACHE_SIZE"):
        load_settings({"GATEWAY_AUTH_TOKEN_CACHE_SIZE": "-1"}, dotenv=None)
