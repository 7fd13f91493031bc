"""Claim mapping from configuration, including claims of the wrong type."""

from __future__ import annotations

import pytest

from gateway.auth.claims import claim_at, principal_from_claims
from gateway.errors import AuthenticationError
from gateway.settings import AuthSettings

BASE = {"iss": "https://idp.example", "sub": "alice"}


def principal(claims: dict, **mapping):
    return principal_from_claims({**BASE, **claims}, AuthSettings(**mapping))


def test_dotted_path_reads_nested_claims_and_exact_keys_win():
    claims = {"realm_access": {"roles": ["admin"]}, "a.b": "exact", "a": {"b": "nested"}}
    assert claim_at(claims, "realm_access.roles") == ["admin"]
    assert claim_at(claims, "a.b") == "exact"
    assert claim_at(claims, "realm_access.missing.deeper") is None
    assert claim_at({"realm_access": ["not", "a", "map"]}, "realm_access.roles") is None


def test_auth0_namespaced_claims_are_read_as_written():
    p = principal({"https://example.com/roles": ["ingest"], "https://example.com/tenant": "acme"},
                  claim_roles="https://example.com/roles", claim_tenant="https://example.com/tenant")
    assert (p.roles, p.tenant) == (("ingest",), "acme")


def test_entra_style_mapping_oid_tid_groups_roles():
    p = principal({"oid": "00000000-0000-0000-0000-00000000000a", "tid": "72f988bf",
                   "groups": ["b1c2"], "roles": ["Gateway.Admin"]},
                  claim_subject="oid", claim_tenant="tid")
    assert p.subject == "00000000-0000-0000-0000-00000000000a"
    assert (p.tenant, p.groups, p.roles) == ("72f988bf", ("b1c2",), ("Gateway.Admin",))


@pytest.mark.parametrize(
    ("claims", "expected_groups"),
    [
        ({"groups": "Finance Team"}, ("Finance Team",)),  # a lone string is one group, not two
        ({"groups": ["a", 1, None, {"x": 1}, ["b"], True, "a", "  ", "c"]}, ("a", "1", "c")),
        ({"groups": {"finance": True}}, ()),
        ({"groups": True}, ()),
        ({"groups": 3.5}, ()),
        ({"groups": None}, ()),
        ({}, ()),
        ({"groups": ["x" * 300, "ok"]}, ("ok",)),
    ],
    ids=["string", "mixed-list", "object", "bool", "float", "null", "absent", "overlong-item"],
)
def test_multi_valued_claims_of_the_wrong_type_grant_nothing_unexpected(claims, expected_groups):
    assert principal(claims).groups == expected_groups


def test_group_lists_are_bounded():
    assert len(principal({"groups": [f"g{n}" for n in range(5000)]}).groups) == 500


def test_scope_claims_are_split_on_spaces():
    assert principal({"scp": "Search.Read  Gateway.Admin"}, claim_roles="scp").roles == (
        "Search.Read", "Gateway.Admin")
    assert principal({"scope": "openid ingest"}, claim_roles="scope").roles == ("openid", "ingest")


@pytest.mark.parametrize(
    ("claims", "tenant"),
    [({"tenant": "acme"}, "acme"), ({"tenant": ["acme"]}, "acme"), ({"tenant": 42}, "42"),
     ({"tenant": []}, "default"), ({}, "default"), ({"tenant": "  "}, "default")],
    ids=["string", "one-item-list", "number", "empty-list", "absent", "blank"],
)
def test_single_valued_claims_are_read_when_unambiguous(claims, tenant):
    assert principal(claims).tenant == tenant


@pytest.mark.parametrize(
    "claims",
    [{"tenant": ["acme", "globex"]}, {"tenant": {"id": "acme"}}, {"tenant": True},
     {"clearance": ["public", "restricted"]}, {"clearance": {"level": 3}}, {"tenant": "t" * 300}],
    ids=["two-tenants", "tenant-object", "tenant-bool", "two-clearances", "clearance-object",
         "tenant-overlong"],
)
def test_ambiguous_single_valued_claims_refuse_the_token(claims):
    with pytest.raises(AuthenticationError) as caught:
        principal(claims)
    assert caught.value.reason.startswith("malformed claim")


@pytest.mark.parametrize(
    "subject", [None, "", "   ", "two words", ["a", "b"], {"id": 1}, True, "s" * 300],
    ids=["missing", "empty", "blank", "whitespace", "list", "object", "bool", "overlong"],
)
def test_subject_must_be_one_usable_string(subject):
    claims = {**BASE, "sub": subject} if subject is not None else {"iss": BASE["iss"]}
    with pytest.raises(AuthenticationError):
        principal_from_claims(claims, AuthSettings())


def test_configured_subject_claim_missing_is_refused_even_with_sub_present():
    with pytest.raises(AuthenticationError) as caught:
        principal({}, claim_subject="oid")
    assert caught.value.reason == "malformed claim: oid"


def test_attributes_are_copied_by_name_and_empty_ones_dropped():
    p = principal({"region": "EU", "department": ["legal", "tax"], "cost_center": None},
                  claim_attributes=("region", "department", "cost_center"))
    assert dict(p.attributes) == {"region": ("EU",), "department": ("legal", "tax")}


def test_issuer_of_the_wrong_type_is_not_copied():
    assert principal({"iss": ["x"]}).issuer == ""
