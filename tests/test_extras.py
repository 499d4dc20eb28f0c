"""Optional extras: the core CLI loads without them, and a missing one is one line naming what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gendet.extras import EXTRA_OF, MissingExtra, missing_extra_message, require

OPTIONAL = ("fastapi", "starlette", "uvicorn", "multipart", "python_multipart", "swagger_ui_bundle", "open_clip",
            "ray", "onnx", "onnxruntime", "imwatermark")


def run_without_extras(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter in which every optional module fails to import, as when not installed."""
    block = f"import sys\nfor m in {OPTIONAL!r}:\n    sys.modules[m] = None\n"
    return subprocess.run([sys.executable, "-c", block + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def test_require_returns_the_module():
    assert require("json", "a test").dumps([1]) == "[1]"


def test_require_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(MissingExtra, match=r"univfd needs open_clip_torch.*pip install 'gendet\[clip\]'"):
        require("open_clip", "univfd")


def test_unknown_missing_modules_keep_their_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "not_an_extra_module", None)
    with pytest.raises(ModuleNotFoundError) as e:
        require("not_an_extra_module", "a test")
    assert not isinstance(e.value, MissingExtra)
    assert missing_extra_message(e.value) is None


def test_every_extra_is_declared_in_pyproject():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for module, (extra, package) in EXTRA_OF.items():
        assert extra in extras, module
        assert any(dep.startswith(package.split("[")[0]) for dep in extras[extra]), (module, extra, package)


def test_core_cli_runs_without_any_extra():
    r = run_without_extras("""
        from gendet.cli.main import main
        sys.exit(main(["models"]))
    """)
    assert r.returncode == 0, r.stderr
    assert "probe" in r.stdout
    univfd = next(line for line in r.stdout.splitlines() if line.strip().startswith("univfd"))
    assert "gendet[clip]" in univfd


@pytest.mark.parametrize(("argv", "extra"), [
    (["serve", "--port", "0"], "serve"),
    (["detect", "{img}", "--engine", "ray"], "ray"),
    (["train", "--model", "univfd", "--data", "{data}", "--out", "{out}"], "clip"),
])
def test_missing_extra_is_one_line(tmp_path, argv, extra):
    from PIL import Image

    img = tmp_path / "a.png"
    Image.new("RGB", (32, 32)).save(img)
    for i, folder in enumerate(("0_real", "1_fake") * 12):  # a two-class folder to train on
        (tmp_path / "data" / folder).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (i * 60, 0, 0)).save(tmp_path / "data" / folder / f"{i}.png")
    argv = [a.format(img=img, data=tmp_path / "data", out=tmp_path / "out") for a in argv]
    r = run_without_extras(f"""
        from gendet.cli.main import main
        sys.exit(main({argv!r}))
    """)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"pip install 'gendet[{extra}]'" in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
