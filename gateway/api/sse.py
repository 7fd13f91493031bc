"""Server-sent events that keep their media type on handlers that also return JSON.

Litestar's streaming responses let the handler's default media type (JSON) override
their own; a handler that returns either JSON or an event stream needs this subclass.
"""

from __future__ import annotations

from typing import Any

from litestar.response import ServerSentEvent


class EventStream(ServerSentEvent):
    """A `text/event-stream` response whatever the handler's declared media type."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        """Force the event-stream media type."""
        kwargs["media_type"] = "text/event-stream"
        return super().to_asgi_response(*args, **kwargs)
