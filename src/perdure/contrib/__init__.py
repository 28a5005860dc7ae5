"""Integrations with other projects, each needing that project installed:
``perdure.contrib.opentelemetry`` (``pip install 'perdure[otel]'``)."""
