"""Access administration: named policies, document access changes and explanations (SPEC §6).

Services here write through a tenant-scoped writer transaction (row-level security
confines them to the administrator's tenant) and audit every change before committing it.
"""
