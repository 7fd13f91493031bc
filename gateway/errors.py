"""The one tree of domain errors; `gateway.api.problems` translates it to RFC 9457 once.

GatewayError
├── ConfigurationError      bad settings (startup refuses to run)
├── AuthenticationError     no or bad credentials (401)
├── PermissionDeniedError   authenticated, lacking a role (403)
├── NotFoundError           absent or not visible to the caller (404)
├── ConflictError           state forbids the change (409)
├── InvalidInputError       well-formed request, unacceptable content (422)
├── PayloadTooLargeError    (413)
├── UnsupportedMediaError   (415)
├── UnavailableError        a dependency we need is down (503)
│   └── AuditUnavailableError   the audit record could not be committed
├── UpstreamTimeoutError    the LLM did not answer in time (504)
└── UpstreamError           the LLM answered garbage (502)

Services raise these; they never raise HTTP exceptions.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    status_code = 500
    title = "Internal error"

    def __init__(self, detail: str = "", **extra: object) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class ConfigurationError(GatewayError):
    """Settings are missing or invalid; the process must not start."""

    title = "Invalid configuration"


class AuthenticationError(GatewayError):
    """Credentials are missing or invalid. `reason` is logged, never returned."""

    status_code = 401
    title = "Unauthorized"

    def __init__(self, reason: str, *, token_presented: bool = True) -> None:
        super().__init__("Missing or invalid bearer token.")
        self.reason = reason
        self.token_presented = token_presented


class PermissionDeniedError(GatewayError):
    """The caller is authenticated but lacks the gateway role the operation needs."""

    status_code = 403
    title = "Forbidden"


class NotFoundError(GatewayError):
    """The resource does not exist or the caller may not know it exists."""

    status_code = 404
    title = "Not found"


class ConflictError(GatewayError):
    """The change conflicts with current state."""

    status_code = 409
    title = "Conflict"


class InvalidInputError(GatewayError):
    """The request parsed but its content is unacceptable."""

    status_code = 422
    title = "Unprocessable content"


class PayloadTooLargeError(GatewayError):
    """The request or document is larger than the configured limit."""

    status_code = 413
    title = "Payload too large"


class UnsupportedMediaError(GatewayError):
    """The content type cannot be ingested."""

    status_code = 415
    title = "Unsupported media type"


class UnavailableError(GatewayError):
    """A dependency (database, embedder) is unavailable; the client may retry."""

    status_code = 503
    title = "Service unavailable"


class AuditUnavailableError(UnavailableError):
    """The audit record could not be committed, so nothing may be generated."""

    title = "Audit unavailable"


class UpstreamTimeoutError(GatewayError):
    """The generation upstream did not answer within its timeout."""

    status_code = 504
    title = "Upstream timeout"


class UpstreamError(GatewayError):
    """The generation upstream answered with something unusable."""

    status_code = 502
    title = "Bad upstream response"
