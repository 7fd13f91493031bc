"""What the OpenAPI document promises, kept true to what the middleware really answers.

Some answers come from no handler: the bearer middleware's 401 on every protected
operation, the parameter and body parsers' 400/413/422, the role guards' 403, the
router's 404 for a malformed path parameter, and the 503 of the concurrency bound, the
request deadline and an unreachable database. They are declared here for every
operation at once (`declare_common_responses`), so no route can forget them; answers
specific to one handler (an LLM's 502/504, a hidden document's 404) are declared on its
decorator with `problem_responses`. Security is declared per operation, exactly where
the middleware demands a token: public routes carry none.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, Schema

from gateway.api.problems import PROBLEM_MEDIA_TYPE

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_INJECTED = frozenset({"request", "state", "scope", "headers", "cookies", "socket"})


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details; some problems add members (`errors`, `field`, `audit_id`)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    request_id: str | None = None


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses: a problem document for each of `statuses`."""
    return {
        status: ResponseSpec(Problem, description=HTTPStatus(status).phrase,
                             media_type=PROBLEM_MEDIA_TYPE, generate_examples=False)
        for status in statuses
    }


def _common_statuses(handler: HTTPRouteHandler) -> list[int]:
    statuses = [503]
    if not handler.opt.get("public"):
        statuses.append(401)
    if handler.guards:
        statuses.append(403)
    parameters = set(inspect.signature(handler.fn).parameters) - _INJECTED
    if "data" in parameters:
        statuses.append(413)
    if parameters:  # a body, or path / query parameters: malformed 400, unacceptable 422
        statuses.extend((400, 422))
    if any("{" in path for path in handler.paths):
        statuses.append(404)  # a malformed path parameter matches no route
    return statuses


def declare_common_responses(handlers: Iterable[Any]) -> None:
    """Declare the middleware's answers and the bearer requirement on each HTTP handler.

    Idempotent: a handler's own declarations win over the common ones.
    """
    for handler in handlers:
        if not isinstance(handler, HTTPRouteHandler):
            continue
        handler.responses = {**problem_responses(*_common_statuses(handler)),
                             **(handler.responses or {})}
        if not handler.opt.get("public"):
            handler.security = BEARER


@dataclass
class StreamingOperation(Operation):
    """An operation whose 200 is JSON, or server-sent events when the body asks to `stream`."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        content = getattr(ok, "content", None)
        if not content or "application/json" not in content:
            return
        json_body = content["application/json"]
        one_of = getattr(json_body.schema, "one_of", None)
        if one_of:  # `Answer | ServerSentEvent`: the event stream is not a JSON alternative
            kept = [s for s in one_of if not (isinstance(s, Schema) and s.to_schema() == {})]
            json_body.schema = kept[0] if len(kept) == 1 else Schema(one_of=kept)
        content["text/event-stream"] = OpenAPIMediaType()  # a stream of events, no JSON schema


def streamed_as(*media_types: str) -> type[Operation]:
    """An Operation class whose 200 is a stream in one of `media_types` (an export, say).

    Litestar documents a `Stream` as JSON; media type parameters (`; charset=`) are dropped.
    """

    @dataclass
    class StreamedOperation(Operation):
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get("200")
            if ok is not None and hasattr(ok, "content"):
                ok.content = {m.split(";")[0].strip(): OpenAPIMediaType() for m in media_types}

    return StreamedOperation
