"""``capjax.select`` on a researcher's own NNX, Linen and pure backbones and own arrays."""

import json
import runpy
import sys
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np
import pytest
from flax import nnx
from sklearn.datasets import load_digits

import capjax
from capjax.base.validation import CapjaxInputError
from capjax.cli.main import main
from capjax.workflows.report import COLUMNS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Conv(nnx.Module):
    def __init__(self, width: int, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, width, (3, 3), rngs=rngs)
        self.norm = nnx.BatchNorm(width, momentum=0.9, rngs=rngs)

    def __call__(self, x):
        return nnx.avg_pool(jax.nn.relu(self.norm(self.conv(x))), (2, 2), (2, 2)).reshape(x.shape[0], -1)


class Mlp(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.relu(nn.Dense(64)(x.reshape(x.shape[0], -1)))
        return nn.Dropout(0.2, deterministic=not train)(h)


def _arrays():
    d = load_digits()
    x, y = (d.images / 16.0)[..., None].astype(np.float32), d.target
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    return {"x_train": x[:1400], "y_train": y[:1400], "x_test": x[1400:], "y_test": y[1400:]}


def _models():
    mlp = Mlp()
    variables = mlp.init(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32))
    w = np.asarray(jax.random.normal(jax.random.key(1), (64, 64))) * 0.15
    return {
        "nnx-conv": Conv(8, nnx.Rngs(0)),
        "nnx-conv-lr3e-3": capjax.Model(Conv(8, nnx.Rngs(1)), lr=3e-3),
        "linen-mlp": (mlp, variables),
        "linen-mlp-lr3e-3": capjax.Model((mlp, variables), lr=3e-3),
        "pure": capjax.Model((lambda p, x: jax.nn.relu(x.reshape(x.shape[0], -1) @ p["w"]), {"w": w}), lr=1e-2),
    }


@pytest.mark.slow
def test_own_models_mixed_in_one_call_are_selected_verified_saved_and_loaded(tmp_path):
    sel = capjax.select(_models(), _arrays(), budget=0.3, full_epochs=8, verify=True, out=tmp_path, progress=False)
    assert sel.chosen in _models() and 0 < sel.compute_fraction <= 0.3 + 1e-9
    for r in sel.ranking:
        assert set(r) == set(COLUMNS) and 0 <= r["lower"] <= r["mean"] <= r["upper"] <= 1
    assert sel.payload["verify"]["regret"] <= 0.01
    # the winner comes back trained, as the user's own kind of object
    assert set(sel.params) == {"backbone", "probe", "head"}
    chosen = sel.backbone()
    assert isinstance(chosen, Conv | tuple)
    run_dir = next(tmp_path.iterdir())
    assert json.loads((run_dir / "results.json").read_text())["compute"]["fraction"] == sel.compute_fraction
    loaded = capjax.load_selection(run_dir)
    assert loaded.chosen == sel.chosen and loaded.ranking == json.loads(json.dumps(sel.ranking))
    assert jax.tree.all(jax.tree.map(np.array_equal, loaded.params, sel.params))
    assert set(sel.records) == set(_models()) and len(sel.records[sel.chosen]["val_acc"]) == 9
    assert "<table>" in sel._repr_html_() and sel.chosen in repr(sel)
    assert type(sel.plot("curves")).__name__ == "Figure" and (run_dir / "curves.png").is_file()
    # the same settings resume in the same folder; another budget gets its own
    again = capjax.select(_models(), _arrays(), budget=0.3, full_epochs=8, out=tmp_path, progress=False, verify=True)
    assert again.chosen == sel.chosen and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(CapjaxInputError, match="no results.json"):
        capjax.load_selection(tmp_path / "nothing")
    # a named run folder is never overwritten by other settings
    with pytest.raises(CapjaxInputError, match="holds a selection with other settings.*pass another --run"):
        capjax.select(_models(), _arrays(), budget=0.4, full_epochs=8, out=tmp_path, run=run_dir.name, progress=False)
    with pytest.raises(CapjaxInputError, match="reads \\['spectral_alpha'\\] from the layer list"):
        capjax.select(_models(), _arrays(), full_epochs=8, budget=0.5, predictor="spectral_alpha", progress=False)


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update(y_train=a["y_train"][:-5]), r"x_train has 1400 examples but y_train has 1395 labels"),
    (lambda a: a.update(y_test=a["y_test"] + 1), r"y_test has label 10 but num_classes is 10"),
    (lambda a: a.update(y_train=a["y_train"] - 1), r"y_train has negative label -1"),
    (lambda a: a.pop("y_test"), r"lacks key\(s\) \['y_test'\]"),
])
def test_bad_arrays_are_one_line_errors(change, match):
    arrays = _arrays()
    change(arrays)
    with pytest.raises(CapjaxInputError, match=match):
        capjax.select({"pure": _models()["pure"]}, arrays, progress=False)


