"""Every registered route, every method: only the public few answer without a token.

The routes are read from the app itself, so routes added later are covered without
touching this test; a new public route must be added to PUBLIC here, on purpose.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute, WebSocketRoute
from litestar.testing import TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession

from gateway.app import create_app

pytestmark = pytest.mark.integration
PUBLIC = re.compile(r"^(/health/.*|/schema.*|/\.well-known/jwks\.json|/metrics)$")
_SAMPLES: dict[Any, str] = {
    uuid.UUID: str(uuid.uuid4()), int: "1", float: "1.5", decimal.Decimal: "1.5", str: "x",
    Path: "x", dt.datetime: "2026-01-01T00:00:00Z", dt.date: "2026-01-01", dt.time: "12:00:00",
    dt.timedelta: "60",
}


def concrete_path(route: HTTPRoute | WebSocketRoute) -> str:
    """The route's path with a well-typed value for each path parameter."""
    path = route.path
    for parameter in route.path_parameters.values():
        path = path.replace("{" + parameter.full + "}", _SAMPLES[parameter.type])
    return path


def requests_of(app: Litestar) -> list[tuple[str, str, str]]:
    """(method, concrete path, route pattern) for every HTTP route and method."""
    return sorted(
        (method, concrete_path(route), route.path)
        for route in app.routes if isinstance(route, HTTPRoute)
        for method in route.methods
    )


def test_every_route_without_a_token_is_401_except_the_public_ones(settings):
    app = create_app(settings)
    seen_public, seen_protected = set(), set()
    with TestClient(app, raise_server_exceptions=False) as client:
        for method, path, pattern in requests_of(app):
            response = client.request(method, path)
            if PUBLIC.match(pattern):
                seen_public.add(pattern)
                assert response.status_code != 401, (method, path)
                assert response.status_code < 500 or pattern == "/health/ready", (method, path)
            else:
                seen_protected.add((method, pattern))
                assert response.status_code == 401, (method, path, response.status_code)
                assert response.headers["www-authenticate"].startswith("Bearer")
    assert {"/health/live", "/health/ready", "/metrics", "/.well-known/jwks.json", "/schema"} <= seen_public
    assert ("GET", "/v1/me") in seen_protected
    assert ("OPTIONS", "/v1/me") in seen_protected


def test_no_websocket_route_accepts_an_anonymous_connection(settings):
    app = create_app(settings)
    routes = [r for r in app.routes if isinstance(r, WebSocketRoute)]
    with TestClient(app) as client:
        for route in routes:
            with pytest.raises(Exception):  # noqa: B017 (any refusal to connect will do)
                session: WebSocketTestSession = client.websocket_connect(concrete_path(route))
                session.receive_text()
    assert all(not PUBLIC.match(r.path) for r in routes)


def test_public_marker_is_only_on_the_public_routes(settings):
    app = create_app(settings)
    marked = {
        route.path for route in app.routes if isinstance(route, HTTPRoute)
        for handler in route.route_handlers if handler.opt.get("public")
    }
    assert all(PUBLIC.match(path) for path in marked), marked
