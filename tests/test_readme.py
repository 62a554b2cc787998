"""The README's quick start runs as written, and its two commands are the ones CI uses."""

import re
from pathlib import Path

import numpy as np
import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_quick_start_runs_and_records_beta_eff():
    code = re.search(r"## Quick start: beta_eff.*?```python\n(.*?)```", README, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README quick start", "exec"), namespace)
    b = float(namespace["b"])  # step 29: not a recording step
    assert np.isnan(b)
    measured = namespace["step"](namespace["p"], namespace["s"], 30)[2]
    assert np.isfinite(float(measured)) and float(measured) > 0


@pytest.mark.slow
def test_quick_start_selects_your_own_models(tmp_path, monkeypatch):
    code = re.search(r"## Quick start: choose.*?```python\n(.*?)```", README, re.S).group(1)
    assert len(code.strip().splitlines()) < 15
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace("full_epochs=10", "full_epochs=10, progress=False"), "README select", "exec"), namespace)
    sel = namespace["sel"]
    assert sel.chosen in namespace["models"] and sel.compute_fraction <= 0.3 + 1e-9
    assert (tmp_path / "results" / "quick-start" / "results.json").is_file()


def test_ci_runs_the_readme_test_line():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "README.md" in ci
    assert re.search(r"^python3 -m venv .* pytest -n 2 tests$", README, re.M)
    assert re.search(r"^python3 -m venv .* capjax select$", README, re.M)
