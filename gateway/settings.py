"""Frozen, per-concern settings read once from `GATEWAY_*` variables (and an optional `.env`).

Every field names the variable it comes from, so a bad value fails startup with an
error that names that variable. Unknown `GATEWAY_*` variables are refused too: a typo
in a security setting must not silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from gateway.errors import ConfigurationError
from policies.model import ClassificationLevels

T = TypeVar("T")


def env(name: str, default: Any, parse: Callable[[str], Any] | None = None) -> Any:
    """Declare a settings field read from the environment variable `name`."""
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple default")
    return field(default=default, metadata={"env": name, "parse": parse})


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must be zero or a positive number")
    return value


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


def _optional_str(raw: str) -> str | None:
    return raw.strip() or None


def _optional_path(raw: str) -> Path | None:
    return Path(raw.strip()) if raw.strip() else None


@dataclass(frozen=True)
class DatabaseSettings:
    """Where PostgreSQL is. No `url` means an embedded server under `data_dir`."""

    url: str | None = env("DATABASE_URL", None, _optional_str)
    migration_url: str | None = env("GATEWAY_MIGRATION_DATABASE_URL", None, _optional_str)
    data_dir: Path = env("GATEWAY_DATA_DIR", Path(".gateway"), Path)
    pool_size: int = env("GATEWAY_DB_POOL_SIZE", 10, _positive_int)
    pool_timeout_s: float = env("GATEWAY_DB_POOL_TIMEOUT_SECONDS", 5.0, _positive_float)
    statement_timeout_ms: int = env("GATEWAY_DB_STATEMENT_TIMEOUT_MS", 15000, _positive_int)
    connect_timeout_s: int = env("GATEWAY_DB_CONNECT_TIMEOUT_SECONDS", 5, _positive_int)


@dataclass(frozen=True)
class ServerSettings:
    """HTTP serving and request limits."""

    host: str = env("GATEWAY_HOST", "127.0.0.1")
    port: int = env("GATEWAY_PORT", 8000, _positive_int)
    workers: int = env("GATEWAY_WORKERS", 1, _positive_int)
    log_level: str = env("GATEWAY_LOG_LEVEL", "info", _one_of("debug", "info", "warning", "error"))
    log_format: str = env("GATEWAY_LOG_FORMAT", "auto", _one_of("auto", "json", "console"))
    max_body_bytes: int = env("GATEWAY_MAX_BODY_BYTES", 20 * 1024 * 1024, _positive_int)
    max_header_bytes: int = env("GATEWAY_MAX_HEADER_BYTES", 32 * 1024, _positive_int)
    max_concurrency: int = env("GATEWAY_MAX_CONCURRENCY", 64, _positive_int)
    max_connections: int = env("GATEWAY_MAX_CONNECTIONS", 1024, _positive_int)
    request_timeout_s: float = env("GATEWAY_REQUEST_TIMEOUT_SECONDS", 60.0, _positive_float)
    ingest_timeout_s: float = env("GATEWAY_INGEST_TIMEOUT_SECONDS", 900.0, _positive_float)
    shutdown_timeout_s: int = env("GATEWAY_SHUTDOWN_TIMEOUT_SECONDS", 30, _positive_int)


@dataclass(frozen=True)
class AuthSettings:
    """How bearer tokens are verified and mapped to a principal (SPEC §5)."""

    oidc_issuer: str | None = env("GATEWAY_OIDC_ISSUER", None, _optional_str)
    jwks_url: str | None = env("GATEWAY_JWKS_URL", None, _optional_str)
    audience: str | None = env("GATEWAY_OIDC_AUDIENCE", None, _optional_str)
    algorithms: tuple[str, ...] = env(
        "GATEWAY_OIDC_ALGORITHMS",
        ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"),
        _csv,
    )
    leeway_s: int = env("GATEWAY_JWT_LEEWAY_SECONDS", 30, int)
    require_at_jwt: bool = env("GATEWAY_OIDC_REQUIRE_AT_JWT", False, _bool)
    jwks_timeout_s: float = env("GATEWAY_JWKS_TIMEOUT_SECONDS", 5.0, _positive_float)
    jwks_min_refresh_s: float = env("GATEWAY_JWKS_MIN_REFRESH_SECONDS", 30.0, _positive_float)
    jwks_max_age_s: float = env("GATEWAY_JWKS_MAX_AGE_SECONDS", 3600.0, _positive_float)
    token_cache_size: int = env("GATEWAY_AUTH_TOKEN_CACHE_SIZE", 4096, _non_negative_int)
    claim_subject: str = env("GATEWAY_CLAIM_SUBJECT", "sub")
    claim_groups: str = env("GATEWAY_CLAIM_GROUPS", "groups")
    claim_roles: str = env("GATEWAY_CLAIM_ROLES", "roles")
    claim_tenant: str = env("GATEWAY_CLAIM_TENANT", "tenant")
    claim_clearance: str = env("GATEWAY_CLAIM_CLEARANCE", "clearance")
    claim_attributes: tuple[str, ...] = env("GATEWAY_CLAIM_ATTRIBUTES", (), _csv)
    default_tenant: str = env("GATEWAY_DEFAULT_TENANT", "default")
    role_admin: str = env("GATEWAY_ROLE_ADMIN", "admin")
    role_ingest: str = env("GATEWAY_ROLE_INGEST", "ingest")
    role_auditor: str = env("GATEWAY_ROLE_AUDITOR", "auditor")
    dev_token_ttl_s: int = env("GATEWAY_DEV_TOKEN_TTL_SECONDS", 3600, _positive_int)

    @property
    def dev_mode(self) -> bool:
        """No IdP configured: the gateway issues and verifies its own tokens."""
        return self.oidc_issuer is None and self.jwks_url is None


@dataclass(frozen=True)
class PolicySettings:
    """Classification levels and defaults (SPEC §6)."""

    levels: tuple[str, ...] = env(
        "GATEWAY_CLASSIFICATION_LEVELS", ("public", "internal", "confidential", "restricted"), _csv
    )
    default_classification: str = env("GATEWAY_DEFAULT_CLASSIFICATION", "internal")
    default_clearance: str = env("GATEWAY_DEFAULT_CLEARANCE", "internal")

    def classification_levels(self) -> ClassificationLevels:
        """The policy engine's view of these settings."""
        return ClassificationLevels(
            names=self.levels,
            default_document=self.default_classification,
            default_clearance=self.default_clearance,
        )


