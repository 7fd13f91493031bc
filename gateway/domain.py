"""Frozen values that cross pipeline stages.

Stages hand each other these immutable values and never call back into an earlier stage.
"""

from __future__ import annotations

from policies.principal import Principal

__all__ = ["Principal"]
