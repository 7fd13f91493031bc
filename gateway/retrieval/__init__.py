"""Retrieval: policy-filtered vector search inside one SQL statement (SPEC §8)."""
