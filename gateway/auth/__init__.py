"""Authentication: bearer tokens to Principal (SPEC §5)."""
