"""The on-disk format of a sweep directory, and its whole-file and whole-line writes.

A sweep directory holds ``records.jsonl`` (one JSON line per candidate and epoch, see
:mod:`capjax.records.fields`), ``sweep.json`` (the manifest of the settings that made
them), ``ckpt/`` (orbax checkpoints) and ``snapshots/`` (per-epoch parameters when
asked). Appends are whole lines, flushed and fsynced; other files are replaced atomically.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from pathlib import Path

from capjax.base.validation import CapjaxInputError

RECORDS_FILE = "records.jsonl"
MANIFEST_FILE = "sweep.json"
CHECKPOINT_DIR = "ckpt"
SNAPSHOT_DIR = "snapshots"


def read_lines(path: Path) -> tuple[list[dict], bool]:
    """Parsed records and whether the file ends in a torn (partly written) line.

    A path ending in ``.gz`` is read through gzip (the compressed records the benchmarks
    commit).
    """
    if not path.exists():
        return [], False
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = raw.split(b"\n")
    # Every complete record ends with "\n"; whatever follows the last one is torn.
    complete, tail = lines[:-1], lines[-1]
    records = []
    for i, line in enumerate(complete):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i < len(complete) - 1:
                raise CapjaxInputError(
                    f"{path} line {i + 1} is not JSON ({err}); the records file was edited "
                    "or corrupted: delete the sweep directory and rerun"
                ) from err
            return records, True  # a torn last line that happened to contain a newline
    return records, bool(tail)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step: a flushed, fsynced temporary file renamed."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_lines(path: Path, records: Sequence[dict]) -> None:
    """Append one JSON line per record in a single write, flushed and fsynced."""
    if not records:
        return
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_manifest(out_dir: Path) -> dict | None:
    """The sweep's manifest, or None when ``out_dir`` holds no sweep yet."""
    path = out_dir / MANIFEST_FILE
    return json.loads(path.read_text()) if path.exists() else None

