"""Prometheus metrics, one registry per app (no module-level collectors)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class Metrics:
    """All collectors the gateway exports at /metrics."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "gateway_requests_total", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.request_latency = Histogram(
            "gateway_request_seconds", "HTTP request latency", ["route", "method"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge("gateway_requests_in_flight", "Requests being served", registry=r)
        self.rejected_overload = Counter(
            "gateway_overload_rejections_total", "Requests refused with 503 (too many)", registry=r
        )
        self.deadline_exceeded = Counter(
            "gateway_request_deadline_exceeded_total",
            "Requests answered 503 at GATEWAY_REQUEST_TIMEOUT_SECONDS", registry=r,
        )
        self.auth_failures = Counter(
            "gateway_auth_failures_total", "Failed authentications", ["reason"], registry=r
        )
        self.retrieval_latency = Histogram(
            "gateway_retrieval_seconds", "Retrieval SQL latency", ["plan"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.audit_latency = Histogram(
            "gateway_audit_write_seconds", "Audit write latency", buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.audit_chain_lock = Histogram(
            "gateway_audit_chain_lock_seconds",
            "Time an audit append holds its tenant's chain lock (lock granted to commit)",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1),
            registry=r,
        )
        self.audit_failures = Counter(
            "gateway_audit_failures_total", "Audit writes that failed", registry=r
        )
        self.policy_denials = Counter(
            "gateway_policy_denials_total", "Requests refused by access policy", ["action"],
            registry=r,
        )
        self.llm_latency = Histogram(
            "gateway_llm_seconds", "LLM upstream latency", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.llm_errors = Counter(
            "gateway_llm_errors_total", "LLM upstream errors", ["kind"], registry=r
        )
        self.citations_removed = Counter(
            "gateway_citations_removed_total", "Citations to unaudited sources removed", registry=r
        )
        self.pool_in_use = Gauge(
            "gateway_db_pool_in_use", "Database connections checked out", registry=r
        )
        self.pool_size = Gauge("gateway_db_pool_size", "Database pool size", registry=r)
