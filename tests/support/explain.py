"""EXPLAIN for the retrieval statements, compiled exactly as they run (same bound parameters).

For the tests that check what PostgreSQL does with the filtered search: which index
drives the scan, and for how many rows a distance is computed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable


class Explain(Executable, ClauseElement):
    """`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) <statement>` as an executable construct."""

    inherit_cache = False

    def __init__(self, statement: Any, *, analyze: bool = True) -> None:
        self.statement = statement
        self.analyze = analyze


@compiles(Explain, "postgresql")
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    options = "ANALYZE, BUFFERS, " if element.analyze else ""
    return f"EXPLAIN ({options}FORMAT JSON) " + compiler.process(element.statement, **kw)


async def explain(session: AsyncSession, statement: Any, *, analyze: bool = True) -> dict[str, Any]:
    """The JSON plan of `statement` (run for real when `analyze`), in the caller's transaction."""
    result = await session.execute(Explain(statement, analyze=analyze))
    document = result.scalar_one()
    return dict(document[0])


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a JSON plan, depth first (including init plans and CTEs)."""
    nodes = [node]
    for child in node.get("Plans", ()):
        nodes.extend(plan_nodes(child))
    return nodes
