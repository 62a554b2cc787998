"""Records: what a sweep wrote, read with NumPy alone (its format, its fields, its readers)."""

from capjax.records import fields, files
from capjax.records.fields import SIGNAL_FIELDS, ZERO_COST_FIELDS, beta_field
from capjax.records.files import CHECKPOINT_DIR, MANIFEST_FILE, RECORDS_FILE, SNAPSHOT_DIR
from capjax.records.sweep import SweepResult, Trajectory, load_recorded, load_records, load_snapshots, load_sweep

__all__ = [
    "CHECKPOINT_DIR",
    "MANIFEST_FILE",
    "RECORDS_FILE",
    "SIGNAL_FIELDS",
    "SNAPSHOT_DIR",
    "ZERO_COST_FIELDS",
    "SweepResult",
    "Trajectory",
    "beta_field",
    "fields",
    "files",
    "load_recorded",
    "load_records",
    "load_snapshots",
    "load_sweep",
]
