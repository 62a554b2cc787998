"""Test setup: eight simulated CPU devices, so sharded code paths run on a laptop or CI."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(items):
    """The slow end-to-end tests first: ``pytest -n 2`` hands tests out in order, and one of
    them started last would leave the other worker idle while it runs."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
