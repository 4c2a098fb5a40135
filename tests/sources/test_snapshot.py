"""Snapshots: a faithful, deterministic, tamper-evident copy of a fetch, read back offline."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reconcile.core.period import parse_period
from reconcile.core.results import FetchResult, WindowRecord
from reconcile.core.schema import LOG_COLUMNS, LOG_DTYPES
from reconcile.errors import InputError
from reconcile.sources.snapshot import (
    LOGS_FILE,
    MANIFEST_FILE,
    _content_hash,
    read_snapshot,
    write_snapshot,
)

PERIOD = parse_period("2026-10", None, None, "Asia/Shanghai")
REFS = ["key-aaaa1111", "key-bbbb2222"]


def logs_frame(n: int = 40) -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": 1000 + i,
                "created_at": PERIOD.start_ts + i * 3600,
                "type": (2, 2, 6, 1, 5)[i % 5],
                "key_ref": REFS[i % 2],
                "token_name": "prod",
                "username": "acme",
                "model_name": "gpt-4o" if i % 3 else '=HYPERLINK("x")',
                "group": "default",
                "quota": 100 * i,
                "prompt_tokens": i,
                "completion_tokens": 2 * i,
                "use_time": 1,
                "is_stream": bool(i % 2),
                "channel": 3,
                "request_id": f"req-{i}" if i % 4 else "",
                "content": "模型倍率 2.50",
                "other": '{"model_ratio":2.5}',
            }
        )
    return pd.DataFrame(rows, columns=LOG_COLUMNS).astype(LOG_DTYPES)


def fetch_result(n: int = 40) -> FetchResult:
    half = PERIOD.start_ts + (PERIOD.end_ts - PERIOD.start_ts) // 2
    windows = [
        WindowRecord(ref, a, b, total=n // 2, ids=n // 2, pages=1, attempts=1 + (ref == REFS[1]))
        for ref in REFS
        for a, b in ((PERIOD.start_ts, half), (half + 1, PERIOD.end_ts - 1))
    ]
    return FetchResult(
        period=PERIOD,
        logs=logs_frame(n),
        windows=windows,
        key_refs=list(REFS),
        fetched_at=datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC),
        base_url="https://gateway.example.com:8443",
        duplicates=3,
        outside_window=1,
        other_types=2,
    )


def manifest_of(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    return data


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    original = fetch_result()
    back = read_snapshot(write_snapshot(original, tmp_path / "snap"))
    pd.testing.assert_frame_equal(back.logs[LOG_COLUMNS], original.logs)
    assert back.logs["row_key"].is_unique
    assert back.period == original.period
    assert back.period.timezone == "Asia/Shanghai"
    assert back.period.label == "2026-10"
    assert back.windows == original.windows
    assert back.key_refs == original.key_refs
    assert back.fetched_at == original.fetched_at
    assert back.base_url == original.base_url
    assert (back.duplicates, back.outside_window, back.other_types) == (3, 1, 2)


def test_manifest_records_period_counts_and_windows(tmp_path: Path) -> None:
    manifest = manifest_of(write_snapshot(fetch_result(), tmp_path))
    assert manifest["schema_version"] == 1
    assert manifest["period"] == {
        "start": "2026-10-01T00:00:00+08:00",
        "end": "2026-11-01T00:00:00+08:00",
        "timezone": "Asia/Shanghai",
        "label": "2026-10",
    }
    logs = logs_frame()
    consume = logs[logs["type"] == 2]
    assert manifest["counts"]["by_type"]["consume"] == {
        "count": len(consume),
        "quota": int(consume["quota"].sum()),
    }
    assert manifest["counts"]["by_key"] == {REFS[0]: 20, REFS[1]: 20}
    assert manifest["files"]["logs"]["rows"] == 40
    first = manifest["windows"][0]
    assert first["start"] == "2026-10-01T00:00:00+08:00"
    assert first["start_ts"] == PERIOD.start_ts
    assert {"total", "ids", "pages", "attempts"} <= set(first)
    digest = hashlib.sha256((tmp_path / LOGS_FILE).read_bytes()).hexdigest()
    assert manifest["files"]["logs"]["sha256"] == digest


def test_writing_the_same_result_twice_gives_identical_files(tmp_path: Path) -> None:
    result = fetch_result()
    shuffled = replace(result, logs=result.logs.sample(frac=1, random_state=3))
    a = write_snapshot(result, tmp_path / "a")
    b = write_snapshot(shuffled, tmp_path / "b")
    for name in (LOGS_FILE, MANIFEST_FILE):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert sorted(p.name for p in a.iterdir()) == [LOGS_FILE, MANIFEST_FILE]


def test_a_replaced_logs_file_is_refused_naming_it(tmp_path: Path) -> None:
    snap = write_snapshot(fetch_result(), tmp_path)
    fewer = logs_frame().iloc[:-1]
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(fewer, preserve_index=False), buf)
    (snap / LOGS_FILE).write_bytes(buf.getvalue())
    with pytest.raises(InputError) as err:
        read_snapshot(snap)
    assert err.value.file == str(snap / LOGS_FILE)
    assert "sha256" in str(err.value)


def test_an_edited_manifest_is_refused_naming_it(tmp_path: Path) -> None:
    snap = write_snapshot(fetch_result(), tmp_path)
    manifest = manifest_of(snap)
    manifest["counts"]["by_type"]["consume"]["quota"] += 1
    (snap / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_snapshot(snap)
    assert err.value.file == str(snap / MANIFEST_FILE)
    assert err.value.field == "content_sha256"


def test_a_manifest_rehashed_after_editing_still_has_to_match_the_logs(tmp_path: Path) -> None:
    snap = write_snapshot(fetch_result(), tmp_path)
    manifest = manifest_of(snap)
    manifest["counts"]["by_type"]["refund"]["count"] += 1
    manifest["content_sha256"] = _content_hash(manifest)
    (snap / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError, match="refund logs: the manifest says"):
        read_snapshot(snap)


def test_a_report_directory_is_accepted_as_well_as_the_snapshot_itself(tmp_path: Path) -> None:
    write_snapshot(fetch_result(), tmp_path / "report" / "snapshot")
    assert len(read_snapshot(tmp_path / "report").logs) == 40
    assert len(read_snapshot(tmp_path / "report" / "snapshot").logs) == 40
    with pytest.raises(InputError, match="no snapshot here") as err:
        read_snapshot(tmp_path / "elsewhere")
    assert err.value.file == str(tmp_path / "elsewhere")


def test_another_schema_version_is_refused(tmp_path: Path) -> None:
    snap = write_snapshot(fetch_result(), tmp_path)
    manifest = manifest_of(snap)
    manifest["schema_version"] = 2
    manifest["content_sha256"] = _content_hash(manifest)
    (snap / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError, match="schema_version 2") as err:
        read_snapshot(snap)
    assert err.value.field == "schema_version"


def test_garbage_manifest_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not a JSON manifest"):
        read_snapshot(tmp_path)


def test_an_empty_fetch_round_trips(tmp_path: Path) -> None:
    empty = replace(fetch_result(), logs=logs_frame(0), windows=[])
    back = read_snapshot(write_snapshot(empty, tmp_path))
    assert len(back.logs) == 0
    assert dict(back.logs.dtypes.astype(str)) == {**LOG_DTYPES, "row_key": "string"}


def test_base_url_is_reduced_to_its_origin(tmp_path: Path) -> None:
    leaky = replace(fetch_result(), base_url="https://user:pw@gw.example.com/x?key=sk-abc")
    manifest = manifest_of(write_snapshot(leaky, tmp_path))
    assert manifest["base_url"] == "https://gw.example.com"
    assert "sk-abc" not in (tmp_path / MANIFEST_FILE).read_text(encoding="utf-8")


def test_rows_moved_to_another_key_are_refused(tmp_path: Path) -> None:
    snap = write_snapshot(fetch_result(), tmp_path)
    manifest = manifest_of(snap)
    manifest["counts"]["by_key"] = {REFS[0]: 25, REFS[1]: 15}
    manifest["content_sha256"] = _content_hash(manifest)
    (snap / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError, match="logs per key"):
        read_snapshot(snap)


def test_source_id_scheme_and_the_gateway_sum_are_recorded(tmp_path: Path) -> None:
    result = replace(
        fetch_result(),
        source="self",
        id_scheme="position",
        gateway_stat_quota=1234,
        warnings=["the gateway's own consume sum differs"],
    )
    back = read_snapshot(write_snapshot(result, tmp_path))
    manifest = manifest_of(tmp_path)
    assert (manifest["source"], manifest["id_scheme"]) == ("self", "position")
    assert (back.source, back.id_scheme, back.gateway_stat_quota) == ("self", "position", 1234)
    assert back.warnings == result.warnings


def test_position_ids_repeat_and_still_round_trip_with_row_keys(tmp_path: Path) -> None:
    logs = logs_frame(40)
    logs["id"] = [1 + i % 10 for i in range(40)]  # row positions: 1..10 in every window
    logs.loc[1, [c for c in LOG_COLUMNS if c not in ("id",)]] = logs.loc[
        0, [c for c in LOG_COLUMNS if c not in ("id",)]
    ].to_numpy()  # two logs of identical content: two logs, two keys
    base = fetch_result()
    windows = [  # the copied log moved a row between windows: the read recorded as it was
        replace(w, ids=n, total=n)
        for w in base.windows
        for n in [
            int(((logs["key_ref"] == w.key_ref) & logs["created_at"].between(w.start, w.end)).sum())
        ]
    ]
    result = replace(base, logs=logs, windows=windows, id_scheme="position")
    back = read_snapshot(write_snapshot(result, tmp_path))
    assert len(back.logs) == 40
    assert back.logs["row_key"].is_unique
    again = read_snapshot(write_snapshot(result, tmp_path / "again"))
    assert again.logs["row_key"].tolist() == back.logs["row_key"].tolist()  # stable


def test_a_snapshot_written_before_sources_existed_reads_as_token_and_stable(
    tmp_path: Path,
) -> None:
    write_snapshot(fetch_result(), tmp_path)
    manifest = manifest_of(tmp_path)
    for name in ("source", "id_scheme", "gateway_stat_quota", "warnings"):
        del manifest[name]
    table = pq.read_table(tmp_path / "logs.parquet").drop(["row_key"])
    buf = io.BytesIO()
    pq.write_table(table, buf)
    data = buf.getvalue()
    (tmp_path / "logs.parquet").write_bytes(data)
    manifest["files"]["logs"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    manifest["content_sha256"] = _content_hash(manifest)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    back = read_snapshot(tmp_path)
    assert (back.source, back.id_scheme, back.gateway_stat_quota) == ("token", "stable", None)
    assert back.logs["row_key"].is_unique


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("counts", "by_type"), ["consume"]),
        (("counts",), 7),
        (("period",), "2026-10"),
        (("source",), ["token"]),  # before: read as the text "['token']"
        (("id_scheme",), 4),  # before: read as the scheme "4"
        (("base_url",), {"a": 1}),
        (("warnings",), "one warning"),  # before: one warning per character
    ],
)
def test_a_manifest_field_of_the_wrong_type_is_an_input_error(
    tmp_path: Path, path: tuple[str, ...], value: object
) -> None:
    write_snapshot(fetch_result(), tmp_path)
    manifest = manifest_of(tmp_path)
    target = manifest
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    manifest["content_sha256"] = _content_hash(manifest)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError, match="manifest"):
        read_snapshot(tmp_path)


def test_every_id_scheme_the_fetcher_writes_is_read_back() -> None:
    from reconcile.sources.engine import SCHEME_RANK
    from reconcile.sources.snapshot import ID_SCHEMES

    assert set(ID_SCHEMES) == set(SCHEME_RANK)


@pytest.mark.parametrize("field", ["ids", "start"])
def test_window_records_that_do_not_account_for_the_logs_are_refused(
    tmp_path: Path, field: str
) -> None:
    """A rehashed manifest whose windows no longer describe the logs (a window holding more
    logs than the ids it records, or logs no window covers) is not read as complete."""
    write_snapshot(fetch_result(), tmp_path)
    manifest = manifest_of(tmp_path)
    first = manifest["windows"][0]
    if field == "ids":
        first["ids"] -= 1
    else:
        first["start_ts"] += 1  # the window no longer covers its first second
    manifest["content_sha256"] = _content_hash(manifest)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError, match=r"window"):
        read_snapshot(tmp_path)
