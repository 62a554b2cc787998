import json
import subprocess
import sys

import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.cli import main
from capjax.workflows.select import parse_budget


def test_budget_parsing_and_errors():
    assert parse_budget("5", 30) == 5
    assert parse_budget("10%", 30) == 3
    assert parse_budget("1%", 30) == 1
    with pytest.raises(CapjaxInputError, match="exceeds the full training"):
        parse_budget("40", 30)
    with pytest.raises(CapjaxInputError, match="not a number"):
        parse_budget("five", 30)


def test_select_verify_end_to_end(tmp_path):
    args = [
        "select",
        "--zoo",
        "hyper",
        "--n",
        "3",
        "--budget",
        "3",
        "--full-epochs",
        "4",
        "--verify",
        "--out",
        str(tmp_path),
        "--run",
        "r",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
    ]
    assert main(args) == 0
    out = json.loads((tmp_path / "r" / "results.json").read_text())
    assert out["n_candidates"] == 3 and out["budget_epochs"] == 3
    assert {"tau", "regret"} <= set(out["verify"]["predictor"]) and 0 < out["compute"]["fraction_of_full"] < 1
    ranks = [r["rank"] for r in out["ranking"] if r["rank"]]
    assert ranks == sorted(ranks)
    policies = out["verify"]["policies"]
    assert set(policies) == {"this_selection", "successive_halving", "uniform"}
    for p in policies.values():
        assert p["regret"] is None or 0 <= p["regret"] <= 1
        assert p["compute"] <= policies["this_selection"]["compute"] + 1e-9
    for png in ("predictions.png", "beta_hessian_trajectories.png"):
        assert (tmp_path / "r" / png).stat().st_size > 1000


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--budget", "99"], "exceeds the full training"),
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