@dataclass(frozen=True)
class EmbeddingSettings:
    """Which embedder turns text into vectors (SPEC §7)."""

    kind: str = env("GATEWAY_EMBEDDER", "local", _one_of("local", "openai"))
    base_url: str | None = env("GATEWAY_EMBEDDING_BASE_URL", None, _optional_str)
    model: str = env("GATEWAY_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
    api_key: str | None = env("GATEWAY_EMBEDDING_API_KEY", None, _optional_str)
    dimension: int = env("GATEWAY_EMBEDDING_DIMENSION", 384, _positive_int)
    batch_size: int = env("GATEWAY_EMBEDDING_BATCH_SIZE", 64, _positive_int)
    timeout_s: float = env("GATEWAY_EMBEDDING_TIMEOUT_SECONDS", 30.0, _positive_float)


@dataclass(frozen=True)
class IngestionSettings:
    """Limits on what may be ingested."""

    max_document_bytes: int = env("GATEWAY_MAX_DOCUMENT_BYTES", 10 * 1024 * 1024, _positive_int)
    chunk_tokens: int = env("GATEWAY_CHUNK_TOKENS", 200, _positive_int)
    chunk_overlap_tokens: int = env("GATEWAY_CHUNK_OVERLAP_TOKENS", 40, int)


@dataclass(frozen=True)
class RetrievalSettings:
    """Query limits and planner knobs (SPEC §8)."""

    max_query_chars: int = env("GATEWAY_MAX_QUERY_CHARS", 2000, _positive_int)
    max_top_k: int = env("GATEWAY_MAX_TOP_K", 50, _positive_int)
    default_top_k: int = env("GATEWAY_DEFAULT_TOP_K", 5, _positive_int)
    # Postings an exact search scores in the time of an HNSW search with ef_search 1000:
    # measured ~13,000 on a 1M-chunk index (`python -m bench.filtered_recall --calibrate`,
    # docs/benchmarks.md, gateway.retrieval.planner).
    exact_threshold: int = env("GATEWAY_EXACT_SCAN_THRESHOLD", 13000, _positive_int)
    # The smallest HNSW candidate list (broad principals): 64 gives recall@10 0.96 on the
    # 1M-chunk benchmark corpus at about 1.4x the median time of pgvector's 40 (0.93),
    # docs/decisions.md.
    ef_search: int = env("GATEWAY_HNSW_EF_SEARCH", 64, _positive_int)
    max_scan_tuples: int = env("GATEWAY_HNSW_MAX_SCAN_TUPLES", 50000, _positive_int)
    # How long a principal's permitted-set estimate is reused (0: look it up on every query).
    estimate_ttl_s: float = env("GATEWAY_PLANNER_ESTIMATE_TTL_SECONDS", 10.0, _non_negative_float)


@dataclass(frozen=True)
class LLMSettings:
    """An OpenAI-compatible chat completions upstream; no base URL means extractive answers."""

    base_url: str | None = env("GATEWAY_LLM_BASE_URL", None, _optional_str)
    model: str = env("GATEWAY_LLM_MODEL", "gpt-4o-mini")
    api_key: str | None = env("GATEWAY_LLM_API_KEY", None, _optional_str)
    timeout_s: float = env("GATEWAY_LLM_TIMEOUT_SECONDS", 30.0, _positive_float)
    max_tokens: int = env("GATEWAY_LLM_MAX_TOKENS", 800, _positive_int)


@dataclass(frozen=True)
class AuditSettings:
    """What the audit trail keeps (SPEC §9)."""

    store_query: bool = env("GATEWAY_AUDIT_STORE_QUERY", True, _bool)
    checkpoint_every: int = env("GATEWAY_AUDIT_CHECKPOINT_EVERY", 1000, _positive_int)
    signing_key: Path | None = env("GATEWAY_AUDIT_SIGNING_KEY", None, _optional_path)


@dataclass(frozen=True)
class Settings:
    """All settings, one frozen value per concern."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    ingestion: IngestionSettings = field(default_factory=IngestionSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with whole sections replaced (used by tests and the CLI)."""
        return dataclasses.replace(self, **changes)


_SECTIONS: tuple[type, ...] = tuple(f.default_factory for f in dataclasses.fields(Settings))  # type: ignore[misc]
KNOWN_VARIABLES = frozenset(
    f.metadata["env"] for section in _SECTIONS for f in dataclasses.fields(section)
)


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a `.env` file of `KEY=VALUE` lines (comments and `export ` allowed)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _build_section(cls: type[T], environ: Mapping[str, str]) -> T:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cast(Any, cls)):
        name = f.metadata["env"]
        if name not in environ:
            continue
        parse = f.metadata["parse"] or str
        try:
            kwargs[f.name] = parse(environ[name])
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"{name}={environ[name]!r} is invalid: {exc}") from None
    return cls(**kwargs)


