"""Record writers and the resume reader: streaming, partial last records, non-UTF-8 names."""

from __future__ import annotations

import csv
import json
import os

import pytest

from gendet.detect.writers import JSON_FIELDS, OutputError, Record, format_for, open_writer, read_done_paths

BAD_NAME = os.fsdecode(b"/data/caf\xe9 \xff.jpg")  # not UTF-8: surrogate-escaped str
RECORDS = [
    Record("/data/a.jpg", 0.9, "fake", 0.5, "m", None),
    Record(BAD_NAME, 0.1, "real", 0.5, "m", None),
    Record('/data/odd, "quoted"\nname.png', None, None, 0.5, "m", "not a recognised image format"),
]


def write(path, fmt, records, **kw):
    writer, state = open_writer(str(path), fmt, **kw)
    with writer:
        writer.write(records)
    return state.paths, state.dropped_bytes


def done_paths(path, fmt):
    state = read_done_paths(path, fmt)
    return state.paths, state.dropped_bytes


def test_jsonl_round_trip_with_non_utf8_name(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    write(out, "jsonl", RECORDS)
    raw = out.read_bytes()
    raw.decode("utf-8")  # the file itself is valid UTF-8
    assert b"\\udce9" in raw and b"\\udcff" in raw
    recs = [json.loads(line) for line in raw.splitlines()]
    assert [tuple(r) for r in recs] == [JSON_FIELDS] * 3
    assert os.fsencode(recs[1]["path"]) == b"/data/caf\xe9 \xff.jpg"
    assert recs[2]["score"] is None and recs[2]["label"] is None and recs[2]["error"]
    assert done_paths(out, "jsonl") == ({r.path for r in RECORDS}, 0)


def test_csv_round_trip_with_csv_module(tmp_path) -> None:
    out = tmp_path / "o.csv"
    write(out, "csv", RECORDS)
    with open(out, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [r.path for r in RECORDS]
    assert os.fsencode(rows[1]["path"]) == b"/data/caf\xe9 \xff.jpg"
    assert float(rows[0]["score"]) == 0.9 and rows[2]["score"] == "" and rows[2]["label"] == ""
    assert done_paths(out, "csv") == ({r.path for r in RECORDS}, 0)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_drops_a_truncated_last_record_and_appends(tmp_path, fmt) -> None:
    out = tmp_path / f"o.{fmt}"
    write(out, fmt, RECORDS[:2])
    full = out.read_bytes()
    out.write_bytes(full + (b'{"path": "/data/c.jp' if fmt == "jsonl" else b"/data/c.jpg,0.3,re"))
    done, dropped = write(out, fmt, [RECORDS[2]], resume=True)
    assert done == {RECORDS[0].path, RECORDS[1].path} and dropped > 0
    assert done_paths(out, fmt) == ({r.path for r in RECORDS}, 0)
    if fmt == "csv":
        assert out.read_bytes().count(b"path,score,label") == 1


def test_csv_record_cut_inside_a_quoted_newline_is_dropped(tmp_path) -> None:
    out = tmp_path / "o.csv"
    write(out, "csv", RECORDS[:2])
    out.write_bytes(out.read_bytes() + b'"/data/odd\n')
    done, dropped = done_paths(out, "csv")
    assert done == {RECORDS[0].path, RECORDS[1].path} and dropped == len(b'"/data/odd\n')


def test_resume_of_missing_or_half_written_file_starts_fresh(tmp_path) -> None:
    out = tmp_path / "o.csv"
    assert write(out, "csv", RECORDS[:1], resume=True) == (set(), 0)
    half = tmp_path / "h.csv"
    half.write_bytes(b"path,sco")
    write(half, "csv", RECORDS[:1], resume=True)
    with open(half, newline="") as fh:
        assert [r["path"] for r in csv.DictReader(fh)] == [RECORDS[0].path]


def test_existing_output_needs_resume_or_overwrite(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    write(out, "jsonl", RECORDS[:1])
    with pytest.raises(OutputError, match="--resume"):
        open_writer(str(out), "jsonl")
    write(out, "jsonl", RECORDS[1:2], overwrite=True)
    assert done_paths(out, "jsonl")[0] == {RECORDS[1].path}


def test_resume_refuses_foreign_files(tmp_path) -> None:
    (tmp_path / "x.jsonl").write_text("hello\n")
    with pytest.raises(OutputError, match="not valid JSON"):
        read_done_paths(tmp_path / "x.jsonl", "jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(OutputError, match="header"):
        read_done_paths(tmp_path / "x.csv", "csv")
    with pytest.raises(OutputError, match="'-'"):
        open_writer("-", "jsonl", resume=True)


def test_format_from_extension() -> None:
    assert format_for("a.CSV", None) == "csv" and format_for("a.jsonl", None) == "jsonl"
    assert format_for("-", None) == "jsonl" and format_for("a.txt", "csv") == "csv"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_control_character_in_a_name_survives_write_read_and_resume(tmp_path, fmt) -> None:
    codes = [*range(0x00, 0x20), 0x7F, 0x85, 0x2028, 0x2029]
    records = [Record(f"/data/x{chr(c)}y{chr(c)}.png", 0.25, "real", 0.5, "m", None) for c in codes]
    records.append(Record("/data/e.png", None, None, 0.5, "m", "bad\r\nreason\x1e"))
    out = tmp_path / f"o.{fmt}"
    write(out, fmt, records)
    if fmt == "csv":
        with open(out, newline="", encoding="utf-8", errors="surrogateescape") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["path"] for r in rows] == [r.path for r in records]
        assert rows[-1]["error"] == records[-1].error and float(rows[0]["score"]) == 0.25
    else:
        assert [json.loads(line)["path"] for line in out.read_text().split("\n") if line] == [r.path for r in records]
    assert done_paths(out, fmt) == ({r.path for r in records}, 0)
    more = Record("/data/later.png", 0.75, "fake", 0.5, "m", None)
    write(out, fmt, [more], resume=True)
    assert done_paths(out, fmt)[0] == {r.path for r in records} | {more.path}


def test_resume_refuses_another_models_output_unless_forced(tmp_path) -> None:
    out = tmp_path / "o.jsonl"
    write(out, "jsonl", RECORDS)
    with pytest.raises(OutputError, match="holds records of model m, not other.*--force"):
        open_writer(str(out), "jsonl", resume=True, model="other")
    writer, state = open_writer(str(out), "jsonl", resume=True, model="other", force=True)
    writer.close()
    assert state.models == {"m"} and state.errors == 1
    writer, state = open_writer(str(out), "jsonl", resume=True, model="m")
    writer.close()
