"""Input expansion: files, folders, globs, @LIST, stdin; lazy; one entry per path."""

from __future__ import annotations

import io
import os
import types

import pytest

from gendet.detect import inputs as inputs_mod
from gendet.detect.inputs import Input, InputStats, check_specs, is_single_file, iter_inputs


def _tree(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    for rel in ("a/1.jpg", "a/2.PNG", "a/notes.txt", "a/sub/3.webp", "top.gif"):
        (tmp_path / rel).write_bytes(b"x")
    return tmp_path


def paths(items) -> set[str]:
    return {i.path for i in items}


def test_folder_walk_recursive_and_filtered(tmp_path) -> None:
    root = _tree(tmp_path)
    stats = InputStats()
    got = list(iter_inputs([str(root / "a")], stats=stats))
    assert paths(got) == {str(root / "a" / p) for p in ("1.jpg", "2.PNG", "sub/3.webp")}
    assert all(i.error is None for i in got) and all(os.path.isabs(i.path) for i in got)
    assert stats.skipped_not_image == 1 and stats.examples_not_image[0].endswith("notes.txt")
    flat = list(iter_inputs([str(root / "a")], recursive=False))
    assert paths(flat) == {str(root / "a" / p) for p in ("1.jpg", "2.PNG")}


def test_named_file_is_taken_whatever_its_extension(tmp_path) -> None:
    root = _tree(tmp_path)
    missing = root / "missing.jpg"
    got = list(iter_inputs([str(root / "a" / "notes.txt"), str(missing)]))
    assert got == [Input(str(root / "a" / "notes.txt")), Input(str(missing))]


def test_glob_recursive_and_no_match(tmp_path) -> None:
    root = _tree(tmp_path)
    got = list(iter_inputs([str(root / "**" / "*.jpg"), str(root / "*.nothing")]))
    assert got[0] == Input(str(root / "a" / "1.jpg"))
    assert got[1] == Input(str(root / "*.nothing"), "no file matches this pattern")
    assert len(got) == 2


def test_path_list_and_stdin_are_literal(tmp_path) -> None:
    root = _tree(tmp_path)
    lst = root / "list.txt"
    # a folder in a list is one input (it gets a "directory" error record), blank lines are ignored
    lst.write_bytes(b"a/1.jpg\r\n\n" + os.fsencode(str(root / "a")) + b"\n")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        got = list(iter_inputs([f"@{lst}"]))
        stdin = io.BytesIO(b"top.gif\nbad\xff.jpg\n")
        got_stdin = list(iter_inputs(["-"], stdin=stdin))
    finally:
        os.chdir(cwd)
    assert [i.path for i in got] == [str(root / "a" / "1.jpg"), str(root / "a")]
    assert [i.path for i in got_stdin] == [str(root / "top.gif"), os.fsdecode(os.fsencode(str(root)) + b"/bad\xff.jpg")]


def test_directory_named_like_an_image_is_reported_and_walked(tmp_path) -> None:
    (tmp_path / "x.jpg").mkdir()
    (tmp_path / "x.jpg" / "inner.png").write_bytes(b"x")
    assert paths(iter_inputs([str(tmp_path)])) == {str(tmp_path / "x.jpg"), str(tmp_path / "x.jpg" / "inner.png")}


def test_symlink_loop_is_walked_once(tmp_path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    got = [i.path for i in iter_inputs([str(tmp_path)])]
    assert got == [str(tmp_path / "d" / "a.png")]


def test_non_utf8_names_round_trip(tmp_path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg")
    open(raw, "wb").close()
    [item] = iter_inputs([str(tmp_path)])
    assert os.fsencode(item.path) == raw


def test_expansion_is_lazy(tmp_path, monkeypatch) -> None:
    """The first path comes out before the folder walk has listed everything."""
    root = _tree(tmp_path)
    seen = []
    real_scandir = os.scandir

    def spy(path):
        seen.append(path)
        return real_scandir(path)

    monkeypatch.setattr(inputs_mod, "os", types.SimpleNamespace(**{**vars(os), "scandir": spy}))
    it = iter_inputs([str(root / "top.gif"), str(root / "a")])
    assert isinstance(it, types.GeneratorType)
    assert next(it).path.endswith("top.gif") and seen == []
    list(it)
    assert len(seen) == 2


def test_usage_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="no inputs"):
        check_specs([])
    with pytest.raises(ValueError, match="only once"):
        check_specs(["-", "-"])
    with pytest.raises(ValueError, match="path list"):
        check_specs([f"@{tmp_path / 'nope.txt'}"])


def test_single_file_detection(tmp_path) -> None:
    root = _tree(tmp_path)
    assert is_single_file([str(root / "top.gif")]) and is_single_file([str(root / "missing.jpg")])
    for specs in ([str(root / "a")], ["-"], [str(root / "*.gif")], [str(root / "top.gif")] * 2, ["@x"]):
        assert not is_single_file(specs)
