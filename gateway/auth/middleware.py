"""Bearer-token authentication for every non-public route.

`Authorization: Bearer <JWT>` (scheme case-insensitive, RFC 7235 §2.1) becomes a
Principal on `request.user`, or the request ends with 401. Only handlers marked
`opt={"public": True}` (and /schema*) are skipped; so is the OPTIONS handler Litestar
adds to a route, when every other handler of that route is public. Tokens in query strings are
never read (RFC 6750 §2.3 is not supported on purpose). Every failure is logged with its
reason and counted; the token itself is never logged.
"""

from __future__ import annotations

import structlog
from litestar.connection import ASGIConnection
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.auth.claims import principal_from_claims
from gateway.auth.tokens import KeySource, VerificationPolicy, VerifiedTokens, verify_token
from gateway.errors import AuthenticationError
from gateway.metrics import Metrics
from gateway.settings import AuthSettings

log = structlog.get_logger("gateway.auth")
PUBLIC_PATHS = ["^/schema"]


def bearer_token(connection: ASGIConnection) -> str:
    """Extract the token from exactly one Authorization header with the Bearer scheme."""
    values = connection.headers.getall("authorization", [])
    if not values:
        raise AuthenticationError("no credentials", token_presented=False)
    if len(values) > 1:
        raise AuthenticationError("multiple authorization headers")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError("unsupported scheme", token_presented=False)
    token = token.strip()
    if not token or " " in token:
        raise AuthenticationError("malformed bearer credentials")
    return token


class BearerAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Verifies the bearer token and maps its claims to a Principal."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeySource,
        policy: VerificationPolicy,
        settings: AuthSettings,
        metrics: Metrics,
    ) -> None:
        super().__init__(app, exclude=PUBLIC_PATHS, exclude_from_auth_key="public",
                         exclude_http_methods=[])
        self.keys = keys
        self.policy = policy
        self.settings = settings
        self.metrics = metrics
        self.verified = VerifiedTokens(settings.token_cache_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate, unless this is the generated OPTIONS handler of a public route."""
        if scope.get("method") == "OPTIONS" and _public_route(scope):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        """Return the principal or raise AuthenticationError (translated to 401)."""
        try:
            token = bearer_token(connection)
            claims = await verify_token(token, self.keys, self.policy, self.verified)
            principal = principal_from_claims(claims, self.settings)
        except AuthenticationError as exc:
            self.metrics.auth_failures.labels(exc.reason.split(":")[0]).inc()
            log.warning("authentication_failed", reason=exc.reason, path=connection.url.path)
            raise
        structlog.contextvars.bind_contextvars(subject=principal.subject, tenant=principal.tenant)
        return AuthenticationResult(user=principal, auth=claims)


def _public_route(scope: Scope) -> bool:
    """Whether this is Litestar's generated OPTIONS handler on a route whose handlers are public."""
    handler = scope.get("route_handler")
    app = scope.get("litestar_app")
    generated = getattr(getattr(handler, "fn", None), "__qualname__", "").startswith(
        "HTTPRoute.create_options_handler"
    )
    if not generated or app is None:
        return False
    for route in app.routes:
        if isinstance(route, HTTPRoute) and route.path in handler.paths:
            others = [h for h in route.route_handlers if h is not handler]
            return bool(others) and all(h.opt.get("public") for h in others)
    return False
