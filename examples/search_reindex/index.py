"""The worker module: a document re-indexed after it is saved.

An editor saves a document every few keystrokes; indexing every version
would keep the search index busy with versions nobody searches for. So
the app does not start ``reindex`` on each save: it **debounces** it
(``__main__.py``)::

    await client.debounce(
        reindex, doc_id, version,
        key=f"reindex-{doc_id}",  # the saves of one document make one run...
        delay=DELAY,              # ...started a second after the last save,
        max_delay=MAX_DELAY,      # but no later than 5 s after the first
    )

A burst of saves then makes one run, with the last save's version; a save
after a worker has taken the run makes another. Nothing here knows about
it: the workflow and the activity are ordinary ones.

The "search index" is ``$SEARCH_DIR/index.jsonl``: each indexing appends a
line (the document, the version, when), so that one can count them.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

from perdure import activity, workflow

# How the app debounces the saves (the options of its client.debounce call).
DELAY = timedelta(seconds=1)  # index a document once it has rested a second...
MAX_DELAY = timedelta(seconds=5)  # ...and at most 5 s after a burst's first save


def index_path() -> Path:
    return Path(os.environ["SEARCH_DIR"]) / "index.jsonl"


@activity.defn
async def index_document(doc_id: str, version: int) -> int:
    """Put one version of a document in the index (a fake one: a line in a
    file). Doing it again, on a retry, indexes the same version again: no harm."""
    line = {"doc": doc_id, "version": version, "at": time.time()}
    with open(index_path(), "a", encoding="utf-8") as index:
        index.write(json.dumps(line) + "\n")
    return version


@workflow.defn
async def reindex(doc_id: str, version: int) -> int:
    """Index the document as it is in ``version``; return the version indexed."""
    return await index_document(doc_id, version)
