"""Policy files: valid files parse, malformed ones name the file and the field."""

from pathlib import Path

import pytest

from policies.files import PolicyFileError, describe_change, load_policy_files, plan_changes
from policies.model import ClassificationLevels

LEVELS = ClassificationLevels()
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "policies"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_files_load():
    files = load_policy_files(sorted(EXAMPLES.glob("*.yaml")), LEVELS)
    names = {p.name for f in files for p in f.policies}
    assert len(files) >= 2
    assert {"finance-eu", "legal-hold"} <= names


def test_timestamps_and_conditions_parse(tmp_path):
    path = write(tmp_path, "p.yaml", """
tenant: acme
policies:
  - name: embargo
    allow: [everyone]
    conditions: {region: [EU, UK]}
    valid_from: 2026-01-01T00:00:00Z
""")
    [file] = load_policy_files([path], LEVELS)
    policy = file.policies[0]
    assert file.tenant == "acme"
    assert policy.rule.conditions == {"region": ("EU", "UK")}
    assert policy.rule.valid_from.isoformat() == "2026-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("policies: [{name: x, allow: [managers]}]", "policies[0].allow", "is not user:"),
        ("policies: [{name: x, allow: [everyone], classification: secret}]",
         "policies[0].classification", "unknown level"),
        ("policies: [{name: Bad Name, allow: [everyone]}]", "policies[0].name", "policy name"),
        ("policies: [{name: x, allow: [everyone], colour: red}]", "policies[0].colour", "unknown field"),
        ("policies: [{name: x, allow: []}]", "policies[0].allow", "at least one principal"),
        ("policies: [{name: x, allow: [everyone], valid_from: 2026-01-01T00:00:00}]",
         "policies[0].valid_from", "time zone"),
        ("policies: [{name: x, allow: [everyone], conditions: {region: [NO]}}]",
         "policies[0].conditions.region", "strings"),
        ("policies: [{name: x, allow: [everyone]}, {name: x, allow: [everyone]}]",
         "policies[1].name", "defined twice"),
        ("tenant: acme\npolicy: []", "policy", "unknown field"),
        ("policies: []", "policies", "non-empty list"),
        ("- just a list", "(file)", "mapping"),
        ("policies: [{name: x, allow: [everyone]\n", "line 2", ""),
    ],
)
def test_malformed_file_names_file_and_field(tmp_path, text, field, message):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(PolicyFileError) as caught:
        load_policy_files([path], LEVELS)
    assert caught.value.field == field
    assert message in caught.value.message
    assert str(caught.value).startswith(f"{path}: {field}: ")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyFileError, match="nope.yaml: \\(file\\)"):
        load_policy_files([tmp_path / "nope.yaml"], LEVELS)


def test_same_policy_in_two_files_for_one_tenant_is_refused(tmp_path):
    a = write(tmp_path, "a.yaml", "policies: [{name: x, allow: [everyone]}]")
    b = write(tmp_path, "b.yaml", "policies: [{name: x, allow: [group:g]}]")
    with pytest.raises(PolicyFileError, match="also defined in"):
        load_policy_files([a, b], LEVELS)


def test_plan_distinguishes_create_update_and_unchanged(tmp_path):
    path = write(tmp_path, "p.yaml", """
policies:
  - {name: same, allow: [everyone]}
  - {name: changed, allow: [group:finance], classification: confidential}
  - {name: new, allow: [everyone]}
""")
    files = load_policy_files([path], LEVELS)
    same, changed = files[0].policies[0].to_json(), files[0].policies[1].to_json()
    current = {("acme", "same"): same, ("acme", "changed"): {**changed, "classification": "internal"}}
    plan = plan_changes(current, files, "acme")
    assert [(c.name, c.action) for c in plan] == [("same", "unchanged"), ("changed", "update"),
                                                  ("new", "create")]
    assert describe_change(plan[1]) == [
        "~ acme/changed (update)", "    classification: 'internal' -> 'confidential'"]
