from pathlib import Path

import pytest

from gateway.errors import ConfigurationError
from gateway.settings import load_settings


def test_defaults_need_no_environment():
    settings = load_settings({}, dotenv=None)
    assert settings.database.url is None
    assert settings.auth.dev_mode
    assert settings.policy.levels == ("public", "internal", "confidential", "restricted")


def test_unknown_gateway_variable_is_refused_by_name():
    with pytest.raises(ConfigurationError, match="GATEWAY_OIDC_ISSUR"):
        load_settings({"GATEWAY_OIDC_ISSUR": "https://idp"}, dotenv=None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_PORT", "eighty"),
        ("GATEWAY_WORKERS", "0"),
        ("GATEWAY_AUDIT_STORE_QUERY", "maybe"),
        ("GATEWAY_EMBEDDER", "magic"),
        ("GATEWAY_DEFAULT_CLEARANCE", "top-secret"),
        ("GATEWAY_OIDC_ALGORITHMS", "RS256,HS256"),
    ],
)
def test_bad_value_names_the_variable(name, value):
    with pytest.raises(ConfigurationError, match=name):
        load_settings({name: value}, dotenv=None)


def test_issuer_without_audience_is_refused():
    with pytest.raises(ConfigurationError, match="GATEWAY_OIDC_AUDIENCE"):
        load_settings({"GATEWAY_OIDC_ISSUER": "https://idp.example"}, dotenv=None)


def test_dotenv_is_read_and_environment_wins(tmp_path: Path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nexport GATEWAY_PORT=9000\nGATEWAY_HOST='0.0.0.0'\n")
    settings = load_settings({"GATEWAY_PORT": "9100"}, dotenv=dotenv)
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"


def test_settings_are_frozen():
    settings = load_settings({}, dotenv=None)
    with pytest.raises(AttributeError):
        settings.server.port = 1  # type: ignore[misc]
