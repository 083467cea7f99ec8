"""The Python API (``zoo_core.api``): the README's notebook snippet runs as written, and records its run."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from zoo_core import api as zoo
from zoo_core.errors import ZooError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_snippet() -> str:
    """The python block under the README's "From Python" heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def in_data_folder(tmp_path, monkeypatch, tiny_imdb_archive):
    """A working folder holding the tiny archive under the README's name."""
    shutil.copy(tiny_imdb_archive, tmp_path / "aclImdb_v1.tar.gz")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_snippet_trains_records_predicts_and_loads(in_data_folder):
    scope: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_snippet(), "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    run, best, model = scope["run"], scope["best"], scope["model"]
    assert {c["name"] for c in scope["cells"]} >= {"tanh", "gru", "lstm", "identity"}
    assert run.status == "completed" and len(run.history) == 1 and 0 <= run.test["accuracy"] <= 1
    assert run.spec.model.params["cell"]["units"] == 32 and run.spec.train.epochs == 1
    # Recorded as `zoo train` records: in the default database, weights beside it.
    (record,) = zoo.runs()
    assert record.id == run.id and record.status == "finished" and Path(record.run_dir) == run.run_dir
    assert (run.run_dir / "run.json").is_file()
    lines = printed.getvalue().splitlines()
    assert lines[0].startswith(f"Run({run.id}: gru-mean seed 0, completed, test accuracy")
    probs = run.predict(["A wonderful, moving film.", "Dull and far too long."])
    assert probs.shape == (2,) and np.all((probs >= 0) & (probs <= 1))
    # The loaded leader is the same run, with the same weights: the same predictions.
    assert best.id == run.id
    np.testing.assert_allclose(best.predict(["A wonderful, moving film."]), probs[:1], rtol=1e-6)
    assert best.test["accuracy"] == pytest.approx(run.test["accuracy"])
    assert type(model).__name__ == "Classifier"


def test_notebook_progress_is_a_live_keras_progbar(in_data_folder):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run = zoo.train(data="aclImdb_v1.tar.gz", epochs=2, batch_size=8, progress=zoo.notebook_progress,
                        params={"cell.units": 4})
    out = re.sub(r"\x1b\[[0-9;]*m", "", printed.getvalue())  # Keras colours its bar
    assert "epoch 1/2" in out and "epoch 2/2" in out  # one bar per epoch
    assert re.search(r"\d+/\d+ .*loss: \d\.\d+.*acc: \d\.\d+", out)  # Keras' Progbar with the running metrics
    assert len(run.history) == 2


@pytest.mark.parametrize("call, message", [
    (lambda: zoo.spec("gru-mean", epochz=1), "unknown setting 'epochz'"),
    (lambda: zoo.spec("gru-mean", params={"units": 3}), "expected KIND.NAME"),
    (lambda: zoo.spec("gru-mean", epochs=0), "epochs"),
    (lambda: zoo.spec("no-such-model"), "unknown model 'no-such-model'"),
    (lambda: zoo.components("cells"), "unknown kind 'cells'"),
    (lambda: zoo.load("best"), "no"),
])
def test_bad_calls_raise_one_line_zoo_errors(call, message):
    with pytest.raises(ZooError) as caught:
        call()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_data_comes_from_the_data_argument_or_zoo_data_and_errors_say_which(tmp_path, monkeypatch):
    results = {"results": tmp_path / "results.sqlite", "runs": tmp_path / "runs"}
    with pytest.raises(ZooError, match=r"no IMDB data at .*nowhere \(from the data argument\)"):
        zoo.train(data=tmp_path / "nowhere", progress=False, **results)
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "elsewhere"))  # as `zoo train` reads it, for --data
    with pytest.raises(ZooError, match=r"no IMDB data at .*elsewhere \(from ZOO_DATA\)"):
        zoo.train(progress=False, **results)
    text = tmp_path / "reviews.txt"
    text.write_text("1\tgood film\n")
    with pytest.raises(ZooError, match="it holds text"):  # data= wins over $ZOO_DATA; a wrong kind is one line
        zoo.train(data=text, progress=False, **results)
    assert not results["results"].exists()
