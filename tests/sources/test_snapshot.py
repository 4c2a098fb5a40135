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

from reconcile.core.logstore import FrameStore
from reconcile.core.period import parse_period
from reconcile.core.results import FetchResult, WindowRecord
from reconcile.core.schema import LOG_COLUMNS, LOG_DTYPES
from reconcile.errors import InputError
from reconcile.sources.snapshot import (
    LOGS_FILE,
    MANIFEST_FILE,
    SnapshotWriter,
    copy_snapshot,
    open_snapshot,
    read_snapshot,
    save_snapshot,
    write_snapshot,
)
from reconcile.sources.snapshot_manifest import COLUMNS
from reconcile.sources.snapshot_manifest import content_hash as _content_hash

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


def save_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write an edited manifest with a matching content_sha256 (what a careful forger does)."""
    manifest["content_sha256"] = _content_hash(manifest)
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")


def replace_file(directory: Path, name: str, table: pa.Table) -> None:
    """Replace a logs file and record its new sha256 and size, as a forger would."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    data = buf.getvalue()
    (directory / name).write_bytes(data)
    manifest = manifest_of(directory)
    entry = next(f for f in manifest["files"] if f["name"] == name)
    entry.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), rows=table.num_rows)
    save_manifest(directory, manifest)


FIRST_DAY = "logs-2026-10-01.parquet"


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


def test_manifest_records_period_counts_windows_and_a_file_per_day(tmp_path: Path) -> None:
    manifest = manifest_of(write_snapshot(fetch_result(), tmp_path))
    assert manifest["schema_version"] == 2
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
    files = manifest["files"]
    assert [f["day"] for f in files] == [f"2026-10-{d:02d}" for d in range(1, 32)]
    assert [f["rows"] for f in files] == [24, 16] + [0] * 29  # a log an hour from the start
    first_day = logs[logs["created_at"] < PERIOD.start_ts + 86400]
    assert files[0]["by_type"]["consume"] == {
        "count": int((first_day["type"] == 2).sum()),
        "quota": int(first_day.loc[first_day["type"] == 2, "quota"].sum()),
    }
    assert files[1]["by_key"] == {REFS[0]: 8, REFS[1]: 8}
    assert (files[0]["start_ts"], files[-1]["end_ts"]) == (PERIOD.start_ts, PERIOD.end_ts)
    first = manifest["windows"][0]
    assert first["start"] == "2026-10-01T00:00:00+08:00"
    assert first["start_ts"] == PERIOD.start_ts
    assert {"total", "ids", "pages", "attempts"} <= set(first)
    for f in files:
        data = (tmp_path / f["name"]).read_bytes()
        assert (f["sha256"], f["bytes"]) == (hashlib.sha256(data).hexdigest(), len(data))


def test_writing_the_same_result_twice_gives_identical_files(tmp_path: Path) -> None:
    result = fetch_result()
    shuffled = replace(result, logs=result.logs.sample(frac=1, random_state=3))
    a = write_snapshot(result, tmp_path / "a")
    b = write_snapshot(shuffled, tmp_path / "b")
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(
        [MANIFEST_FILE, *(f"logs-2026-10-{d:02d}.parquet" for d in range(1, 32))]
    )
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_logs_written_a_day_at_a_time_give_the_same_files(tmp_path: Path) -> None:
    """The writer fed in pieces, each day flushed as it completes, writes what writing the
    month whole writes."""
    result = fetch_result()
    whole = write_snapshot(result, tmp_path / "whole")
    writer = SnapshotWriter(tmp_path / "days", PERIOD)
    logs = result.logs.sample(frac=1, random_state=5)
    for piece in (logs.iloc[:7], logs.iloc[7:30], logs.iloc[30:]):
        writer.add(piece)
    writer.flush(PERIOD.start_ts + 86400)  # the first day is complete: written now
    assert writer.days_written == 1
    with pytest.raises(ValueError, match="already written"):
        writer.add(logs.iloc[:1].assign(created_at=PERIOD.start_ts))
    store = writer.finish(result)
    for p in whole.iterdir():
        assert (tmp_path / "days" / p.name).read_bytes() == p.read_bytes()
    assert len(store) == 40
    pd.testing.assert_frame_equal(store.day(1), open_snapshot(whole).day(1))


