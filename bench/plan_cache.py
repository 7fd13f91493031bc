"""Generic against custom plans for the search statements: what planning each query costs.

Production runs every search as a server-side prepared statement with a generic plan,
made once per connection (`prepared_statements` in gateway/db/engine.py). The control
plans each statement with its values (not prepared, `plan_cache_mode` auto), with the
same settings otherwise. Per cell: the planner's plan for its principal, both variants
interleaved query by query on one connection, the search statement's round trip timed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from bench.corpus import cells
from bench.measure import Runner, percentiles
from gateway.db.access import bind_principal
from gateway.db.engine import prepared_statements, session_factory
from gateway.retrieval.plans import Plan
from gateway.retrieval.repository import search_parameters, search_settings, search_statement
from policies.principal import Principal

CELLS = ("0.01%", "0.1%", "1%", "100%", "10%", "combined")
VARIANTS = ("custom", "generic")


async def measure(runner: Runner, queries: np.ndarray, k: int) -> str:
    """A Markdown table: per cell, p50/p95 of the search statement under each variant."""
    lines = ["Generic against custom plans: the search statement's execution as the client sees it (ms), "
             "the planner's plan, the two variants interleaved per query on one connection.", "",
             "| cell | plan | custom p50 | custom p95 | generic p50 | generic p95 |",
             "|---|---|---|---|---|---|"]
    principals = {c.name: c.principal for c in cells()}
    for name in CELLS:
        principal = principals[name]
        plan = await _planned(runner, principal, k)
        statement = search_statement(plan, principal)
        seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        async with session_factory(runner.engine)() as session:
            for i, vector in enumerate(queries):
                for variant in VARIANTS[::1 if i % 2 else -1]:
                    seconds[variant].append(await _search(
                        runner, session, statement, principal, vector.tolist(), plan, k,
                        generic=variant == "generic"))
        custom, generic = (percentiles(seconds[v][5:]) for v in VARIANTS)  # 5 warm-up queries
        lines.append(f"| {name} | {plan.name} | {custom[0]:.2f} | {custom[1]:.2f} | "
                     f"{generic[0]:.2f} | {generic[1]:.2f} |")
    return "\n".join(lines)


async def _planned(runner: Runner, principal: Principal, k: int) -> Plan:
    async with runner.engine.connect() as connection, connection.begin():
        await bind_principal(connection, principal, runner.levels, datetime.now(UTC))
        estimate = await runner.planner.estimate(connection, principal)
    return runner.planner.choose(estimate, k, len(principal.principal_strings))


async def _search(runner: Runner, session: AsyncSession, statement: Select[Any], principal: Principal,
                  vector: list[float], plan: Plan, k: int, *, generic: bool) -> float:
    async with session.begin():
        now = datetime.now(UTC)
        settings = search_settings(plan, k)
        if not generic:
            del settings["plan_cache_mode"]
        await bind_principal(session, principal, runner.levels, now, settings)
        parameters = search_parameters(vector, principal=principal, now=now, levels=runner.levels, limit=k,
                                       plan=plan)
        started = time.perf_counter()
        if generic:
            async with prepared_statements(session):
                (await session.execute(statement, parameters)).all()
        else:
            (await session.execute(statement, parameters)).all()
        return time.perf_counter() - started
