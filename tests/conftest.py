"""Test setup: eight simulated CPU devices, so sharded code paths run on a laptop or CI."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("MPLBACKEND", "Agg")
