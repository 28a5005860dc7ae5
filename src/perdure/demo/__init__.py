"""The ``perdure demo`` command: an order-fulfilment workflow that survives a SIGKILL.

``order`` holds the workflow and its activities (a worker module in its own right:
``perdure worker perdure.demo.order``); ``run`` tells the story in the terminal.
A surface: uses only the public API.
"""
