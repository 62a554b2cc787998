"""Fault injection: whatever happens to a sweep folder or the disk, finished work survives.

Each fault is applied to a copy of a finished sweep (or injected into a running one); the
rerun must end with the records of the untouched run: same values, no duplicates, no holes.
"""

import errno
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError, CapjaxWarning
from capjax.data import load_dataset
from capjax.records import RECORDS_FILE
from capjax.records.fields import WALL_FIELDS
from capjax.records.files import MANIFEST_FILE, exclusive
from capjax.training import Candidate, pretrain, run_sweep
from capjax.training.checkpoints import Checkpoints
from capjax.training.sweep import _divergence

SMALL = dict(family="mlp", depth=1, width=16, probe_widths=(8,), batch_size=32)
EPOCHS = 3


def zoo() -> list[Candidate]:
    return [Candidate("a", lr=3e-3, **SMALL), Candidate("b", lr=1e-3, seed=1, **SMALL)]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", max_examples=400)


def sweep(digits, out, **kwargs):
    options = dict(epochs=EPOCHS, out_dir=out, interactions=("hessian",), probe_batch=32, progress=False,
                   cache_dir=out.parent / "cache")
    return run_sweep(zoo(), digits, **{**options, **kwargs})


def records(out) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in WALL_FIELDS}
            for line in (out / RECORDS_FILE).read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "reference"
    sweep(digits, out)
    return out


def _largest_file(folder):
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _drop_last_line(out):
    lines = (out / RECORDS_FILE).read_text().splitlines(keepends=True)
    (out / RECORDS_FILE).write_text("".join(lines[:-1]))


def _duplicate_epoch_0(out):
    lines = (out / RECORDS_FILE).read_text().splitlines(keepends=True)
    (out / RECORDS_FILE).write_text("".join(lines[:2] + lines[:2] + lines[2:]))  # as two writers once left


