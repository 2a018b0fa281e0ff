"""How many examples each Hypothesis property is tried on.

``make test`` tries each property on a share of its full count, so that the whole suite
stays quick; ``ORGPROXY_PROPERTY_EXAMPLES=full make test`` tries every property on its full
count (a few times slower: before a release, or after changing the amender, the grouping or
the query rewriting). The properties are the same either way; only how many random
examples each one sees changes.
"""

from __future__ import annotations

import os

from hypothesis import settings

# The share of its full count each property is tried on by default.
QUICK_SHARE = 0.25
SHARE = 1.0 if os.environ.get("ORGPROXY_PROPERTY_EXAMPLES", "") == "full" else QUICK_SHARE


def property_settings(full: int) -> settings:
    """Hypothesis settings for a property whose full count of examples is ``full``: no
    database (a run depends on nothing left by another), no deadline (timing never decides
    a test)."""
    return settings(database=None, deadline=None, max_examples=max(20, round(full * SHARE)))
