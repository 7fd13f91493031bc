"""The one composition root: `create_app` wires settings, database, services and routes.

No module-level engines, apps or cached settings exist anywhere else, so tests build
their own app with their own settings and fakes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from gateway import __version__
from gateway.access.documents import DocumentAccessService
from gateway.access.explain import AccessExplainer
from gateway.access.policies import PolicyService
from gateway.access.service import classification_levels
from gateway.api import access, health, jwks, me, policies
from gateway.api.middleware import RequestContextMiddleware
from gateway.api.problems import EXCEPTION_HANDLERS
from gateway.audit.service import AuditLog
from gateway.auth.middleware import BearerAuthenticationMiddleware
from gateway.auth.setup import build_authenticator
from gateway.db.engine import create_engine, session_factory
from gateway.errors import ConfigurationError
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.settings import Settings, load_settings


def create_app(settings: Settings, **components: Any) -> Litestar:
    """Build the gateway. `components` overrides services (embedder, generator) for tests."""
    if settings.database.url is None:
        raise ConfigurationError("DATABASE_URL is not set (the CLI starts an embedded server)")
    configure_logging(settings.server)
    metrics = Metrics()
    authenticator = build_authenticator(settings)
    engine = create_engine(settings.database.url, settings.database)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await engine.dispose()

    sessions = session_factory(engine)
    audit = AuditLog(sessions, settings.audit, metrics)
    levels = classification_levels(settings.policy)
    state = State({
        "settings": settings,
        "engine": engine,
        "sessions": sessions,
        "audit": audit,
        "policies": PolicyService(sessions, levels, audit),
        "document_access": DocumentAccessService(sessions, levels, audit),
        "access_explainer": AccessExplainer(sessions, levels, audit),
        "metrics": metrics,
        "authenticator": authenticator,
        **components,
    })
    return Litestar(
        route_handlers=[*health.ROUTES, jwks.dev_jwks, me.whoami, *policies.ROUTES, *access.ROUTES],
        state=state,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            DefineMiddleware(
                RequestContextMiddleware,
                metrics=metrics,
                max_concurrency=settings.server.max_concurrency,
            ),
            DefineMiddleware(
                BearerAuthenticationMiddleware,
                keys=authenticator.keys,
                policy=authenticator.policy,
                settings=settings.auth,
                metrics=metrics,
            ),
        ],
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Retrieval gateway",
            version=__version__,
            path="/schema",
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
            security=[{"bearer": []}],
        ),
        logging_config=None,
        debug=False,
    )


def app_from_environment() -> Litestar:
    """Factory for uvicorn workers: settings come from the environment the CLI prepared."""
    return create_app(load_settings())
