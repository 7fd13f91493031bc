"""Imports every model module so `Base.metadata` holds the whole schema (for Alembic)."""

from gateway.db import audit_models, models, policy_models, retrieval_models
from gateway.db.base import Base

metadata = Base.metadata

__all__ = ["audit_models", "metadata", "models", "policy_models", "retrieval_models"]