def test_a_replaced_logs_file_is_refused_naming_it(tmp_path: Path) -> None:
    snap = write_snapshot(fetch_result(), tmp_path)
    fewer = logs_frame().iloc[:-1]
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(fewer, preserve_index=False), buf)
    (snap / FIRST_DAY).write_bytes(buf.getvalue())
    with pytest.raises(InputError) as err:
        read_snapshot(snap)
    assert err.value.file == str(snap / FIRST_DAY)
    assert "sha256" in str(err.value)


def test_a_file_changed_after_opening_is_refused_when_read(tmp_path: Path) -> None:
    snap = write_snapshot(fetch_result(), tmp_path)
    store = open_snapshot(snap)
    (snap / FIRST_DAY).write_bytes((snap / "logs-2026-10-02.parquet").read_bytes())
    with pytest.raises(InputError, match="sha256") as err:
        store.day(0)
    assert err.value.file == str(snap / FIRST_DAY)
    with pytest.raises(InputError, match="sha256"):
        copy_snapshot(store, tmp_path / "copy")


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
    manifest["schema_version"] = 3
    manifest["content_sha256"] = _content_hash(manifest)
    (snap / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError, match="schema_version 3") as err:
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


def as_version_1(directory: Path, drop: tuple[str, ...] = ()) -> None:
    """Rewrite a snapshot as version 1 wrote it: one logs.parquet, `files.logs`; the
    manifest fields in `drop` left out (written before they existed); no row_key with them."""
    store = open_snapshot(directory)
    table = pa.Table.from_pandas(store.columns(list(COLUMNS)), preserve_index=False)
    if drop:
        table = table.drop(["row_key"])
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(None), buf)
    data = buf.getvalue()
    for p in directory.glob("logs-*.parquet"):
        p.unlink()
    (directory / LOGS_FILE).write_bytes(data)
    manifest = manifest_of(directory)
    for name in drop:
        del manifest[name]
    manifest["schema_version"] = 1
    manifest["files"] = {
        "logs": {
            "name": LOGS_FILE,
            "rows": table.num_rows,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    }
    save_manifest(directory, manifest)


def test_a_version_1_snapshot_still_opens_and_reads_by_day(tmp_path: Path) -> None:
    result = fetch_result()
    write_snapshot(result, tmp_path / "v2")
    write_snapshot(result, tmp_path / "v1")
    as_version_1(tmp_path / "v1")
    old, new = open_snapshot(tmp_path / "v1"), open_snapshot(tmp_path / "v2")
    assert (len(old), old.days) == (len(new), new.days) == (40, 31)
    for i in (0, 1, 2):
        pd.testing.assert_frame_equal(old.day(i), new.day(i))
    pd.testing.assert_frame_equal(
        read_snapshot(tmp_path / "v1").logs, read_snapshot(new.directory).logs
    )
    copy_snapshot(old, tmp_path / "copy")  # its files, as they are
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == [LOGS_FILE, MANIFEST_FILE]
    assert len(read_snapshot(tmp_path / "copy").logs) == 40


def test_a_version_1_snapshot_with_a_wrong_count_is_refused(tmp_path: Path) -> None:
    write_snapshot(fetch_result(), tmp_path)
    as_version_1(tmp_path)
    manifest = manifest_of(tmp_path)
    manifest["counts"]["by_type"]["refund"]["count"] += 1
    save_manifest(tmp_path, manifest)
    with pytest.raises(InputError, match="refund logs: the manifest says"):
        read_snapshot(tmp_path)


def test_a_snapshot_written_before_sources_existed_reads_as_token_and_stable(
    tmp_path: Path,
) -> None:
    write_snapshot(fetch_result(), tmp_path)
    as_version_1(tmp_path, drop=("source", "id_scheme", "gateway_stat_quota", "warnings"))
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


def test_a_log_moved_into_another_days_file_is_refused(tmp_path: Path) -> None:
    snap = write_snapshot(fetch_result(), tmp_path)
    first = pq.read_table(snap / FIRST_DAY)
    moved = first.set_column(
        first.schema.get_field_index("created_at"),
        "created_at",
        pa.array([PERIOD.start_ts + 86400 + 1] * first.num_rows, pa.int64()),
    )
    replace_file(snap, FIRST_DAY, moved)
    with pytest.raises(InputError, match="lie outside its day 2026-10-01"):
        read_snapshot(snap)


def test_the_same_id_on_two_days_is_refused(tmp_path: Path) -> None:
    snap = write_snapshot(fetch_result(), tmp_path)
    second = pq.read_table(snap / "logs-2026-10-02.parquet")
    ids = second.column("id").to_pylist()
    ids[0] = 1000  # the first day's first log
    replace_file(snap, "logs-2026-10-02.parquet", second.set_column(0, "id", pa.array(ids)))
    with pytest.raises(InputError, match="the same log id twice"):
        read_snapshot(snap)


def test_a_days_counts_must_match_its_file(tmp_path: Path) -> None:
    """Counts moved from one day to another, the totals unchanged, are still caught."""
    snap = write_snapshot(fetch_result(), tmp_path)
    manifest = manifest_of(snap)
    a, b = manifest["files"][0]["by_type"]["consume"], manifest["files"][1]["by_type"]["consume"]
    a["count"], b["count"] = a["count"] + 1, b["count"] - 1
    save_manifest(snap, manifest)
    with pytest.raises(InputError, match=r"logs-2026-10-01\.parquet: the manifest says"):
        read_snapshot(snap)


def test_the_store_reads_days_and_narrow_columns_as_the_month_cut(tmp_path: Path) -> None:
    result = fetch_result()
    store = open_snapshot(write_snapshot(result, tmp_path / "snap"))
    whole = FrameStore(read_snapshot(tmp_path / "snap").logs, PERIOD)
    assert (len(store), store.days, store.directory) == (40, 31, tmp_path / "snap")
    for i in range(store.days):
        pd.testing.assert_frame_equal(store.day(i), whole.day(i))
    narrow = store.columns(["id", "created_at"])
    pd.testing.assert_frame_equal(narrow, whole.columns(["id", "created_at"]))
    assert list(store.day(0, ["quota"]).columns) == ["quota"]
    meta = store.meta  # everything but the logs, which stay on disk
    assert (len(meta.logs), meta.key_refs, meta.windows) == (0, REFS, result.windows)
    assert list(meta.logs.columns) == [*LOG_COLUMNS, "row_key"]


def test_a_copy_is_the_same_files_byte_for_byte(tmp_path: Path) -> None:
    store = open_snapshot(write_snapshot(fetch_result(), tmp_path / "a"))
    copy_snapshot(store, tmp_path / "b")
    for p in (tmp_path / "a").iterdir():
        assert (tmp_path / "b" / p.name).read_bytes() == p.read_bytes()
    assert save_snapshot(store.meta, tmp_path / "c") == tmp_path / "c"  # a stored fetch: copied
    assert (tmp_path / "c" / MANIFEST_FILE).read_bytes() == (
        tmp_path / "a" / MANIFEST_FILE
    ).read_bytes()


@pytest.mark.parametrize("day", ["logs-2026-10-01.parquet", "logs-2026-10-02.parquet"])
def test_the_same_row_key_twice_is_refused_within_a_day_and_across_days(
    tmp_path: Path, day: str
) -> None:
    snap = write_snapshot(fetch_result(), tmp_path)
    first_key = pq.read_table(snap / FIRST_DAY).column("row_key")[0].as_py()
    table = pq.read_table(snap / day)
    keys = table.column("row_key").to_pylist()
    keys[-1] = first_key
    at = table.schema.get_field_index("row_key")
    replace_file(snap, day, table.set_column(at, "row_key", pa.array(keys, pa.string())))
    with pytest.raises(InputError, match="the same row key twice"):
        read_snapshot(snap)
