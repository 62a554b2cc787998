"""Reading records without the sweep that wrote them: plain or gzip-compressed, numpy only."""

import gzip
import json

import numpy as np
import pytest

from capjax.base.validation import CapjaxInputError
from capjax.records import RECORDS_FILE, load_recorded, load_records


def _lines():
    rows = [{"name": n, "epoch": e, "val_acc": 0.1 * e + i, "passes_train": 100 * e} for e in range(3)
            for i, n in enumerate(("b", "a"))]
    rows.append({"name": "c", "epoch": 0, "val_acc": 0.5, "passes_train": 0})
    rows.append({"name": "c", "epoch": 1, "failed": True, "reason": "loss is nan"})
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.mark.parametrize("compressed", [False, True])
def test_a_records_file_alone_is_a_sweep(tmp_path, compressed):
    path = tmp_path / (RECORDS_FILE + (".gz" if compressed else ""))
    path.write_bytes(gzip.compress(_lines()) if compressed else _lines())
    sweep = load_recorded(path)
    assert sweep.names == ("b", "a", "c")  # the order of first appearance
    np.testing.assert_allclose(sweep.array("val_acc", 2), [[0.1, 0.2], [1.1, 1.2], [np.nan, np.nan]])
    assert sweep.failed.tolist() == [False, False, True]
    assert sweep.trajectories["c"].reason == "loss is nan"
    if not compressed:
        assert load_records(tmp_path).keys() == sweep.trajectories.keys()


def test_a_missing_records_file_is_a_clear_error(tmp_path):
    with pytest.raises(CapjaxInputError, match="not a records file"):
        load_recorded(tmp_path / "nothing.jsonl.gz")
