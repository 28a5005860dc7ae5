"""The HTTP API and web UI (``perdure server``; the ``perdure[server]`` extra).

A surface: talks to a :class:`perdure.Client`, never to a store. Only
``app``, the route modules and their helpers import fastapi, so ``_query`` and
``_auth`` (shared with the CLI) work without the extra. Build an app with
``perdure.server.app.create_app(client, auth)``; ``static/`` holds the web UI.
"""
