"""Policy files (policy as code): load and validate YAML, and plan the changes they imply.

A file holds an optional `tenant` and a list of `policies`:

    tenant: acme                  # optional: defaults to the tenant applying the file
    policies:
      - name: finance-eu
        description: Finance staff working from the EU
        allow: [group:finance]
        deny: [group:contractors]
        classification: confidential
        conditions: {region: [EU]}
        valid_until: 2027-01-01T00:00:00Z

Everything is validated before anything is applied: `load_policy_files` either returns
every file parsed or raises one `PolicyFileError` naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from policies.model import AccessBlockError, ClassificationLevels
from policies.named import NamedPolicy, parse_named_policy

_FILE_FIELDS = {"tenant", "policies"}
MAX_FILE_BYTES = 1024 * 1024


class PolicyFileError(ValueError):
    """A policy file is unreadable or invalid; the message names the file and the field."""

    def __init__(self, path: Path | str, field: str, message: str) -> None:
        super().__init__(f"{path}: {field}: {message}")
        self.path = str(path)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class PolicyFile:
    """One parsed file: the tenant it targets (None: the applier's) and its policies."""

    path: Path
    tenant: str | None
    policies: tuple[NamedPolicy, ...]


@dataclass(frozen=True)
class PlannedChange:
    """What applying a policy would do: create, update or nothing, with before and after."""

    tenant: str
    name: str
    action: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any]


def load_policy_files(paths: Sequence[Path | str], levels: ClassificationLevels) -> list[PolicyFile]:
    """Parse every file; a policy defined twice for the same tenant is an error."""
    files = [load_policy_file(Path(p), levels) for p in paths]
    seen: dict[tuple[str | None, str], Path] = {}
    for file in files:
        for index, policy in enumerate(file.policies):
            key = (file.tenant, policy.name)
            if key in seen:
                raise PolicyFileError(file.path, f"policies[{index}].name",
                                      f"{policy.name!r} is also defined in {seen[key]}")
            seen[key] = file.path
    return files


def load_policy_file(path: Path, levels: ClassificationLevels) -> PolicyFile:
    """Read and validate one YAML policy file."""
    data = _read_yaml(path)
    if not isinstance(data, Mapping):
        raise PolicyFileError(path, "(file)", "must be a mapping with a `policies` list")
    unknown = sorted(str(k) for k in set(data) - _FILE_FIELDS)
    if unknown:
        raise PolicyFileError(path, unknown[0], "unknown field (expected tenant, policies)")
    tenant = data.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not tenant.strip()):
        raise PolicyFileError(path, "tenant", "must be a non-empty string")
    entries = data.get("policies")
    if not isinstance(entries, list) or not entries:
        raise PolicyFileError(path, "policies", "must be a non-empty list of policies")
    policies: list[NamedPolicy] = []
    for index, entry in enumerate(entries):
        try:
            policy = parse_named_policy(entry, levels)
        except AccessBlockError as exc:
            raise PolicyFileError(path, f"policies[{index}].{exc.field}", exc.message) from None
        if any(p.name == policy.name for p in policies):
            raise PolicyFileError(path, f"policies[{index}].name", f"{policy.name!r} is defined twice")
        policies.append(policy)
    return PolicyFile(path=path, tenant=tenant, policies=tuple(policies))


def _read_yaml(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PolicyFileError(path, "(file)", f"larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(path, "(file)", exc.strerror or "cannot be read") from None
    except UnicodeDecodeError:
        raise PolicyFileError(path, "(file)", "is not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(yaml)"
        problem = getattr(exc, "problem", None) or "is not valid YAML"
        raise PolicyFileError(path, where, str(problem)) from None


def plan_changes(
    current: Mapping[tuple[str, str], Mapping[str, Any]],
    files: Sequence[PolicyFile],
    default_tenant: str,
) -> list[PlannedChange]:
    """Compare the files with the stored policies (`(tenant, name) -> body`); nothing is deleted."""
    changes: list[PlannedChange] = []
    for file in files:
        tenant = file.tenant or default_tenant
        for index, policy in enumerate(file.policies):
            if any((c.tenant, c.name) == (tenant, policy.name) for c in changes):
                raise PolicyFileError(file.path, f"policies[{index}].name",
                                      f"{policy.name!r} is defined twice for tenant {tenant!r}")
            after = policy.to_json()
            before = current.get((tenant, policy.name))
            if before is None:
                action = "create"
            elif dict(before) == after:
                action = "unchanged"
            else:
                action = "update"
            changes.append(PlannedChange(tenant, policy.name, action, before, after))
    return changes


def describe_change(change: PlannedChange) -> list[str]:
    """Readable lines for one planned change: `+ name`, `~ name` with changed fields, `= name`."""
    marks = {"create": "+", "update": "~", "unchanged": "="}
    lines = [f"{marks[change.action]} {change.tenant}/{change.name} ({change.action})"]
    if change.action == "update" and change.before is not None:
        for key in sorted(set(change.before) | set(change.after)):
            old, new = change.before.get(key), change.after.get(key)
            if old != new:
                lines.append(f"    {key}: {old!r} -> {new!r}")
    return lines
