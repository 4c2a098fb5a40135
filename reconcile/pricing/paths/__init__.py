"""One module per billing path of new-api: how each kind of consume log was charged.

Each path reads a log (`base.Row`) and the contract's terms for it (`base.Terms`) and gives
the contract's charge (`base.Charge`, an exact Decimal before rounding) or the reason it
cannot be priced (`base.Unpriceable`). Which path a log takes: `reconcile.pricing.assign`,
trying them in `paths.registry` order. Each path declares itself, its rule and `other` keys
and its reasons once, in its module (`base.BillingPath`): see `registry` for what a new path
adds.
"""

from typing import Final

TEXT: Final = "text"
CACHE: Final = "cache"
CHAINED: Final = "chained"
PER_CALL: Final = "per_call"
IMAGE: Final = "image"
TASK_SUBMIT: Final = "task_submit"
TASK_SETTLE: Final = "task_settle"
AUDIO: Final = "audio"
TOOLS: Final = "tools"
TIERED: Final = "tiered"
GROUP_PAIR: Final = "group_pair"
UNKNOWN: Final = "unknown"
