"""One identity per log for the stages after the source, whatever ids the gateway shows.

Pricing, matching and the report key logs by `id`. A current new-api shows a user the row's
position in the answer (or `id % 1024`), so two logs of one month can share an id; keyed by
it, logs would be merged or a join would fail. Where the ids are not stable, the later stages
number the logs 1..N in (created_at, row_key) order instead — row_key is our own content key,
unique within the snapshot — so a rerun from the snapshot numbers them the same way. The
gateway's id stays beside it as `gateway_id` and is what the snapshot stores.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from reconcile.core.results import FetchResult
from reconcile.sources.items import row_keys

STABLE = "stable"


def with_unique_ids(fetched: FetchResult) -> FetchResult:
    """`fetched` as is when its ids are stable; otherwise with `id` renumbered (see above)."""
    if fetched.id_scheme == STABLE or "gateway_id" in fetched.logs.columns:
        return fetched
    logs = fetched.logs.copy()
    if "row_key" not in logs.columns:
        logs["row_key"] = row_keys(logs)
    order = np.lexsort((logs["row_key"].to_numpy(dtype=object), logs["created_at"].to_numpy()))
    renumbered = np.empty(len(logs), dtype="int64")
    renumbered[order] = np.arange(1, len(logs) + 1, dtype="int64")
    logs["gateway_id"] = logs["id"]
    logs["id"] = pd.Series(renumbered, index=logs.index, dtype=logs["id"].dtype)
    return replace(fetched, logs=logs)