def test_the_cli_selects_your_own_models_from_a_file(tmp_path, capsys):
    zoo = tmp_path / "my_zoo.py"
    zoo.write_text(
        "import jax, numpy as np\n"
        "def build():\n"
        "    f = lambda p, x: jax.nn.relu(x.reshape(x.shape[0], -1) @ p['w'])\n"
        "    return {f'pure{k}': (f, {'w': np.random.default_rng(k).normal(size=(64, 16)).astype('float32') * .1})\n"
        "            for k in range(3)}\n"
    )
    args = ["select", "--candidates", f"{zoo}:build", "--full-epochs", "3", "--budget", "60%", "--out",
            str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 0
    (run_dir,) = (tmp_path / "out").iterdir()
    assert run_dir.name.startswith("own3-digits-e3-s0-b60-engine-")
    assert json.loads((run_dir / "results.json").read_text())["chosen"].startswith("pure")
    assert main([*args[:2], f"{zoo}:nope", *args[3:]]) == 2
    assert "--candidates" in capsys.readouterr().err


@pytest.mark.slow
def test_the_own_models_example_runs(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["own_models.py", "--full-epochs", "3"])  # the README's run uses 10
    runpy.run_path(str(EXAMPLES / "own_models.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "chosen" in out and "regret" in out


@pytest.mark.slow
def test_the_tfds_recipe_selects_on_a_prepared_array_record_dataset(tmp_path, capsys):
    import PIL.Image
    import tensorflow_datasets as tfds

    class CapjaxTinyCifar(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """32x32 RGB images, 10 classes: CIFAR-10's format, 100 train and 30 test examples."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {"image": tfds.features.Image(shape=(32, 32, 3)),
                        "label": tfds.features.ClassLabel(num_classes=10)}
            return tfds.core.DatasetInfo(builder=self, supervised_keys=("image", "label"),
                                         features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, 100), "test": self._generate_examples(100, 30)}

        def _generate_examples(self, start, n):
            rng = np.random.default_rng(start)
            for i in range(start, start + n):
                pixels = rng.integers(0, 64, (32, 32, 3), dtype=np.uint8) + np.uint8(19 * (i % 10))
                yield i, {"image": PIL.Image.fromarray(pixels), "label": i % 10}

    CapjaxTinyCifar(data_dir=tmp_path / "tfds", file_format="array_record").download_and_prepare()
    recipe = runpy.run_path(str(EXAMPLES / "tfds_cifar10.py"))
    sel = recipe["main"](["--name", "capjax_tiny_cifar", "--data-dir", str(tmp_path / "tfds"), "--width", "4",
                          "--full-epochs", "2", "--budget", "100%", "--out", str(tmp_path / "out")])
    assert sel.payload["data"] == "capjax_tiny_cifar" and len(sel.ranking) == 6
    assert "chosen" in capsys.readouterr().out
    with pytest.raises(CapjaxInputError, match="tfds build cifar10"):
        recipe["main"](["--data-dir", str(tmp_path / "empty")])
