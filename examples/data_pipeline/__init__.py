"""A data pipeline with an expensive step: extract, transform, load — where the
load fails until a fault is cleared, and is retried without redoing the rest.
Run it: ``python -m examples.data_pipeline``."""
