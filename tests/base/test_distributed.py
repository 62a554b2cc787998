"""One selection over several processes (docs/method.md §9), tested as the issue asks:
localhost processes with 2 simulated CPU devices each, against one process with 4.

Every multi-process case runs ``capjax`` in subprocesses (a process joins JAX's runtime
once, for good); the flag checks and the unreachable coordinator run in this process,
since they end before anything touches the runtime.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from capjax.base import distributed
from capjax.base.validation import CapjaxInputError
from capjax.cli.main import main

SELECT = ["select", "--candidates", str(Path(__file__).with_name("_two_groups.py")), "--full-epochs", "2",
          "--budget", "80%", "--no-progress", "--run", "x"]
JOIN = 8  # --join-timeout of the bad-input cases, seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def env(tmp: Path, devices: int) -> dict:
    # A shared persistent compilation cache: only the first run of each program compiles.
    return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
            "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp / "xla"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def capjax(args: list[str], tmp: Path, devices: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "capjax.cli.main", *args], env=env(tmp, devices),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def processes(args: list[str], tmp: Path, ids: list[int], counts: list[int], port: int | None = None) -> list:
    """One ``capjax`` per ``(id, --num-processes)``, 2 devices each, all on one coordinator."""
    port = port or free_port()
    return [capjax([*args, "--coordinator", f"localhost:{port}", "--num-processes", str(n), "--process-id", str(i)],
                   tmp, 2) for i, n in zip(ids, counts)]


def finish(procs: list, timeout: float = 300) -> list[tuple[int, str]]:
    """``(exit code, stderr)`` of each process."""
    return [(p.wait(timeout=timeout), p.communicate()[1]) for p in procs]


def records(run: Path) -> dict:
    lines = (run / "x" / "sweep" / "records.jsonl").read_text().splitlines()
    return {(r["name"], r["epoch"]): (r["val_acc"], r["test_acc"]) for r in map(json.loads, lines)}


def result(run: Path) -> dict:
    return json.loads((run / "x" / "results.json").read_text())


def assert_same_selection(run: Path, ref: Path) -> None:
    got, want = records(run), records(ref)
    assert got.keys() == want.keys()
    for key, accs in want.items():
        assert got[key] == pytest.approx(accs, abs=1e-4), key
    assert result(run)["chosen"] == result(ref)["chosen"]


@pytest.mark.slow
def test_two_processes_select_as_one_and_resume_after_both_are_killed(tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    two = tmp_path / "two"
    ref = capjax([*SELECT, *cache, "--out", str(tmp_path / "one")], tmp_path, 4)
    assert ref.wait(timeout=300) == 0, ref.communicate()[1]
    outcomes = finish(processes([*SELECT, *cache, "--out", str(two)], tmp_path, [0, 1], [2, 2]))
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert_same_selection(two, tmp_path / "one")
    # Each process trains the lanes on its own devices; every candidate's name says whose
    # (_two_groups.py), and each process holds two of the four.
    compute = result(two)["compute"]
    rows = result(two)["ranking"]
    per_epoch = compute["train_passes"] / sum(r["epochs"] for r in rows)
    by_process = [sum(r["epochs"] for r in rows if r["name"].endswith(f"-p{i}")) * per_epoch for i in (0, 1)]
    assert compute["train_passes_by_process"] == by_process
    assert min(by_process) > 0

    killed = tmp_path / "killed"
    args = [*SELECT, *cache, "--out", str(killed)]
    procs = processes(args, tmp_path, [0, 1], [2, 2])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        path = killed / "x" / "sweep" / "records.jsonl"
        if path.exists() and path.read_bytes().count(b"\n") >= 4:  # epoch 0 recorded, training under way
            break
        time.sleep(0.01)
    assert all(p.poll() is None for p in procs), "the run ended before it could be killed"
    for p in procs:
        p.send_signal(signal.SIGKILL)
    finish(procs)
    outcomes = finish(processes(args, tmp_path, [0, 1], [2, 2]))
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert_same_selection(killed, tmp_path / "one")


@pytest.mark.slow
def test_bad_starts_end_in_one_line_within_the_timeout(tmp_path):
    args = ["select", "--zoo", "hyper", "--n", "2", "--no-progress", "--out", str(tmp_path), "--join-timeout",
            str(JOIN)]
    started = time.monotonic()
    cases = {
        "worker counts more": processes(args, tmp_path, [0, 1], [2, 3]),
        "worker counts fewer": processes(args, tmp_path, [0, 1], [3, 2]),
        "two with one id": processes(args, tmp_path, [0, 1, 1], [2, 2, 2]),
    }
    ended = {case: finish(procs, timeout=JOIN + 60) for case, procs in cases.items()}
    assert time.monotonic() - started < JOIN + 60
    for case, outcomes in ended.items():
        assert all(code != 0 for code, _ in outcomes), (case, outcomes)
    for code, err in ended["worker counts more"]:  # both joined, then compared counts
        assert code == 2 and err.strip().splitlines()[-1].startswith("capjax: error: --num-processes differs"), err
    for code, err in ended["worker counts fewer"]:  # process 0 waits for a third that never comes
        assert code == distributed.JOINED_EXIT_CODE and f"within {JOIN} s" in err and "--process-id" in err, err
    # JAX notices the second process 1 only when it re-registers, then ends every process with
    # its own abort (a log, not our line); none hangs, and one at least prints our line.
    ours = [err for _, err in ended["two with one id"] if "capjax: error:" in err]
    assert ours and all("--process-id" in err for err in ours), ended["two with one id"]


def test_unreachable_coordinator_is_a_one_line_error_in_time(capsys):
    assert distributed.INIT_TIMEOUT_S <= 60
    started = time.monotonic()
    code = main(["select", "--coordinator", f"localhost:{free_port()}", "--num-processes", "2",
                 "--process-id", "1", "--join-timeout", "1"])
    assert code == 2 and time.monotonic() - started < 10
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no coordinator answers" in err and "--coordinator" in err


@pytest.mark.parametrize("flags, named", [
    (dict(coordinator="localhost:1234"), "--num-processes, --process-id"),
    (dict(coordinator="nohost", num_processes=2, process_id=0), "--coordinator"),
    (dict(coordinator="h:1234", num_processes=0, process_id=0), "--num-processes"),
    (dict(coordinator="h:1234", num_processes=2, process_id=2), "--process-id"),
])
def test_flags_are_checked_before_joining(flags, named):
    with pytest.raises(CapjaxInputError, match=named):
        distributed.initialize(**flags)


def test_one_process_needs_no_runtime():
    assert distributed.initialize() is False
    assert distributed.is_primary()
    assert distributed.per_process(7) == (7,)
    assert distributed.shared(lambda: {"a": 1}) == {"a": 1}
    assert distributed.gathered({"x": np.arange(2)})["x"].tolist() == [0, 1]
