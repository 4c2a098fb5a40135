"""Every billing path, in the order new-api tries them: the one place a path is registered.

A log takes the first path of ROUTES that `takes` it (`assign.route`); text takes every log
no other took. SURCHARGES add to the paths that have no pricer of their own (per call, text).
What the other modules need is read from these declarations, never listed again: the `other`
keys and `content` that mark a path (the vectorised tiers' filters), and the reasons a log
cannot be priced (the report's sentences, docs/rules.md).

A new billing path: a module in `reconcile.pricing.paths` declaring its `BillingPath` and its
`Reason`s (see `base.BillingPath`), its name in `paths`, and one entry here.
"""

from __future__ import annotations

from typing import Final

from reconcile.pricing.paths import audio, base, call, task, text, tiered, tools
from reconcile.pricing.paths.base import BillingPath, Reason

ROUTES: Final = (
    task.SETTLE,
    task.SUBMIT,
    tiered.TIERED,
    audio.AUDIO,
    call.IMAGE,
    call.PER_CALL,
    text.TEXT,
)
SURCHARGES: Final = (tools.TOOLS,)
DECLARED: Final = (*ROUTES, *SURCHARGES)

#: Every `other` key that marks some path (a log showing none is plain text or per call).
MARKS: Final = tuple(dict.fromkeys(k for p in DECLARED for k in p.marks))
#: A regex of `content` that marks some path.
CONTENT_MARKS: Final = "|".join(p.content for p in DECLARED if p.content)
#: Every reason a log cannot be priced: those of any path, then each path's.
REASONS: Final[tuple[Reason, ...]] = (*base.REASONS, *(r for p in DECLARED for r in p.reasons))


def ahead_of(path: BillingPath) -> tuple[BillingPath, ...]:
    """The paths tried before `path`: a log marked by one of them does not take `path`."""
    return ROUTES[: ROUTES.index(path)]
