"""The on-disk format of a sweep directory, and its whole-file and whole-line writes.

A sweep directory holds ``records.jsonl`` (one JSON line per candidate and epoch, see
:mod:`capjax.records.fields`), ``sweep.json`` (the manifest of the settings that made
them), ``ckpt/`` (orbax checkpoints) and ``snapshots/`` (per-epoch parameters when
asked). Appends are whole lines, flushed and fsynced; other files are replaced atomically.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from capjax.base.validation import CapjaxInputError

RECORDS_FILE = "records.jsonl"
MANIFEST_FILE = "sweep.json"
CHECKPOINT_DIR = "ckpt"
SNAPSHOT_DIR = "snapshots"
LOCK_FILE = ".lock"


@contextlib.contextmanager
def exclusive(folder: Path, *, wait: bool = False, flag: str = "--out") -> Iterator[None]:
    """Hold an OS lock (``fcntl.flock``) on ``folder/.lock`` while the block runs.

    The kernel releases it when the holder exits for any reason, ``kill -9`` included,
    so a stale lock cannot outlive its run. ``wait=False`` refuses at once, naming the
    holder's pid; ``wait=True`` (shared caches) waits for it. ``flag`` names the setting
    in the error ("--out").
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise _unwritable(folder, flag, err) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise CapjaxInputError(
                f"another capjax run (pid {pid}) is using {folder}; wait for it to finish or pass another {flag}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


_STORAGE_CODES = ("RESOURCE_EXHAUSTED", "PERMISSION_DENIED", "No space", "Read-only", "Permission denied")
"""How tensorstore (under orbax) words a filesystem failure inside a ValueError."""


@contextlib.contextmanager
def written(folder: Path, what: str) -> Iterator[None]:
    """Turn a failed write of ``what`` under ``folder`` into a one-line error that says what to do."""
    try:
        yield
        return
    except OSError as err:
        reason = os_reason(err)
    except ValueError as err:
        if not any(code in str(err) for code in _STORAGE_CODES):
            raise
        reason = str(err).strip().splitlines()[0][:160]
    raise CapjaxInputError(
        f"writing the {what} in {folder} failed ({reason}); free disk space or fix its permissions and rerun: "
        "finished epochs are kept"
    ) from None


def writable(folder: Path, flag: str) -> None:
    """Create ``folder`` and write a file in it, or raise a one-line error naming ``flag``."""
    probe = Path(folder) / f".capjax-write-test-{os.getpid()}"
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise _unwritable(folder, flag, err) from None


def _unwritable(folder: Path, flag: str, err: OSError) -> CapjaxInputError:
    return CapjaxInputError(f"{flag} {folder} cannot be written ({os_reason(err)}); pass a writable {flag}")


def os_reason(err: OSError) -> str:
    """A short reason of a filesystem error, e.g. "No space left on device"."""
    return err.strerror or errno.errorcode.get(err.errno or 0, type(err).__name__)


def json_number(value: Any) -> float | None:
    """A JSON-safe float: None for NaN/inf (strict JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


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
    """The sweep's manifest, or None when ``out_dir`` holds no sweep yet.

    Raises:
      CapjaxInputError: when the file is not JSON (torn or edited); rerunning the sweep
        rebuilds it from what the records prove.
    """
    path = out_dir / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CapjaxInputError(
            f"{path} is not valid JSON (torn or edited); rerun the sweep on {out_dir} to rebuild it"
        ) from None

