"""A search index rebuilt once per burst of saves, with ``client.debounce``.
Run it: ``python -m examples.search_reindex``."""