FAULTS = {
    "torn last line": lambda out: (out / RECORDS_FILE).write_bytes((out / RECORDS_FILE).read_bytes()[:-25]),
    "lost last line": _drop_last_line,
    "deleted records": lambda out: (out / RECORDS_FILE).unlink(),
    "duplicated epoch 0": _duplicate_epoch_0,
    "deleted manifest": lambda out: (out / MANIFEST_FILE).unlink(),
    "torn manifest": lambda out: (out / MANIFEST_FILE).write_text((out / MANIFEST_FILE).read_text()[:40]),
    "zero-byte file in the newest checkpoint": lambda out: _largest_file(out / "ckpt" / "3").write_bytes(b""),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_damaged_sweep_folder_heals_to_the_untouched_records(fault, digits, reference, tmp_path):
    out = tmp_path / "damaged"
    shutil.copytree(reference, out)
    FAULTS[fault](out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep(digits, out)
    assert records(out) == records(reference)
    if fault not in ("duplicated epoch 0",):  # a repair that changes nothing needs no warning
        assert any(issubclass(w.category, CapjaxWarning) for w in caught) or fault == "torn last line"
    assert Checkpoints(out / "ckpt").steps()[-1] == EPOCHS


def test_a_lost_manifest_never_mixes_settings(digits, reference, tmp_path):
    out = tmp_path / "other"
    shutil.copytree(reference, out)
    (out / MANIFEST_FILE).unlink()
    with pytest.raises(CapjaxInputError, match=r"no readable manifest.*beta_eff fields \['beta_hessian'\], not "
                                               r"\['beta_coupling'\] \(interactions\)"):
        sweep(digits, out, interactions=("coupling",))
    with pytest.raises(CapjaxInputError, match="different interactions"):
        sweep(digits, reference, interactions=("coupling",))


def test_an_unreadable_cache_entry_is_rebuilt(digits, tmp_path):
    c = Candidate("p", source="half", pretrain_epochs=1, **SMALL)
    first = pretrain.pretrain_backbones([c], digits, tmp_path)
    (entry,) = (tmp_path / "pretrain").iterdir()
    _largest_file(entry).write_bytes(b"\0" * 16)
    with pytest.warns(CapjaxWarning, match="unreadable.*rebuilding"):
        again = pretrain.pretrain_backbones([c], digits, tmp_path)
    for a, b in zip(first["p"]["layers"], again["p"]["layers"], strict=True):
        np.testing.assert_array_equal(a["kernel"], b["kernel"])


def test_twenty_simultaneous_starts_one_proceeds(digits, reference, tmp_path):
    out = tmp_path / "crowded"
    barrier, outcomes = threading.Barrier(20), []

    def start():
        barrier.wait()
        try:
            sweep(digits, out)
            outcomes.append("ran")
        except CapjaxInputError as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=start) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refusals = [o for o in outcomes if o != "ran"]
    assert outcomes.count("ran") == 1 and len(refusals) == 19
    assert all(o.startswith("another capjax run (pid ") and "\n" not in o for o in refusals)
    assert records(out) == records(reference)


def test_a_killed_holder_frees_the_lock_at_once(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom capjax.records.files import exclusive\n"
         f"with exclusive(__import__('pathlib').Path({str(tmp_path)!r})):\n    print('held', flush=True)\n"
         "    time.sleep(600)\n"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(CapjaxInputError, match=f"another capjax run \\(pid {holder.pid}\\)"), exclusive(tmp_path):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    t0 = time.monotonic()
    with exclusive(tmp_path):
        assert time.monotonic() - t0 < 1


@pytest.mark.parametrize("where, error, match", [
    ("save", OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    ("save", ValueError("RESOURCE_EXHAUSTED: Error writing local file"), "RESOURCE_EXHAUSTED"),
    ("append", OSError(errno.EROFS, "Read-only file system"), "Read-only file system"),
])
def test_a_disk_fault_mid_run_is_one_line_and_the_rerun_is_untouched(where, error, match, digits, reference,
                                                                      tmp_path, monkeypatch):
    out = tmp_path / "disk"
    calls = []
    if where == "save":
        real = Checkpoints.save

        def fail(self, step, states):
            calls.append(step)
            if len(calls) == 2:
                raise error
            return real(self, step, states)

        monkeypatch.setattr(Checkpoints, "save", fail)
    else:
        import capjax.training.sweep as sweep_module

        real = sweep_module.append_lines

        def fail(path, recs):
            calls.append(path)
            if len(calls) == 3:
                raise error
            return real(path, recs)

        monkeypatch.setattr(sweep_module, "append_lines", fail)
    with pytest.raises(CapjaxInputError, match=f"writing the records and checkpoint in .*{match}.*finished epochs are "
                                               "kept") as err:
        sweep(digits, out)
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CapjaxWarning)
        sweep(digits, out)
    assert records(out) == records(reference)


def test_out_that_cannot_be_written_fails_before_loading(tmp_path, capsys):
    from capjax.cli.main import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    t0 = time.monotonic()
    assert main(["select", "--out", str(blocker / "results"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("capjax: error: --out ") and "pass a writable --out" in err and err.count("\n") == 1
    assert time.monotonic() - t0 < 5


def test_divergence_by_magnitude(digits, tmp_path):
    # a loss blown up a thousandfold, or an accuracy back at chance after learning, is a failure
    ok = {"train_loss": 2.0, "val_loss": 2.0, "val_acc": 0.5}
    assert _divergence(ok, True, 3, (2.3, 0.6), 10) is None
    assert "over 1000 times" in _divergence({**ok, "val_loss": 2.4e3}, True, 3, (2.3, 0.6), 10)
    assert "fell back to chance" in _divergence({**ok, "val_acc": 0.11}, True, 3, (2.3, 0.6), 10)
    assert _divergence({**ok, "val_acc": 0.11}, True, 3, (2.3, 0.15), 10) is None  # never learned: not a collapse
    out = run_sweep([Candidate("huge", lr=1e6, **SMALL), *zoo()], digits, epochs=2, out_dir=tmp_path / "s",
                    interactions=(), progress=False, cache_dir=tmp_path / "cache")
    huge = out.trajectories["huge"]
    assert huge.failed and ("over 1000 times" in huge.reason or "fell back to chance" in huge.reason
                            or "NaN" in huge.reason or "inf" in huge.reason)
    assert not out.trajectories["a"].failed
