"""Audit: append-only, hash-chained record of every retrieved source (SPEC §9)."""
