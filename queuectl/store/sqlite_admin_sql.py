"""SQLite's named statements for the operators' commands of SPEC §8: queue settings, run
counts, prune and schedules. Kept apart from sqlite_sql.py (the statements of every job's
path) and imported on first use, so that `enqueue` never loads them. Same parameter names as
postgres_admin_sql.py; the rules that use them are written once (operations.py and the
store's feature modules).
"""

# -- queues ----------------------------------------------------------------------------------

# -- run counts ------------------------------------------------------------------------------

# -- prune -----------------------------------------------------------------------------------

# -- schedules -------------------------------------------------------------------------------
