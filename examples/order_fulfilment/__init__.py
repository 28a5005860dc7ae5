"""Order fulfilment: charge a card exactly once, even when the worker dies mid-charge.

``shop`` is the worker module (the workflow and its six activities), ``payments``
a fake payment provider that deduplicates by idempotency key, and ``__main__`` the
story: ``python -m examples.order_fulfilment``.
"""
