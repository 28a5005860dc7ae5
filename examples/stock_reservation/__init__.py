"""A warehouse whose stock is reserved exactly once across a SIGKILL: a
transactional activity (``perdure.transactions``)."""
