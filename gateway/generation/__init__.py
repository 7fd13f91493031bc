"""Generation: answers built only from audited chunks (SPEC §10)."""
