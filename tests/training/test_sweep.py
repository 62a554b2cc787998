"""Resumable sweeps: records, vmapped groups, divergence, crash safety (kill -9)."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.data import load_dataset
from capjax.records import RECORDS_FILE, load_records, load_snapshots, load_sweep
from capjax.records.fields import WALL_FIELDS
from capjax.training import Candidate, run_sweep
from capjax.training.groups import plan_groups

SMALL = dict(family="mlp", depth=1, width=16, probe_widths=(8, 8), batch_size=32)
INTERACTIONS = ("coupling", "hessian")
PROBE_BATCH = 64


def head_norm(params, ctx) -> float:
    return float(np.linalg.norm(params["head"]["kernel"]))


def group() -> list[Candidate]:
    """One shape, different hyperparameters and seeds, and one that diverges."""
    return [
        Candidate("a", lr=3e-3, **SMALL),
        Candidate("b", lr=1e-3, weight_decay=1e-3, init_scale=1.5, seed=1, **SMALL),
        Candidate("bad", lr=1e30, **SMALL),
    ]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", max_examples=500)


def sweep(cands, digits, out, epochs, **kwargs):
    options = dict(interactions=INTERACTIONS, probe_batch=PROBE_BATCH, progress=False,
                   record_fns={"head_norm": head_norm}, snapshot_params=True,
                   cache_dir=out.parent / "cache")
    return run_sweep(cands, digits, epochs=epochs, out_dir=out, **{**options, **kwargs})


@pytest.fixture(scope="module")
def group_run(digits, tmp_path_factory):
    """The group on 2 devices: 3 candidates in 4 lanes, one padding lane."""
    out = tmp_path_factory.mktemp("sweeps") / "group"
    return out, sweep(group(), digits, out, 2, devices=jax.devices()[:2])


def lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / RECORDS_FILE).read_text().splitlines()]


def without_wall(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_FIELDS} for r in records]


def test_records_of_a_small_sweep(group_run, digits):
    out, res = group_run
    recs = lines(out)
    assert [(r["name"], r["epoch"]) for r in recs] == [
        ("a", 0), ("b", 0), ("bad", 0), ("a", 1), ("b", 1), ("bad", 1), ("a", 2), ("b", 2)
    ]
    fail = recs[5]
    assert fail["failed"] is True and set(fail) == {"name", "epoch", "failed", "reason"}
    assert "epoch 1" in fail["reason"] and "learning rate" in fail["reason"]
    n_train, n_eval = len(digits.y_train), len(digits.y_val) + len(digits.y_test)
    for r in recs:
        if r.get("failed"):
            continue
        e = r["epoch"]
        assert (r["train_loss"] is None) == (e == 0)
        assert 0 <= r["val_acc"] <= 1 and 0 <= r["test_acc"] <= 1
        assert r["beta_coupling"] > 0 and r["beta_hessian"] is not None
        assert r["passes_train"] == 2 * e * (n_train // 32) * 32
        assert r["passes_eval"] == (e + 1) * n_eval
        assert r["passes_beta"] == (e + 1) * PROBE_BATCH * (2 + 3)
        assert r["wall_s"] > 0 and r["wall_beta_s"] > 0
    assert res.names == ("a", "b", "bad")
    np.testing.assert_array_equal(res.failed, [False, False, True])
    acc = res.array("val_acc")
    assert acc.shape == (3, 2) and np.isnan(acc[2]).all() and np.isfinite(acc[:2]).all()
    assert np.isfinite(res.initial("val_acc")).all()
    assert res.trajectories["bad"].failed_epoch == 1
    assert res.trajectories["a"]["val_acc"][-1] > res.trajectories["a"]["val_acc"][0]
    with pytest.raises(CapjaxInputError, match="no field"):
        res.trajectories["a"]["nope"]


def test_snapshots_and_record_fns(group_run):
    out, _ = group_run
    epochs, flat = load_snapshots(out, "a")
    np.testing.assert_array_equal(epochs, [0, 1, 2])
    n_head = 8 * 10
    assert flat.shape == (3, (64 * 16 + 16) + (n_head + 10)) and flat.dtype == np.float32
    # ravel_pytree orders {"backbone", "head"} then each head's {"bias", "kernel"}.
    norms = np.linalg.norm(flat[:, -n_head:], axis=1)
    np.testing.assert_allclose(norms, load_records(out)["a"]["head_norm"], rtol=1e-6)
    assert not np.allclose(flat[0], flat[2])
    with pytest.raises(CapjaxInputError, match="snapshot_params"):
        load_snapshots(out, "bad-name")


def test_finished_sweep_returns_at_once(group_run, digits):
    out, res = group_run
    before = (out / RECORDS_FILE).read_bytes()
    again = sweep(group(), digits, out, 2, devices=jax.devices()[:2])
    assert (out / RECORDS_FILE).read_bytes() == before
    np.testing.assert_array_equal(again.array("val_loss"), res.array("val_loss"))


def test_lost_checkpoint_and_torn_records_are_redone(group_run, digits, tmp_path):
    out, _ = group_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "ckpt" / "2")  # as if killed after appending epoch 2's records
    with open(copy / RECORDS_FILE, "a") as f:
        f.write('{"name": "a", "epoch": 3, "val')  # and a torn line after it
    sweep(group(), digits, copy, 2, devices=jax.devices()[:2])
    assert without_wall(lines(copy)) == without_wall(lines(out))
    for name in ("a", "b"):
        np.testing.assert_array_equal(load_snapshots(copy, name)[1], load_snapshots(out, name)[1])


def test_vmapped_group_equals_each_candidate_alone_and_extension(group_run, digits, tmp_path):
    out, _ = group_run
    extended = tmp_path / "extended"
    shutil.copytree(out, extended)
    grouped = load_records(sweep(group(), digits, extended, 3, devices=jax.devices()[:2]).out_dir)
    assert grouped["a"].epochs.tolist() == [0, 1, 2, 3]
    assert grouped["bad"].epochs.tolist() == [0]  # a failed candidate stays failed
    for cand in group()[:2]:
        alone = load_records(sweep([cand], digits, tmp_path / cand.name, 3).out_dir)
        g, a = grouped[cand.name], alone[cand.name]
        assert set(g.values) == set(a.values)
        for field in set(g.values) - set(WALL_FIELDS):
            np.testing.assert_allclose(g[field], a[field], rtol=2e-5, atol=1e-7, err_msg=field)


def test_candidates_trained_to_their_own_epochs(group_run, digits, tmp_path):
    """A selection trains some lanes of a group further than others, then catches them up:
    the records are those of training both together, and a lane held back stays put."""
    staggered = tmp_path / "staggered"
    cands = group()[:2]
    held = load_records(sweep(cands, digits, staggered, {"a": 1, "b": 3}).out_dir)
    assert held["a"].epochs.tolist() == [0, 1] and held["b"].epochs.tolist() == [0, 1, 2, 3]
    lower = load_records(sweep(cands, digits, staggered, {"a": 1, "b": 2}).out_dir)  # never lowers
    assert lower["b"].epochs.tolist() == [0, 1, 2, 3]
    caught_up = load_records(sweep(cands, digits, staggered, 3).out_dir)
    together = load_records(sweep(cands, digits, tmp_path / "together", 3).out_dir)
    for name in ("a", "b"):
        g, t = caught_up[name], together[name]
        assert g.epochs.tolist() == [0, 1, 2, 3]
        for field in set(t.values) - set(WALL_FIELDS):
            np.testing.assert_allclose(g[field], t[field], rtol=2e-5, atol=1e-7, err_msg=field)
    with pytest.raises(CapjaxInputError, match="every candidate"):
        sweep(cands, digits, staggered, {"a": 3})


def test_bad_arguments(group_run, digits, tmp_path):
    out, _ = group_run
    cands = group()[:2]
    with pytest.raises(CapjaxInputError, match="different candidates"):
        sweep(cands, digits, out, 2)
    with pytest.raises(CapjaxInputError, match="different interactions"):
        sweep(group(), digits, out, 2, interactions=("coupling",))
    new = tmp_path / "new"
    for kwargs, match in [
        (dict(probe_batch=10_000), "probe_batch"),
        (dict(interactions=("nope",)), "unknown interaction"),
        (dict(interactions=("coupling", "coupling")), "repeat"),
        (dict(record_fns={"val_acc": head_norm}), "record_fns"),
        (dict(record_fns={"norm": 3}), "record_fns"),
    ]:
        with pytest.raises(CapjaxInputError, match=match):
            sweep(cands, digits, new, 2, **kwargs)
    with pytest.raises(CapjaxInputError, match="epochs"):
        sweep(cands, digits, new, -1)
    with pytest.raises(CapjaxInputError, match="batch_size"):
        sweep([Candidate("big", "mlp", 1, 4, batch_size=5000)], digits, new, 1)
    with pytest.raises(CapjaxInputError, match="no sweep"):
        load_sweep(tmp_path / "nothing")


def test_spread_groups_lie_one_after_another_around_the_devices():
    """Spread (multi-process) groups span every device, each beginning after the devices
    holding the previous group's members; one process's groups take the first devices."""
    devices = jax.devices()[:4]
    d0, d1, d2, d3 = devices
    cands = [Candidate(f"w{w}-{k}", seed=k, **{**SMALL, "width": w})
             for w, n in ((16, 1), (24, 3), (32, 5), (40, 1)) for k in range(n)]
    spread = plan_groups(cands, devices, spread=True)
    assert [list(g.mesh.devices.flat) for g in spread] == [
        [d0, d1, d2, d3], [d1, d2, d3, d0], [d0, d1, d2, d3], [d3, d0, d1, d2]]
    # members first, then padding: the group of 5 holds 2 lanes per device, members on 3
    assert [len(g.lanes) for g in spread] == [4, 4, 8, 4]
    alone = plan_groups(cands, devices, spread=False)
    assert [list(g.mesh.devices.flat) for g in alone] == [[d0], [d0, d1, d2], [d0, d1, d2], [d0]]
    assert [len(g.lanes) for g in alone] == [1, 3, 6, 1]


def test_load_records_ignores_a_torn_last_line(tmp_path):
    rec = {"name": "x", "epoch": 0, "val_acc": 0.5, "train_loss": None}
    (tmp_path / RECORDS_FILE).write_text(json.dumps(rec) + "\n" + '{"name": "x", "ep')
    traj = load_records(tmp_path)["x"]
    assert traj.epochs.tolist() == [0] and np.isnan(traj["train_loss"][0])
    (tmp_path / RECORDS_FILE).write_text("garbage\n" + json.dumps(rec) + "\n")
    with pytest.raises(CapjaxInputError, match="line 1"):
        load_records(tmp_path)


# ---------------------------------------------------------------------------------------
# Kill -9 at random moments, resume, and end with the records of an uninterrupted run.

WORKER = [sys.executable, str(Path(__file__).resolve().parents[1] / "_sweep_worker.py")]


def complete_lines(out: Path) -> int:
    try:
        return (out / RECORDS_FILE).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_records(digits, tmp_path):
    # The subprocesses share a persistent compilation cache, so only the first compiles.
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    data = tmp_path / "digits.npz"
    np.savez(data, **{f"{a}_{s}": getattr(digits, f"{a}_{s}")
                      for a in "xy" for s in ("train", "val", "test")})
    worker = [*WORKER, str(data)]
    ref = tmp_path / "reference"
    subprocess.run([*worker, str(ref), str(tmp_path / "ref-cache")], env=env, check=True,
                   capture_output=True, timeout=600)
    out, cache = tmp_path / "killed", tmp_path / "cache"
    rng = random.Random(0)
    # Kill (1) while pretraining or compiling, then (2, 3) after the records of epoch 0 and
    # of epoch 1 (3 lines each); a random delay lands the kill anywhere in an epoch (either
    # group's compute, the append, the checkpoint).
    phases = [(lambda: (out / "sweep.json").exists(), 1.5),
              (lambda: complete_lines(out) >= 3, 0.15),
              (lambda: complete_lines(out) >= 6, 0.15)]
    killed = 0
    for ready, max_delay in phases:
        proc = subprocess.Popen([*worker, str(out), str(cache)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, max_delay))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    subprocess.run([*worker, str(out), str(cache)], env=env, check=True, capture_output=True,
                   timeout=600)
    assert killed == len(phases)
    assert without_wall(lines(out)) == without_wall(lines(ref))
    for name in ("a-scratch", "b-half-pre2", "c-deep"):
        np.testing.assert_array_equal(load_snapshots(out, name)[1], load_snapshots(ref, name)[1])
