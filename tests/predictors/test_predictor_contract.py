"""One contract over every registered predictor (as optax's ``_common_test`` is over optimizers).

Each predictor, on a sweep that meets its declared needs, returns a ``(C,)`` score that is
NaN only with a reason, and ``lower <= mean <= upper`` where it forecasts accuracy; on a
task that misses one of its needs, it fails every candidate cleanly, naming that need.
"""

import dataclasses

import numpy as np
import pytest

import capjax
from capjax.predictors import PREDICTORS, Task
from capjax.records import SIGNAL_FIELDS, SNAPSHOT_DIR, ZERO_COST_FIELDS
from tests._fake import fake_sweep, planted_curves

N, EPOCHS, BUDGET = 16, 12, 5


@pytest.fixture(scope="module")
def full_task(tmp_path_factory):
    """A sweep with every field, interaction and snapshot a predictor may ask for."""
    tmp = tmp_path_factory.mktemp("contract")
    fields, final = planted_curves(n=N, epochs=EPOCHS, seed=4)
    rng = np.random.default_rng(0)
    for f in SIGNAL_FIELDS:
        values = rng.normal(size=(N, EPOCHS)) + np.linspace(0, 1, EPOCHS)
        if f in ZERO_COST_FIELDS:
            values[:, 1:] = np.nan
        fields[f] = values
    sweep = fake_sweep(tmp, fields)
    for name in sweep.names:
        folder = tmp / SNAPSHOT_DIR / name
        folder.mkdir(parents=True)
        walk = np.cumsum(rng.normal(size=(EPOCHS, 30)), axis=0).astype(np.float32)
        for e in range(EPOCHS):
            np.save(folder / f"{e:04d}.npy", walk[e])
    reference = np.where(np.arange(N) % 2 == 0, final, np.nan)
    return Task(sweep, BUDGET, EPOCHS - 1, reference=reference, seed=0)


def test_the_registry_is_whole_on_import():
    assert len(capjax.PREDICTORS) >= 28
    assert {"combined", "beta_hessian", "early_acc", "ph_dim", "vahedian", "zc_synflow"} <= set(PREDICTORS)


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_a_task_that_meets_the_needs_gets_a_valid_forecast(full_task, name):
    spec = PREDICTORS[name]
    assert spec.unmet(full_task) is None
    f = spec(full_task)
    assert f.score.shape == (N,) and f.score.dtype == float
    assert tuple(f.names) == full_task.sweep.names
    nan = ~np.isfinite(f.score)
    assert set(f.reasons) == {n for n, bad in zip(f.names, nan) if bad}
    assert all(isinstance(r, str) and r for r in f.reasons.values())
    assert nan.sum() < N, f"{name} scored no candidate: {set(f.reasons.values())}"
    if f.mean is not None and f.lower is not None:
        ok = np.isfinite(f.mean)
        assert np.all(f.lower[ok] <= f.mean[ok] + 1e-12) and np.all(f.mean[ok] <= f.upper[ok] + 1e-12)
    if f.samples is not None:
        assert f.samples.shape[1] == N
    scored = N - nan.sum()
    assert list(f.ranking().order[:scored]) == list(np.argsort(-np.where(nan, -np.inf, f.score))[:scored])


def _missing(task: Task, need: str, spec) -> Task:
    """``task`` without one of ``spec``'s needs."""
    if need == "references":
        return dataclasses.replace(task, reference=None)
    if need == "min_budget":
        return dataclasses.replace(task, budget=spec.needs.min_budget - 1)
    drop = {"fields": set(spec.needs.fields), "interactions": {f"beta_{i}" for i in spec.needs.interactions}}[need]
    trajectories = {
        n: dataclasses.replace(t, values={k: v for k, v in t.values.items() if k not in drop})
        for n, t in task.sweep.trajectories.items()
    }
    return dataclasses.replace(task, sweep=dataclasses.replace(task.sweep, trajectories=trajectories))


CASES = [
    (name, need)
    for name, spec in sorted(PREDICTORS.items())
    for need in ("fields", "interactions", "references", "min_budget", "snapshots")
    if (getattr(spec.needs, need) if need != "min_budget" else spec.needs.min_budget > 1)
    and not (spec.needs.imputes and need in ("fields", "interactions"))
]


@pytest.mark.parametrize(("name", "need"), CASES)
def test_an_unmet_need_fails_every_candidate_naming_it(full_task, tmp_path, name, need):
    spec = PREDICTORS[name]
    if need == "snapshots":
        task = dataclasses.replace(full_task, sweep=dataclasses.replace(full_task.sweep, out_dir=tmp_path))
    else:
        task = _missing(full_task, need, spec)
    why = spec.unmet(task)
    assert why is not None and name in why
    f = spec(task)
    assert np.isnan(f.score).all() and set(f.reasons.values()) == {why}


class _Recorded(Exception):
    pass


@pytest.mark.parametrize("name", capjax.workflows.select_predictors())
def test_select_records_exactly_what_the_predictor_needs(monkeypatch, tmp_path, name):
    seen = {}

    def run_sweep(candidates, dataset, **kwargs):
        seen.update(kwargs)
        raise _Recorded

    monkeypatch.setattr(capjax.workflows.live, "run_sweep", run_sweep)
    needs = PREDICTORS[name].needs
    with pytest.raises(_Recorded):
        capjax.workflows.select_zoo(zoo="hyper", n=2, predictor=name, budget=0.9, out=tmp_path, progress=False)
    assert seen["interactions"] == needs.interactions
    assert sorted(seen["record_fns"] or {}) == sorted(needs.fields)
    assert seen["snapshot_params"] == needs.snapshots


def test_select_refuses_what_it_cannot_meet_at_once(tmp_path):
    supervised = [n for n, s in PREDICTORS.items() if s.needs.references]
    assert supervised and not set(supervised) & set(capjax.workflows.select_predictors())
    with pytest.raises(capjax.CapjaxInputError, match="--predictor combined is fitted on fully trained reference"):
        capjax.workflows.select_zoo(predictor="combined", out=tmp_path)
    with pytest.raises(capjax.CapjaxInputError, match="needs >= 4 early epochs per candidate; --budget 12.0% gives 1"):
        capjax.workflows.select_zoo(predictor="ph_dim", budget="12%", out=tmp_path)
