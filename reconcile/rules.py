"""The pricing contract: a TOML rules file validated into typed, exact-decimal rules."""

from __future__ import annotations

import hashlib
import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconcile.errors import InputError


class Tolerance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quota: int = Field(default=1, ge=0)
    relative: Decimal = Field(default=Decimal(0), ge=0)


class ModelRule(BaseModel):
    """One `[[model]]` table: how a model (exact name or glob) is priced, and since when."""

    model_config = ConfigDict(extra="forbid")
    match: str
    model_ratio: Decimal | None = Field(default=None, ge=0)
    completion_ratio: Decimal = Field(default=Decimal(1), ge=0)
    cache_ratio: Decimal = Field(default=Decimal(1), ge=0)
    cache_creation_ratio: Decimal = Field(default=Decimal(1), ge=0)
    model_price: Decimal | None = Field(default=None, ge=0)
    effective_from: date | None = None
    effective_to: date | None = None
    line: int = 0  # line of the `[[model]]` header in the file, for messages


class ColumnMap(BaseModel):
    """Renames a CSV's columns to canonical names: `"Their Column" = "canonical_name"`."""

    model_config = ConfigDict(extra="forbid")
    columns: dict[str, str] = Field(default_factory=dict)


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    quota_per_unit: Decimal = Field(default=Decimal(500000), gt=0)
    report_currency: str = "USD"
    currency: dict[str, Decimal] = Field(default_factory=dict)
    tolerance: Tolerance = Field(default_factory=Tolerance)
    groups: dict[str, Decimal] = Field(default_factory=dict)
    models: list[ModelRule] = Field(default_factory=list, alias="model")
    ledger: ColumnMap = Field(default_factory=ColumnMap)
    invoice: ColumnMap = Field(default_factory=ColumnMap)
    path: str = ""
    sha256: str = ""

    def rate(self, currency: str) -> Decimal:
        """Units of `currency` per 1 USD; InputError when the rules do not define it."""
        code = currency.strip().upper()
        if code == "USD":
            return Decimal(1)
        if code not in self.currency:
            raise InputError(f"no exchange rate for {currency!r} in the rules' [currency]")
        return self.currency[code]

    def group_ratio(self, group: str) -> Decimal:
        return self.groups.get(group, Decimal(1))


def load_rules(path: str | Path) -> Rules:
    """Read and validate a rules file; every problem is an InputError naming the file and line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read rules file: {exc.strerror}", file=p) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc}", file=p) from None
    try:
        rules = Rules.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise InputError(err["msg"], file=p, field=field) from None
    rules.path = str(p)
    rules.sha256 = hashlib.sha256(raw).hexdigest()
    return rules
