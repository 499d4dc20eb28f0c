"""Hostile inputs mixed into a folder of good images: one record each, reasons for the bad ones,
the same scores for the good ones as when scanned alone, whatever the worker count."""

from __future__ import annotations

import itertools
import os

import pytest
from data.hostile_corpus import INVALID, VALID, build_hostile_corpus

from detect.helpers import make_good_images, read_jsonl
from gendet.detect import Input, iter_inputs, iter_record_batches, scan

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    corpus = build_hostile_corpus(folder)
    good = make_good_images(folder, 14)
    yield folder, corpus, good
    os.chmod(corpus["unreadable"], 0o644)  # so pytest can clean up


def _alone(path, model) -> dict:
    [[rec]] = list(iter_record_batches([Input(path)], model, batch_size=1, workers=0))
    return rec.to_dict()


@pytest.fixture(scope="module")
def scans(mixed_folder, scan_model, tmp_path_factory):
    folder, _, _ = mixed_folder
    out = tmp_path_factory.mktemp("out")
    results = {}
    for workers in (0, 2):
        path = out / f"w{workers}.jsonl"
        # a pathlib.Path output as well as a str one
        res = scan([str(folder)], scan_model, output=path if workers else str(path), batch_size=8, workers=workers)
        results[workers] = (res, read_jsonl(path))
    return results


def test_every_input_gets_exactly_one_record(mixed_folder, scans) -> None:
    folder, corpus, good = mixed_folder
    expected = {os.path.abspath(p) for p in corpus.values()} | {str(p) for p in good}
    for _, records in scans.values():
        got = [r["path"] for r in records]
        assert len(got) == len(set(got)) == len(expected)
        assert set(got) == expected


def test_bad_inputs_have_reasons_good_ones_scores(mixed_folder, scans, scan_model) -> None:
    _, corpus, _ = mixed_folder
    res, records = scans[0]
    by_path = {r["path"]: r for r in records}
    invalid = INVALID - {"unreadable"} if IS_ROOT else INVALID
    for name in invalid:
        r = by_path[os.path.abspath(corpus[name])]
        assert r["error"] and r["score"] is None and r["label"] is None, name
    for name in VALID:
        r = by_path[os.path.abspath(corpus[name])]
        assert r["error"] is None and 0.0 <= r["score"] <= 1.0, name
    for r in records:
        assert r["threshold"] == 0.65 and r["model"] == "tiny_cnn"
        if r["error"] is None:
            assert r["label"] == ("fake" if r["score"] >= 0.65 else "real")
    labels = {r["label"] for r in records if r["error"] is None}
    assert labels == {"fake", "real"}  # the tiny model's scores straddle the threshold
    assert by_path[os.path.abspath(corpus["dir_jpg"])]["error"] == "is a directory, not an image file"
    assert by_path[os.path.abspath(corpus["broken_symlink"])]["error"] == "broken symbolic link"
    assert res.summary.errors == len(invalid) and res.summary.scored == len(records) - len(invalid)


def test_good_images_score_the_same_as_when_scanned_alone(mixed_folder, scans, scan_model) -> None:
    _, corpus, good = mixed_folder
    by_path = {r["path"]: r for r in scans[0][1]}
    for p in [str(x) for x in good] + [os.path.abspath(corpus[n]) for n in sorted(VALID)]:
        alone = _alone(p, scan_model)
        assert alone["score"] == pytest.approx(by_path[p]["score"], abs=1e-6), p


def test_worker_count_changes_nothing(mixed_folder, scans) -> None:
    folder, _, _ = mixed_folder
    (_, r0), (_, r2) = scans[0], scans[2]
    assert [r["path"] for r in r0] == [r["path"] for r in r2] == [i.path for i in iter_inputs([str(folder)])]
    for a, b in zip(r0, r2, strict=True):
        assert a["error"] == b["error"] and a["label"] == b["label"]
        assert (a["score"] is None and b["score"] is None) or a["score"] == pytest.approx(b["score"], abs=1e-6)


