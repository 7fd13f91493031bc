"""Random access-control worlds for property tests, decoded from Hypothesis-drawn bytes.

A world is a few documents (tenant + access block, possibly referencing a named policy),
the named policies that exist, and questions (a principal at a time). Everything is
drawn from small vocabularies so that matches, denials and edge cases are all frequent:
principal strings with characters that need quoting in array literals, attribute
conditions the principal may lack, and times exactly on, and one microsecond either
side of, the validity bounds.

Worlds are decoded from one drawn byte string rather than from hundreds of small
draws: 2,000 worlds then cost well under a second to generate, and Hypothesis still
shrinks a failure (zero bytes decode to the simplest choices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from policies.model import AccessRule, ClassificationLevels, DocumentAccess
from policies.principal import Principal

T = TypeVar("T")
LEVELS = ClassificationLevels()
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EDGES = tuple(T0 + timedelta(microseconds=d) for d in (-1_000_000, -1, 0, 1, 1_000_000))
TENANTS = ("a", "a", "a", "a", "a", "b")
USERS = ("u1", "u2", 'we,ird"{}')
SUBJECTS = (*USERS, *USERS, "")  # now and then a principal without a subject: it sees nothing
GROUPS = ("g1", "g2", "{x}")
ROLES = ("r1", "r2")
PRINCIPAL_STRINGS = (*(f"user:{u}" for u in USERS), *(f"group:{g}" for g in GROUPS),
                     *(f"role:{r}" for r in ROLES), "everyone")
ATTRIBUTES = {"region": ("EU", "US"), "dept": ("legal", "hr")}
POLICY_NAMES = ("p1", "p2", "p3")  # each is missing in some worlds (then it admits nobody)
CLASSIFICATIONS = ("public", "public", "internal", "internal", "confidential", "restricted")
CLEARANCES = (*LEVELS.names, "confidential", "restricted", None, "unknown-level")
WORLD_BYTES = 400


@dataclass(frozen=True)
class World:
    """Documents (tenant, access), named policies by (tenant, name), and who asks when."""

    documents: tuple[tuple[str, DocumentAccess], ...]
    policies: dict[tuple[str, str], AccessRule]
    questions: tuple[tuple[Principal, datetime], ...]

    def named_policy(self, tenant: str, access: DocumentAccess) -> AccessRule | None:
        """The rule of the policy the document references, if it exists in the document's tenant."""
        return self.policies.get((tenant, access.policy)) if access.policy else None


class Choices:
    """Reads choices from bytes; past the end every choice is 0 (the simplest)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def number(self, n: int) -> int:
        """A number in [0, n)."""
        width = max(1, (n - 1).bit_length() + 7 >> 3)
        chunk = self.data[self.at:self.at + width]
        self.at += width
        return int.from_bytes(chunk, "big") % n if chunk else 0

    def chance(self, n: int) -> bool:
        """True about once in `n` (and for zero bytes)."""
        return self.number(n) == 0

    def pick(self, values: Sequence[T]) -> T:
        """One of `values`."""
        return values[self.number(len(values))]

    def subset(self, values: Sequence[T], *, sparse: bool = False) -> tuple[T, ...]:
        """Each value kept with probability 1/2, or 1/4 when `sparse`."""
        mask = self.number(1 << len(values))
        if sparse:
            mask &= self.number(1 << len(values))
        return tuple(v for i, v in enumerate(values) if mask >> i & 1)

    def optional_time(self) -> datetime | None:
        """None two times in three, otherwise a validity edge."""
        return self.pick(EDGES) if self.chance(3) else None

    def rule(self) -> AccessRule:
        """A random access rule."""
        return AccessRule(
            allow=("everyone",) if self.chance(2) else self.subset(PRINCIPAL_STRINGS, sparse=True),
            deny=self.subset(PRINCIPAL_STRINGS, sparse=True) if self.chance(4) else (),
            classification=self.pick(CLASSIFICATIONS),
            conditions=self.conditions() if self.chance(3) else {},
            valid_from=self.optional_time(),
            valid_until=self.optional_time(),
        )

    def conditions(self) -> dict[str, tuple[str, ...]]:
        """Conditions on some attributes, each allowing a non-empty set of values."""
        result = {}
        for name in self.subset(sorted(ATTRIBUTES)):
            values = self.subset(ATTRIBUTES[name])
            result[name] = values or ATTRIBUTES[name][:1]
        return result

    def principal(self) -> Principal:
        """A random principal (its attributes may be missing or empty)."""
        return Principal(
            subject=self.pick(SUBJECTS),
            tenant=self.pick(TENANTS),
            groups=self.subset(GROUPS),
            roles=self.subset(ROLES),
            clearance=self.pick(CLEARANCES),
            attributes={k: self.subset(ATTRIBUTES[k]) for k in self.subset(sorted(ATTRIBUTES))},
        )


def decode_world(data: bytes) -> World:
    """The world `data` describes: 0-6 named policies, 1-6 documents, 2-4 questions."""
    c = Choices(data)
    policies = {(c.pick(TENANTS), c.pick(POLICY_NAMES)): c.rule() for _ in range(c.number(7))}
    documents = tuple(
        (c.pick(TENANTS), DocumentAccess(None, c.rule(), c.pick((None, None, None, *POLICY_NAMES))))
        for _ in range(1 + c.number(6))
    )
    questions = tuple((c.principal(), c.pick(EDGES)) for _ in range(2 + c.number(3)))
    return World(documents, policies, questions)
