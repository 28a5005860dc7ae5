"""A checkout traced with OpenTelemetry across a worker's SIGKILL
(``python -m examples.traced_checkout``)."""