def test_input_stream_is_consumed_lazily(scan_model) -> None:
    """An endless input stream: records come out batch by batch and only a bounded prefetch is read."""
    pulled = itertools.count()

    def endless():
        for i in pulled:
            yield Input(f"/nowhere/{i}.jpg", "stand-in failure")  # pre-failed: no decoding needed

    batches = iter_record_batches(endless(), scan_model, batch_size=4, workers=2)
    first = [next(batches) for _ in range(3)]
    assert [r.path for r in first[0]] == [f"/nowhere/{i}.jpg" for i in range(4)]
    assert next(pulled) <= (3 + 2 * 4 + 2) * 4  # 3 consumed + workers x prefetch_factor (+ slack)
    batches.close()


def test_skip_set_and_non_finite_scores(mixed_folder, scan_model, monkeypatch) -> None:
    _, _, good = mixed_folder
    inputs = [Input(str(p)) for p in good[:4]]
    out = [r for b in iter_record_batches(inputs, scan_model, batch_size=3, skip={str(good[1])}) for r in b]
    assert [r.path for r in out] == [str(good[i]) for i in (0, 2, 3)]

    from gendet.detect import pipeline

    monkeypatch.setattr(pipeline, "score_batch", lambda m, image, *_: [float("nan")] * len(image))
    [[rec]] = list(iter_record_batches(inputs[:1], scan_model))
    assert rec.score is None and rec.label is None and "non-finite" in rec.error


def test_a_file_that_kills_its_decoder_gets_an_error_record_and_the_scan_goes_on(tmp_path, scan_model) -> None:
    from data import pool_tasks

    from gendet.detect.pipeline import DecodedStream

    paths = make_good_images(tmp_path / "imgs", 12)
    doomed = tmp_path / "imgs" / "die.png"
    doomed.write_bytes(paths[0].read_bytes())
    order = [str(p) for p in paths[:5]] + [str(doomed)] + [str(p) for p in paths[5:]]
    stream = DecodedStream([Input(p) for p in order], scan_model.preprocess, workers=2, window=6,
                           task=pool_tasks.die_on_marker)
    out = list(stream)
    assert [path for path, *_ in out] == order  # one result per input, in order
    errors = {path: err for path, _, err, _ in out if err is not None}
    assert list(errors) == [str(doomed)] and "decoder process died" in errors[str(doomed)]
    # once in its chunk, once alone (the chunk's other files are decoded again one by one)
    assert stream.pool is not None and stream.pool.replaced in (1, 2)


def test_redteam_files_get_error_records_in_a_scan(tmp_path, scan_model) -> None:
    from data.hostile_corpus import REDTEAM, build_redteam_corpus

    corpus = build_redteam_corpus(tmp_path / "rt")
    good = make_good_images(tmp_path / "rt", 3)
    records = [r for b in iter_record_batches(iter_inputs([str(tmp_path / "rt")]), scan_model, batch_size=4,
                                              workers=1) for r in b]
    by_path = {r.path: r for r in records}
    assert len(records) == len(REDTEAM) + 3
    for name in REDTEAM:
        assert by_path[str(corpus[name])].error, name
    assert all(by_path[str(p)].score is not None for p in good)


def test_chunked_decoding_keeps_input_order_around_inputs_that_failed_early(tmp_path, scan_model) -> None:
    from gendet.detect.pipeline import DecodedStream

    paths = [str(p) for p in make_good_images(tmp_path / "imgs", 30)]
    order = [Input(p) for p in paths[:12]] + [Input("/no/such/*.png", "no file matches this pattern")] + \
        [Input(p) for p in paths[12:]]
    stream = DecodedStream(order, scan_model.preprocess, workers=2, window=10)
    out = list(stream)
    assert [path for path, *_ in out] == [it.path for it in order]
    assert [err for _, _, err, _ in out].count("no file matches this pattern") == 1
    assert stream.chunk > 1  # tiny files: decoded several per task
