"""``capjax select`` end to end: the results contract, the winner, --verify, and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.cli.main import main
from capjax.workflows import load_params
from capjax.workflows.report import COLUMNS
from capjax.workflows.select import parse_budget


def test_budget_is_a_compute_fraction():
    assert parse_budget("20%") == pytest.approx(0.2)
    assert parse_budget("0.2") == parse_budget(0.2) == pytest.approx(0.2)
    for bad, match in (("five", "not a number"), ("150%", r"\(0, 100%\]"), ("0", r"\(0, 100%\]")):
        with pytest.raises(CapjaxInputError, match=match):
            parse_budget(bad)


def _select(tmp_path, run, *extra):
    args = ["select", "--zoo", "hyper", "--n", "4", "--full-epochs", "6", "--out", str(tmp_path), "--run", run,
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", *extra]
    assert main(args) == 0
    return json.loads((tmp_path / run / "results.json").read_text())


@pytest.mark.slow
def test_select_decides_trains_its_winner_and_verifies(tmp_path):
    # halving of all 4 needs 46%: the engine trains 3 of them, and one is forecast like the pool
    out = _select(tmp_path, "engine", "--budget", "35%", "--verify")
    assert 0 < out["compute"]["fraction"] <= 0.35 + 1e-9 and out["method"] == "engine"
    rows = out["ranking"]
    assert [r["note"] for r in rows if r["epochs"] == 0] == ["not trained: the pool's forecast"]
    assert [set(r) for r in rows] == [set(COLUMNS)] * 4
    for r in rows:
        assert all(0 <= r[k] <= 1 for k in ("mean", "lower", "upper", "p_best", "true"))
        assert r["lower"] <= r["upper"] and r["measured"] == (r["epochs"] == 6) and r["reason"] is None
    chosen = next(r for r in rows if r["name"] == out["chosen"])
    assert chosen["measured"] and out["winner"]["epochs"] == 6
    params = load_params(out["winner"]["params"])
    assert set(params) == {"backbone", "probe", "head"}
    assert abs(sum(r["p_best"] for r in rows) - 1) < 1e-6
    assert out["rounds"] and len(out["rounds"][0]["p_best"]) == 4
    v = out["verify"]
    assert 0 <= v["regret"] <= 1 and -1 <= v["tau"] <= 1
    for p in v["policies"].values():
        assert p["regret"] is None or (0 <= p["regret"] <= 1 and p["compute"] <= out["compute"]["fraction"] + 1e-9)
    for png in ("curves.png", "p_best.png", "predictions.png"):
        assert (tmp_path / "engine" / png).stat().st_size > 1000
    csv_head = (tmp_path / "engine" / "results.csv").read_text().splitlines()[0]
    assert csv_head == ",".join(COLUMNS)


@pytest.mark.slow
def test_the_papers_predictor_says_when_its_prediction_is_implausible(tmp_path):
    out = _select(tmp_path, "paper", "--budget", "60%", "--predictor", "beta_hessian")
    rows = out["ranking"]
    assert out["method"] == "beta_hessian" and sum(r["measured"] for r in rows) == 1
    early = {r["epochs"] for r in rows if not r["measured"]}
    assert len(early) == 1  # every candidate the same early epochs
    for r in rows:
        if r["mean"] is not None and not r["measured"] and (r["mean"] < 0 or r["upper"] > 1 or r["lower"] < 0):
            assert r["note"] == "paper's model: outside [0, 1]"
        if r["note"]:
            assert r["note"].startswith("paper's model")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--budget", "5%"], "below the smallest that selects here, 8.6%"),
        (["--budget", "abc"], "--budget 'abc' is not a number"),
        (["--features", "beta"], "--features 'beta': start with curve"),
        (["--data", "npz:/does/not/exist.npz"], "does not exist"),
        (["--data", "npz:{bad}"], "x_train"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, extra, message):
    bad = tmp_path / "bad.npz"
    np.savez(bad, y_train=np.zeros(3, int))
    extra = [e.replace("{bad}", str(bad)) for e in extra]
    proc = subprocess.run(
        [sys.executable, "-m", "capjax.cli", "select", "--no-progress", "--out", str(tmp_path), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    err = [l for l in proc.stderr.splitlines() if l.startswith("capjax: error")]
    assert len(err) == 1 and message in err[0]
