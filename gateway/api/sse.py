"""Server-sent event responses that keep their media type.

A handler that answers either JSON or an event stream (`stream: true`) has JSON as its
declared media type, and Litestar passes the handler's media type to the streaming
response, where it wins over the response's own: the stream went out labelled
`application/json`. This response always says `text/event-stream`.
"""

from __future__ import annotations

from typing import Any

from litestar.response import ServerSentEvent
from litestar.response.base import ASGIResponse


class EventStream(ServerSentEvent):
    """A ServerSentEvent whose `text/event-stream` media type the handler cannot override."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        """Build the ASGI response with this response's media type."""
        kwargs["media_type"] = self.media_type
        return super().to_asgi_response(*args, **kwargs)
