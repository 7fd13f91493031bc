"""The bundled demo: Acme Robotics (tenant `acme`) and Globex Shipping (tenant `globex`).

`corpus/<tenant>/` holds each tenant's documents, with their access in `access.json`
folder files and `<file>.access.json` sidecars; `policies.yaml` holds Acme's named
policies. `USERS` are the people `gateway demo` asks questions for.
"""

from __future__ import annotations

from pathlib import Path

from policies.principal import Principal

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
POLICIES = HERE / "policies.yaml"
TENANTS = ("acme", "globex")
DEMO_ISSUER = "urn:gateway:demo"

ALICE = Principal(subject="alice", issuer=DEMO_ISSUER, tenant="acme", groups=("engineering",),
                  clearance="internal", attributes={"region": ("US",)})
BOB = Principal(subject="bob", issuer=DEMO_ISSUER, tenant="acme", groups=("finance",),
                clearance="confidential", attributes={"region": ("EU",)})
CAROL = Principal(subject="carol", issuer=DEMO_ISSUER, tenant="acme", groups=("hr", "managers"),
                  clearance="restricted", attributes={"region": ("EU",)})
DAVE = Principal(subject="dave", issuer=DEMO_ISSUER, tenant="globex", groups=("crew",),
                 clearance="internal")
USERS = (ALICE, BOB, CAROL, DAVE)

# Each question is asked by several users; their access decides what they are told.
QUESTIONS: tuple[tuple[str, tuple[Principal, ...]], ...] = (
    ("How much will salaries increase in 2026?", (ALICE, BOB, CAROL)),
    ("How many weeks of paid parental leave do new parents get?", (ALICE, DAVE)),
)
