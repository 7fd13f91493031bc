"""Liveness, readiness (database reachable, migrations at head) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from gateway.api.problems import problem
from gateway.db.migrate import head_revision


@get("/health/live", include_in_schema=True, tags=["health"], opt={"public": True})
async def live() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@get("/health/ready", tags=["health"], opt={"public": True})
async def ready(state: State) -> Response[dict[str, Any]]:
    """Ready when the database answers and its schema is at the newest migration."""
    try:
        async with state.engine.connect() as conn:
            current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except Exception:
        return problem(503, "Not ready", "The database is unreachable.",
                       headers={"Retry-After": "1"})
    expected = head_revision()
    if current != expected:
        return problem(503, "Not ready", "Database migrations are not at head.",
                       headers={"Retry-After": "5"})
    return Response({"status": "ok", "database": "ok", "migration": current})


@get("/metrics", tags=["health"], opt={"public": True}, include_in_schema=False)
async def metrics(state: State) -> Response[bytes]:
    """Prometheus text exposition of this worker's metrics."""
    pool = state.engine.pool
    state.metrics.pool_in_use.set(pool.checkedout())
    state.metrics.pool_size.set(pool.size())
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


ROUTES = [live, ready, metrics]
