"""The web dashboard served by the head node: nodes (with resource-use plots), actors,
tasks, objects, logs and the timeline, as pages and as JSON under /api/. The cluster
token is required (raylite.dashboard.auth); it binds loopback unless told otherwise.

Started by ``raylite start --head`` (``--dashboard-port``, ``--include-dashboard``) and
by ``raylite.init(include_dashboard=True)``; runs as ``python -m raylite.dashboard``.
"""
