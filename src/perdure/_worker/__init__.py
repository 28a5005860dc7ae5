"""Worker machinery: polling, leases, the instance cache, activity execution.

May import the runtime, the store interface, the history model, serialization
and the public definitions (``workflow``, ``activity``, ``retry``, ``errors``).
"""
