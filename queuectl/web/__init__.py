"""The dashboard and metrics (SPEC §9): routes over queue.py, templates, static assets served by
the package, and the metrics shared with `queuectl metrics`. Imported only by `queuectl web` and
`queuectl metrics`; needs the `web` extra (`pip install '.[web]'`).
"""
