"""Which file column is which: profiles, forgiving header names, and the header row test.

Column names compare after Unicode normalisation, case folding and dropping spaces, `_`, `-`
and `.`, so `Log ID`, `log_id` and `LOG-ID` are one name; anything else needs a mapping in
the rules' `[ledger.columns]` / `[invoice.columns]` or a profile's `[columns]`.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from reconcile.errors import InputError
from reconcile.pricing.rules import ColumnMap


def load_profile(path: Path) -> ColumnMap:
    """A ledger profile TOML: `[columns]` renames, plus currency/encoding/delimiter/... settings."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read profile: {exc.strerror}", file=path) from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc}", file=path) from None
    try:
        return ColumnMap.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise InputError(err["msg"], file=path, field=where) from None


def merge_maps(base: ColumnMap, profile: ColumnMap | None) -> ColumnMap:
    """The rules file's mapping overridden, key by key, by a profile's."""
    if profile is None:
        return base
    merged = base.model_dump()
    for key, value in profile.model_dump().items():
        if key == "columns":
            merged["columns"] = {**base.columns, **profile.columns}
        elif value is not None:
            merged[key] = value
    return ColumnMap.model_validate(merged)


def norm_name(name: str) -> str:
    """Column names compare forgivingly: case, width, spaces, `_`, `-` and `.` do not matter."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return re.sub(r"[\s_\-.]+", "", text)


#: Header names understood without a mapping besides the canonical ones (normalised).
#: Kept to names nobody uses for anything else; everything else needs an explicit mapping.
ALIASES = {"model": "model_name", "token": "token_name"}


@dataclass(frozen=True)
class Binding:
    """Which file column holds each canonical column, and which columns nothing reads."""

    index: dict[str, int]  # canonical name -> column position
    names: dict[str, str]  # canonical name -> column name as written in the file
    ignored: list[str]  # file columns mapped to nothing (listed, never an error)


def bind_columns(
    header: list[str],
    mapping: Mapping[str, str],
    canonical: Iterable[str],
    *,
    path: Path,
    line: int,
    setting: str,
) -> Binding:
    """Map the file's header to canonical names via `mapping` ("Their Column" = "canonical")."""
    known = tuple(canonical)
    lookup = {norm_name(c): c for c in known}
    lookup.update({k: v for k, v in ALIASES.items() if v in known and k not in lookup})
    for theirs, ours in mapping.items():
        if ours not in known:
            raise InputError(
                f"{theirs!r} maps to {ours!r}, which is not a column this file can have "
                f"(one of: {', '.join(known)})",
                field=f"{setting}.columns.{theirs}",
            )
        lookup[norm_name(theirs)] = ours
    index: dict[str, int] = {}
    names: dict[str, str] = {}
    ignored: list[str] = []
    for pos, name in enumerate(header):
        canon = lookup.get(norm_name(name)) if name else None
        if canon is None:
            ignored.append(name or f"(unnamed column {pos + 1})")
            continue
        if canon in index:
            raise InputError(
                f"columns {names[canon]!r} and {name!r} both map to {canon!r}; rename one or "
                f"map it in [{setting}.columns]",
                file=path,
                line=line,
                field=canon,
            )
        index[canon] = pos
        names[canon] = name
    return Binding(index=index, names=names, ignored=ignored)


def header_matcher(
    mapping: Mapping[str, str], canonical: Iterable[str], wanted: Iterable[str]
) -> Callable[[list[str]], bool]:
    """A test for "this row is the header": it names at least one of the `wanted` columns."""
    known = tuple(canonical)
    lookup = {norm_name(c): c for c in known}
    lookup.update({k: v for k, v in ALIASES.items() if v in known and k not in lookup})
    lookup.update({norm_name(k): v for k, v in mapping.items()})
    targets = set(wanted)
    return lambda names: any(lookup.get(norm_name(n)) in targets for n in names)
