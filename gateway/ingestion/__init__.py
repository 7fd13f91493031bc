"""Ingestion: documents in, chunked, embedded, stored with their access (SPEC §7)."""
