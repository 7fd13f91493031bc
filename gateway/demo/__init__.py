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

USERS = (
    Principal(subject="alice", tenant="acme", groups=("engineering",), clearance="internal",
              attributes={"region": ("US",)}),
    Principal(subject="bob", tenant="acme", groups=("finance",), clearance="confidential",
              attributes={"region": ("EU",)}),
    Principal(subject="carol", tenant="acme", groups=("hr", "managers"), clearance="restricted",
              attributes={"region": ("EU",)}),
    Principal(subject="dave", tenant="globex", groups=("crew",), clearance="internal"),
)
QUESTIONS = (
    "How much will salaries increase in 2026?",
    "How many weeks of paid parental leave do new parents get?",
)
