"""Per-call prices and images: the UsePrice branch of new-api's calculateTextQuotaSummary.

    per call = model_price x quota_per_unit x group_ratio (+ surcharges)
    image    = price for its size/quality x n x quota_per_unit x group_ratio

For images (relay/image_handler.go, ImageHelper) new-api folds the size and quality
multipliers into the logged model_price and multiplies by the image count n, which appears
only in `content` ("大小 1024x1792, 品质 hd, 生成数量 2"). The contract's price per image is
the rule's image_prices["1024x1792/hd"], else image_prices["1024x1792"], else model_price;
a size or quality other than the default that the rules give no price for is not
re-priceable (the contract does not say what it costs).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

from reconcile.pricing import paths
from reconcile.pricing.paths.base import BillingPath, Charge, Reason, Row, Terms, Unpriceable
from reconcile.pricing.rules import ModelRule

_N: Final = re.compile(r"生成数量\s*(\d+)")
_SIZE: Final = re.compile(r"大小\s*([^\s,，]+)")
_QUALITY: Final = re.compile(r"品质\s*([^\s,，]+)")
#: What new-api writes when the request did not say (ImageHelper: quality "standard").
DEFAULT_QUALITY: Final = ("standard", "auto", "")
DEFAULT_SIZES: Final = ("1024x1024", "")
SIZE_UNPRICED: Final = Reason(
    "image_size_unpriced", "an image size or quality the rules' image_prices do not price"
)


#: What marks an image log's `content` (its image count n).
IMAGE_MARKER: Final = "生成数量"


def is_image(content: str) -> bool:
    return IMAGE_MARKER in content


def price_call(row: Row, terms: Terms, extra: Decimal) -> Charge:
    rule = terms.rule
    assert rule.model_price is not None
    exact = terms.call(rule.model_price) + extra
    return Charge(paths.PER_CALL, exact)


def image_params(content: str) -> tuple[int, str, str]:
    """(n, size, quality) from an image log's content."""
    n = _N.search(content)
    size = _SIZE.search(content)
    quality = _QUALITY.search(content)
    return (
        int(n.group(1)) if n else 1,
        size.group(1) if size else "",
        quality.group(1) if quality else "",
    )


def price_image(row: Row, terms: Terms) -> Charge | Unpriceable:
    rule = terms.rule
    assert rule.model_price is not None
    n, size, quality = image_params(row.content)
    table = rule.image_prices
    price = table.get(f"{size}/{quality}", table.get(size))
    unusual = size not in DEFAULT_SIZES or quality not in DEFAULT_QUALITY
    if price is None and unusual and (table or _logged_price_differs(row, rule.model_price)):
        what = "/".join(x for x in (size, quality) if x)
        return Unpriceable(
            paths.IMAGE,
            SIZE_UNPRICED,
            f"an image of {what} which the rules' image_prices do not price",
        )
    if price is None:
        price = rule.model_price
    exact = terms.call(price) * n
    return Charge(paths.IMAGE, exact)


def _logged_price_differs(row: Row, contract: Decimal) -> bool:
    logged = row.number("model_price")
    return logged is not None and logged > 0 and abs(logged - contract) > contract * Decimal("1e-9")


def _takes_image(row: Row, rule: ModelRule) -> bool:
    return rule.per_call and is_image(row.content)


IMAGE: Final = BillingPath(
    paths.IMAGE,
    rule_keys=("model_price", "image_prices"),
    content=IMAGE_MARKER,
    takes=_takes_image,
    price=price_image,
    reasons=(SIZE_UNPRICED,),
)
#: Priced per call with surcharges added (`assign`), after every other path of a per-call rule.
PER_CALL: Final = BillingPath(
    paths.PER_CALL, rule_keys=("model_price",), takes=lambda row, rule: rule.per_call
)
