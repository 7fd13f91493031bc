"""The one composition root: `create_app` wires settings, database, services and routes.

No module-level engines, apps or cached settings exist anywhere else, so tests build
their own app with their own settings and fakes.
"""

from __future__ import annotations

import asyncio
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
from gateway.api import access, audit, chat, documents, health, jwks, me, policies, retrieval
from gateway.api.deadline import RequestDeadlineMiddleware
from gateway.api.middleware import RequestContextMiddleware
from gateway.api.openapi import declare_common_responses
from gateway.api.problems import EXCEPTION_HANDLERS
from gateway.audit.failures import FailureAuditor
from gateway.audit.service import AuditLog
from gateway.audit.signing import AuditSigner
from gateway.audit.store import AuditStore
from gateway.audit.trail import AuditTrail
from gateway.auth.middleware import BearerAuthenticationMiddleware
from gateway.auth.setup import build_authenticator
from gateway.db.engine import create_engine, session_factory
from gateway.errors import ConfigurationError
from gateway.generation.base import Generator
from gateway.generation.extractive import ExtractiveGenerator
from gateway.generation.openai_compat import OpenAIChatGenerator
from gateway.ingestion.embedders import Embedder, build_embedder, check_dimension
from gateway.ingestion.service import IngestionService
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.pipeline import QueryPipeline
from gateway.retrieval.documents import DocumentReader
from gateway.retrieval.planner import RetrievalPlanner
from gateway.retrieval.repository import ChunkRepository
from gateway.retrieval.service import Retriever
from gateway.settings import Settings, load_settings


def create_app(settings: Settings, *, embedder: Embedder | None = None, **components: Any) -> Litestar:
    """Build the gateway. `embedder` and `components` override services (tests pass fakes)."""
    if settings.database.url is None:
        raise ConfigurationError("DATABASE_URL is not set (the CLI starts an embedded server)")
    # Checked here so a schema mismatch stops startup; the local model loads on first use.
    embedder = embedder or build_embedder(settings.embedding)
    check_dimension(embedder.dimension, "the embedder's dimension")
    configure_logging(settings.server)
    metrics = Metrics()
    authenticator = build_authenticator(settings)
    engine = create_engine(settings.database.url, settings.database)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            await authenticator.start()
            yield
        finally:
            await authenticator.close()
            close = getattr(generator, "aclose", None)
            if close is not None:
                await close()
            await engine.dispose()
            close_embedder = getattr(embedder, "aclose", None)
            if close_embedder is not None:
                await close_embedder()

    sessions = session_factory(engine)
    signer = AuditSigner.from_settings(settings)
    audit_log = AuditLog(sessions, settings.audit, metrics, signer)
    generator = components.get("generator") or build_generator(settings, embedder, metrics)
    pipeline = QueryPipeline(
        settings=settings, engine=engine, encoder=embedder,
        retriever=Retriever(
            ChunkRepository(metrics),
            RetrievalPlanner(settings.retrieval, settings.policy.classification_levels()),
        ),
        audit=audit_log, generator=generator, metrics=metrics,
    )
    failure_auditor = FailureAuditor(audit_log, metrics)
    levels = settings.policy.classification_levels()
    state = State({
        "settings": settings,
        "engine": engine,
        "sessions": sessions,
        "audit": audit_log,
        "audit_trail": AuditTrail(AuditStore(sessions), audit_log, signer),
        "failure_auditor": failure_auditor,
        "embedder": embedder,
        "generator": generator,
        "pipeline": pipeline,
        "metrics": metrics,
        "authenticator": authenticator,
        "ingestion": IngestionService(sessions, embedder, settings, audit=audit_log),
        "documents": DocumentReader(sessions, levels, audit_log, metrics),
        "policies": PolicyService(sessions, levels, audit_log),
        "document_access": DocumentAccessService(sessions, levels, audit_log),
        "access_explainer": AccessExplainer(sessions, levels, audit_log),
        **components,
    })
    route_handlers = [
        *health.ROUTES, jwks.dev_jwks, me.whoami, *retrieval.ROUTES, chat.chat_completions,
        *documents.ROUTES, *policies.ROUTES, *access.ROUTES, *audit.ROUTES,
    ]
    declare_common_responses(route_handlers)
    return Litestar(
        route_handlers=route_handlers,
        after_exception=[failure_auditor.request_failed],
        state=state,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            DefineMiddleware(
                RequestContextMiddleware,
                metrics=metrics,
                slots=asyncio.Semaphore(settings.server.max_concurrency),
                max_header_bytes=settings.server.max_header_bytes,
            ),
            DefineMiddleware(
                RequestDeadlineMiddleware,
                timeouts={"request": settings.server.request_timeout_s,
                          "ingest": settings.server.ingest_timeout_s},
                metrics=metrics,
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
        ),
        logging_config=None,
        debug=False,
    )


def build_generator(settings: Settings, embedder: Any, metrics: Metrics) -> Generator:
    """An LLM when GATEWAY_LLM_BASE_URL is set, else extractive answers."""
    if settings.llm.base_url:
        return OpenAIChatGenerator(settings.llm, metrics)
    return ExtractiveGenerator(embedder)


def app_from_environment() -> Litestar:
    """Factory for uvicorn workers: settings come from the environment the CLI prepared."""
    return create_app(load_settings())
