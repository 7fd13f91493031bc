"""A synthetic corpus with realistic access blocks, and the principals that probe it.

Vectors: 384-d, normalised, clustered in two levels (16 super-topics of 32 topics;
documents near a topic, chunks near their document), near a 48-d subspace. Queries are new "chunks" of
the twelve *near* super-topics. The four *far* super-topics hold only documents
that typical queries never come close to: the anti-correlated cases.

Access (fractions of all chunks, measured again at run time from the database):
- tenants: acme ~98.9%, globex ~1% (far topics only), initech ~0.1%;
- every acme document allows `group:staff`, one department group drawn from a Zipf
  law over 200 departments, and nested selectivity groups `group:sel-10pct` ...
  `group:sel-0.01pct`; 2% are also shared with a user directly;
- classification public/internal/confidential/restricted 20/50/20/10%;
- `group:contractors` is denied on 90% of acme documents, single users on 1%;
- 5% carry the condition region in [EU]; 1% expired (valid_until in the past);
- 1% of acme documents lie in the far topics and allow `group:far-1pct` (a tenth of
  them also `group:far-0.1pct`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from policies.principal import Principal

DIMENSION = 384
LATENT = 48
SUPER_TOPICS = 16
NEAR_SUPER_TOPICS = 12
TOPICS_PER_SUPER = 32
DEPARTMENTS = 200
USERS = 500
LEVEL_WEIGHTS = (0.2, 0.5, 0.2, 0.1)
LEVELS = ("public", "internal", "confidential", "restricted")
SELECTIVITY_GROUPS = (("sel-10pct", 0.1), ("sel-1pct", 0.01), ("sel-0.1pct", 0.001),
                      ("sel-0.01pct", 0.0001))
EXPIRED = datetime(2020, 1, 1, tzinfo=UTC)
WORDS = [
    "policy", "ledger", "quarterly", "revenue", "forecast", "onboarding", "laptop", "travel",
    "expense", "contract", "vendor", "audit", "security", "incident", "roadmap", "launch",
    "customer", "renewal", "pricing", "margin", "payroll", "benefits", "hiring", "review",
    "compliance", "retention", "backup", "network", "outage", "release", "design", "budget",
    "region", "office", "legal", "privacy", "training", "handbook", "procedure",
]


@dataclass(frozen=True)
class Cell:
    """One row of the benchmark table: a principal and what it is meant to exercise."""

    name: str
    principal: Principal
    note: str


def cells() -> list[Cell]:
    """The principals probed by the benchmark, from everything visible to almost nothing."""
    eu = {"region": ("EU",)}

    def acme(sub: str, groups: tuple[str, ...], clearance: str = "restricted",
             attributes: dict[str, tuple[str, ...]] | None = None) -> Principal:
        return Principal(subject=sub, tenant="acme", groups=groups, clearance=clearance,
                         attributes=eu if attributes is None else attributes)

    return [
        Cell("100%", acme("ceo", ("staff",)), "whole tenant"),
        Cell("10%", acme("p10", ("sel-10pct",)), "one group"),
        Cell("1%", acme("p1", ("sel-1pct",)), "one group"),
        Cell("0.1%", acme("p01", ("sel-0.1pct",)), "one group"),
        Cell("0.01%", acme("p001", ("sel-0.01pct",)), "one group"),
        Cell("combined", acme("u7", ("dept-3", "dept-17"), "internal", {"region": ("US",)}),
             "tenant AND (user OR 2 groups) AND clearance AND conditions"),
        Cell("deny-heavy", acme("c1", ("staff", "contractors")),
             "allowed everything, denied on 90%"),
        Cell("anti 1%", acme("f1", ("far-1pct",)), "permitted far from queries"),
        Cell("anti 0.1%", acme("f01", ("far-0.1pct",)), "permitted far from queries"),
        Cell("anti tenant", Principal(subject="g1", tenant="globex", groups=("staff",),
                                      clearance="restricted"), "small tenant, far topics"),
    ]


class Geometry:
    """Topic centroids (fixed by the seed); chunks and queries are drawn around them.

    Vectors live near a 48-dimensional subspace of the 384 dimensions (plus isotropic
    noise), which gives a local intrinsic dimensionality of about 16 and a relative
    contrast of about 3.6 at k=10: close to sentence embeddings of real text, where
    purely isotropic clusters would make every neighbour nearly equidistant.
    """

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.basis = np.linalg.qr(rng.standard_normal((DIMENSION, LATENT)))[0]
        supers = rng.standard_normal((SUPER_TOPICS, LATENT))
        offsets = 0.6 * rng.standard_normal((SUPER_TOPICS * TOPICS_PER_SUPER, LATENT))
        self.topics = np.repeat(supers, TOPICS_PER_SUPER, axis=0) + offsets

    @staticmethod
    def topic(rng: np.random.Generator, far: bool) -> int:
        """A random topic of the near (query) or far super-topics."""
        first = NEAR_SUPER_TOPICS if far else 0
        last = SUPER_TOPICS if far else NEAR_SUPER_TOPICS
        return int(rng.integers(first * TOPICS_PER_SUPER, last * TOPICS_PER_SUPER))

    def around(self, rng: np.random.Generator, topic: int, count: int) -> np.ndarray:
        """A document centre near `topic`, then `count` chunk vectors near that centre."""
        centre = self.topics[topic] + 0.6 * rng.standard_normal(LATENT)
        latent = centre + 0.5 * rng.standard_normal((count, LATENT))
        noise = 0.3 * np.sqrt(LATENT / DIMENSION) * rng.standard_normal((count, DIMENSION))
        return _unit(latent @ self.basis.T + noise).astype(np.float32)

    def queries(self, count: int, seed: int) -> np.ndarray:
        """Query vectors: unseen chunks of random near topics (typical questions)."""
        rng = np.random.default_rng(seed)
        return np.vstack([self.around(rng, self.topic(rng, far=False), 1) for _ in range(count)])


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


@dataclass(frozen=True)
class SyntheticDocument:
    """One document: its access block (wire form) and its chunk vectors and texts."""

    id: uuid.UUID
    external_id: str
    tenant: str
    access: dict[str, object]
    vectors: np.ndarray
    texts: tuple[str, ...]


class CorpusGenerator:
    """Draws documents until the requested number of chunks exists (deterministic per seed)."""

    def __init__(self, chunks: int, seed: int = 7) -> None:
        self.chunks = chunks
        self.geometry = Geometry(seed)
        self.rng = np.random.default_rng(seed + 1)
        weights = 1.0 / np.arange(1, DEPARTMENTS + 1) ** 1.1
        self._department_p = weights / weights.sum()

    def documents(self) -> Iterator[SyntheticDocument]:
        """Yield documents in ingestion order (tenants and topics interleaved)."""
        made = 0
        number = 0
        while made < self.chunks:
            count = min(int(self.rng.integers(4, 13)), self.chunks - made)
            yield self._document(number, count)
            made += count
            number += 1

    def _document(self, number: int, count: int) -> SyntheticDocument:
        draw = self.rng.random()
        if draw < 0.001:
            tenant, far, access = "initech", False, {"allow": ["group:staff"]}
        elif draw < 0.011:
            tenant, far, access = "globex", True, {"allow": ["group:staff"]}
        else:
            far = self.rng.random() < 0.01
            tenant, access = "acme", self._acme_access(far)
        access["classification"] = LEVELS[int(self.rng.choice(4, p=LEVEL_WEIGHTS))]
        topic = self.geometry.topic(self.rng, far)
        vectors = self.geometry.around(self.rng, topic, count)
        texts = tuple(self._text(number, i) for i in range(count))
        return SyntheticDocument(uuid.UUID(int=int(self.rng.integers(2**62)) << 64 | number),
                                 f"doc-{number}", tenant, access, vectors, texts)

    def _acme_access(self, far: bool) -> dict[str, object]:
        rng = self.rng
        allow = ["group:staff", f"group:dept-{int(rng.choice(DEPARTMENTS, p=self._department_p))}"]
        if far:
            allow.append("group:far-1pct")
            if rng.random() < 0.1:
                allow.append("group:far-0.1pct")
        else:
            u = rng.random()
            allow += [f"group:{name}" for name, share in SELECTIVITY_GROUPS if u < share]
        if rng.random() < 0.02:
            allow.append(f"user:u{int(rng.integers(USERS))}")
        deny = ["group:contractors"] if rng.random() < 0.9 else []
        if rng.random() < 0.01:
            deny.append(f"user:u{int(rng.integers(USERS))}")
        access: dict[str, object] = {"allow": allow, "deny": deny}
        if rng.random() < 0.05:
            access["conditions"] = {"region": ["EU"]}
        if rng.random() < 0.01:
            access["valid_until"] = EXPIRED.isoformat()
        return access

    def _text(self, number: int, ordinal: int) -> str:
        words = self.rng.choice(len(WORDS), size=70)
        return f"Document {number} part {ordinal}: " + " ".join(WORDS[w] for w in words)


def sha256(text: str) -> str:
    """Hex SHA-256 of a text, as ingestion stores it."""
    return hashlib.sha256(text.encode()).hexdigest()
