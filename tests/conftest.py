"""Settings for the whole suite.

Hypothesis: no per-example deadline (the machines that run this suite are
shared and noisy; a slow example is not a bug), and in CI (``CI=true``) a
derandomized run, so that CI's verdict is reproducible. Runs elsewhere explore
new random examples every time; a failure they find prints the example to pin
with ``@example``.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("perdure", deadline=None, print_blob=True)
settings.register_profile("perdure-ci", parent=settings.get_profile("perdure"), derandomize=True)
settings.load_profile("perdure-ci" if os.environ.get("CI") == "true" else "perdure")
