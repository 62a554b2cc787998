"""A LiveView trains for real what a PaidView replays: the engine decides the same on both."""

import numpy as np
import pytest

from capjax.data import load_dataset
from capjax.records.fields import WALL_FIELDS
from capjax.selection import PaidView, capjax_engine
from capjax.training import Candidate, run_sweep
from capjax.workflows import LiveView

SMALL = dict(family="mlp", depth=1, width=16, probe_widths=(8, 8), batch_size=32)
FULL = 6


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    cands = [Candidate(f"lr{lr:g}", lr=lr, seed=k, **SMALL) for k, lr in enumerate((3e-3, 1e-3, 3e-4))]
    cands.append(Candidate("diverges", lr=1e30, **SMALL))
    digits = load_dataset("digits", max_examples=500)
    opts = dict(interactions=(), progress=False, cache_dir=tmp / "cache")
    full = run_sweep(cands, digits, epochs=FULL, out_dir=tmp / "full", **opts)
    return cands, digits, opts, full, tmp


def test_the_engine_decides_the_same_live_as_on_the_replayed_full_sweep(setting):
    """...and a candidate that diverges mid-selection is failed with its reason; the run goes on."""
    cands, digits, opts, full, tmp = setting
    live = LiveView(cands, digits, FULL, tmp / "live", **opts)
    replay = PaidView(full, FULL)
    np.testing.assert_array_equal(live.passes_per_epoch, replay.passes_per_epoch)
    a, b = capjax_engine(live, 0.6), capjax_engine(replay, 0.6)
    assert a.chosen == b.chosen and a.chosen != 3
    assert live.failed.tolist() == [False, False, False, True] and "learning rate" in live.reasons()[3]
    assert np.all(a.draws[:, 3] == 0)  # never best
    np.testing.assert_array_equal(a.epochs, b.epochs)
    assert a.fraction == pytest.approx(b.fraction)
    np.testing.assert_allclose(a.draws, b.draws, atol=1e-6)
    # the live sweep trained each candidate exactly as far as the engine paid, no further
    recorded = live.records()
    for c, name in enumerate(live.names):
        traj = recorded.trajectories[name]
        if not traj.failed:
            assert traj.epochs.max() == a.epochs[c]
            fields = set(traj.values) - set(WALL_FIELDS)
            for f in fields:
                np.testing.assert_allclose(traj[f], full.trajectories[name][f][: len(traj[f])], rtol=2e-5,
                                           atol=1e-7, err_msg=f)
