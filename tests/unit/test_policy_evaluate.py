"""The reference evaluator: each SPEC §6 rule on its own, and the reasons it gives."""

from datetime import UTC, datetime, timedelta

import pytest

from policies.evaluate import decide
from policies.model import AccessRule, ClassificationLevels, DocumentAccess, parse_access
from policies.principal import Principal

LEVELS = ClassificationLevels()
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def alice(**changes):
    base = {"subject": "alice", "tenant": "acme", "groups": ("finance",), "roles": ("analyst",),
            "clearance": "confidential", "attributes": {"region": ("EU",)}}
    return Principal(**{**base, **changes})


def access(tenant="acme", policy=None, **rule):
    return parse_access({"tenant": tenant, "policy": policy, **rule}, LEVELS)


def test_group_member_is_allowed_and_the_matching_principal_is_named():
    decision = decide(alice(), access(allow=["group:finance"]), now=NOW, levels=LEVELS)
    assert decision.allowed
    assert decision.granted_by == "group:finance"
    assert [r.rule for r in decision.reasons] == [
        "tenant", "deny", "allow", "classification", "conditions", "validity"]


def test_other_tenant_sees_nothing_even_when_allowed_by_everyone():
    decision = decide(alice(tenant="globex"), access(allow=["everyone"]), now=NOW, levels=LEVELS)
    assert not decision.allowed
    assert [r.rule for r in decision.failed] == ["tenant"]


def test_deny_wins_over_allow():
    decision = decide(alice(), access(allow=["everyone"], deny=["role:analyst"]), now=NOW, levels=LEVELS)
    assert not decision.allowed
    assert decision.failed[0].rule == "deny"
    assert decision.failed[0].matched == ("role:analyst",)
    assert decision.granted_by is None


def test_empty_allow_admits_nobody():
    rule = AccessRule(allow=())
    decision = decide(alice(), DocumentAccess("acme", rule), now=NOW, levels=LEVELS)
    assert not decision.allowed
    assert "nobody" in decision.failed[0].detail


def test_not_named_in_allow_is_refused():
    decision = decide(alice(), access(allow=["user:bob", "group:hr"]), now=NOW, levels=LEVELS)
    assert [r.rule for r in decision.failed] == ["allow"]


@pytest.mark.parametrize(
    ("clearance", "level", "allowed"),
    [
        ("confidential", "confidential", True),
        ("confidential", "restricted", False),
        ("public", "internal", False),
        (None, "internal", True),          # default clearance is internal
        (None, "confidential", False),
        ("top-secret", "internal", True),  # unknown clearance counts as the default
        ("top-secret", "confidential", False),
        ("restricted", "public", True),
    ],
)
def test_clearance_must_reach_the_classification_level(clearance, level, allowed):
    decision = decide(alice(clearance=clearance), access(allow=["everyone"], classification=level),
                      now=NOW, levels=LEVELS)
    assert decision.allowed is allowed


def test_every_condition_must_hold():
    rule = {"allow": ["everyone"], "conditions": {"region": ["EU", "UK"], "department": ["legal"]}}
    legal_eu = alice(attributes={"region": ("EU",), "department": ("legal", "hr")})
    hr_eu = alice(attributes={"region": ("EU",), "department": ("hr",)})
    assert decide(legal_eu, access(**rule), now=NOW, levels=LEVELS).allowed
    refused = decide(hr_eu, access(**rule), now=NOW, levels=LEVELS)
    assert not refused.allowed
    assert "department ['hr'] is not one of ['legal']" in refused.failed[0].detail


def test_principal_lacking_a_conditioned_attribute_fails():
    decision = decide(alice(attributes={}), access(allow=["everyone"], conditions={"region": ["EU"]}),
                      now=NOW, levels=LEVELS)
    assert not decision.allowed
    assert "no 'region' attribute" in decision.failed[0].detail


def test_valid_from_is_inclusive_and_valid_until_exclusive():
    start, end = NOW, NOW + timedelta(hours=1)
    doc = access(allow=["everyone"], valid_from=start.isoformat(), valid_until=end.isoformat())
    at = lambda t: decide(alice(), doc, now=t, levels=LEVELS).allowed  # noqa: E731
    assert not at(start - timedelta(microseconds=1))
    assert at(start)
    assert at(end - timedelta(microseconds=1))
    assert not at(end)


def test_document_and_named_policy_must_both_admit():
    doc = access(allow=["group:finance"], policy="eu-only")
    eu_only = AccessRule(allow=("everyone",), conditions={"region": ("EU",)})
    assert decide(alice(), doc, eu_only, now=NOW, levels=LEVELS).allowed
    us = alice(attributes={"region": ("US",)})
    refused = decide(us, doc, eu_only, now=NOW, levels=LEVELS)
    assert [(r.source, r.rule) for r in refused.failed] == [("policy:eu-only", "conditions")]


def test_named_policy_deny_wins_over_document_allow():
    doc = access(allow=["user:alice"], policy="no-analysts")
    policy = AccessRule(allow=("everyone",), deny=("role:analyst",))
    decision = decide(alice(), doc, policy, now=NOW, levels=LEVELS)
    assert not decision.allowed
    assert decision.failed[0].source == "policy:no-analysts"


def test_missing_named_policy_admits_nobody():
    decision = decide(alice(), access(allow=["everyone"], policy="gone"), None, now=NOW, levels=LEVELS)
    assert not decision.allowed
    assert [(r.source, r.rule) for r in decision.failed] == [("policy:gone", "policy")]


def test_document_deferring_to_a_policy_admits_the_tenant_on_its_own_part():
    decision = decide(alice(), access(policy="open"), AccessRule(allow=("group:finance",)),
                      now=NOW, levels=LEVELS)
    assert decision.allowed
    assert decision.granted_by == "everyone"


def test_stored_tenant_is_used_when_the_block_leaves_it_implicit():
    doc = parse_access({"allow": ["everyone"]}, LEVELS)
    assert decide(alice(), doc, now=NOW, levels=LEVELS, tenant="acme").allowed
    assert not decide(alice(), doc, now=NOW, levels=LEVELS).allowed


def test_every_rule_is_reported_even_after_a_failure():
    decision = decide(alice(tenant="globex", clearance="public"),
                      access(allow=["user:bob"], deny=["group:finance"], classification="restricted",
                             conditions={"site": ["x"]}, valid_until="2020-01-01T00:00:00Z"),
                      now=NOW, levels=LEVELS)
    assert [r.rule for r in decision.failed] == [
        "tenant", "deny", "allow", "classification", "conditions", "validity"]


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone"):
        decide(alice(), access(allow=["everyone"]), now=datetime(2026, 1, 1), levels=LEVELS)


def test_custom_levels_order_clearances():
    levels = ClassificationLevels(names=("low", "high"), default_document="low", default_clearance="low")
    doc = parse_access({"tenant": "acme", "allow": ["everyone"], "classification": "high"}, levels)
    assert not decide(alice(clearance="low"), doc, now=NOW, levels=levels).allowed
    assert decide(alice(clearance="high"), doc, now=NOW, levels=levels).allowed


@pytest.mark.parametrize("changes", [{"subject": ""}, {"tenant": ""}])
def test_principal_without_subject_or_tenant_sees_nothing(changes):
    principal = alice(**changes)
    everyone_there = DocumentAccess(principal.tenant, AccessRule(allow=("everyone",)))
    decision = decide(principal, everyone_there, now=NOW, levels=LEVELS)
    assert not decision.allowed
    assert decision.failed[0].detail == "the principal has no subject or no tenant"