def _validate(settings: Settings) -> None:
    policy = settings.policy
    if len(set(policy.levels)) != len(policy.levels) or not policy.levels:
        raise ConfigurationError("GATEWAY_CLASSIFICATION_LEVELS must be distinct, non-empty names")
    for name, value in (
        ("GATEWAY_DEFAULT_CLASSIFICATION", policy.default_classification),
        ("GATEWAY_DEFAULT_CLEARANCE", policy.default_clearance),
    ):
        if value not in policy.levels:
            raise ConfigurationError(f"{name}={value!r} is not one of GATEWAY_CLASSIFICATION_LEVELS")
    auth = settings.auth
    if not auth.dev_mode and not auth.audience:
        raise ConfigurationError("GATEWAY_OIDC_AUDIENCE is required when an IdP is configured")
    if auth.jwks_url and not auth.oidc_issuer:
        raise ConfigurationError(
            "GATEWAY_JWKS_URL needs GATEWAY_OIDC_ISSUER too: it is the `iss` tokens must carry"
        )
    if not 0 <= auth.leeway_s <= 300:
        raise ConfigurationError("GATEWAY_JWT_LEEWAY_SECONDS must be between 0 and 300")
    unsafe = [a for a in auth.algorithms if a.upper() == "NONE" or a.upper().startswith("HS")]
    if unsafe:
        raise ConfigurationError(f"GATEWAY_OIDC_ALGORITHMS may not contain {', '.join(unsafe)}")
    if settings.embedding.kind == "openai" and not settings.embedding.base_url:
        raise ConfigurationError("GATEWAY_EMBEDDING_BASE_URL is required when GATEWAY_EMBEDDER=openai")
    if settings.retrieval.default_top_k > settings.retrieval.max_top_k:
        raise ConfigurationError("GATEWAY_DEFAULT_TOP_K exceeds GATEWAY_MAX_TOP_K")
    if settings.server.request_timeout_s <= settings.llm.timeout_s:
        # The LLM's own timeout answers 504 and is audited; the request deadline is a backstop.
        raise ConfigurationError(
            "GATEWAY_REQUEST_TIMEOUT_SECONDS must exceed GATEWAY_LLM_TIMEOUT_SECONDS"
        )


def load_settings(
    environ: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env")
) -> Settings:
    """Read and validate settings; raise ConfigurationError naming the bad variable."""
    source: dict[str, str] = read_dotenv(dotenv) if dotenv is not None else {}
    source.update(os.environ if environ is None else environ)
    unknown = sorted(k for k in source if k.startswith("GATEWAY_") and k not in KNOWN_VARIABLES)
    if unknown:
        raise ConfigurationError(f"unknown setting {unknown[0]} (see docs/operations.md)")
    sections = {
        f.name: _build_section(cast(Any, f.default_factory), source)
        for f in dataclasses.fields(Settings)
    }
    settings = Settings(**sections)
    _validate(settings)
    return settings
