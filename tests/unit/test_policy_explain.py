"""Explain traces a decision rule by rule, for people and as data."""

from datetime import UTC, datetime

from policies.evaluate import decide
from policies.explain import explain_json, explain_text
from policies.model import AccessRule, ClassificationLevels, parse_access
from policies.principal import Principal

LEVELS = ClassificationLevels()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
BOB = Principal(subject="bob", tenant="acme", groups=("contractors",), clearance="internal",
                attributes={"region": ("US",)})


def test_denied_trace_names_every_rule_and_the_first_refusal():
    access = parse_access({"tenant": "acme", "allow": ["everyone"], "deny": ["group:contractors"],
                           "policy": "eu-only"}, LEVELS)
    decision = decide(BOB, access, AccessRule(allow=("everyone",), conditions={"region": ("EU",)}),
                      now=NOW, levels=LEVELS)
    text = explain_text(decision, BOB, "hr-handbook")
    assert text.splitlines()[0].startswith("DENIED: user:bob tenant=acme groups=contractors")
    assert "[FAIL] document" in text and "denied by group:contractors" in text
    assert "[FAIL] policy:eu-only  conditions" in text
    assert "[pass] policy:eu-only  policy" in text
    assert text.splitlines()[-1] == "  refused first by: document deny"


def test_allowed_json_carries_the_granting_principal():
    access = parse_access({"tenant": "acme", "allow": ["user:bob"]}, LEVELS)
    body = explain_json(decide(BOB, access, now=NOW, levels=LEVELS))
    assert body["allowed"] is True
    assert body["granted_by"] == "user:bob"
    assert {r["rule"] for r in body["reasons"]} == {
        "tenant", "deny", "allow", "classification", "conditions", "validity"}
    assert all(r["passed"] for r in body["reasons"])
