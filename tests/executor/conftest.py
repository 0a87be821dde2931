"""A small local Ray (2 CPUs) shared by the Ray tests of this folder; they are skipped only
where ray is not importable (it is pinned in requirements.txt, so CI runs them)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
HAS_RAY = importlib.util.find_spec("ray") is not None


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="ray is not installed (pip install -r requirements.txt)")
    for item in items:
        if "ray" in item.keywords and not HAS_RAY:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ray_cluster():
    """``ray.init(num_cpus=2)``, no GPUs, workers seeded like the driver; shut down at the end."""
    import ray

    if not ray.is_initialized():
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        ray.init(
            num_cpus=2,
            num_gpus=0,
            include_dashboard=False,
            configure_logging=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": path, "PYTHONHASHSEED": "0"}},
        )
    yield ray
    ray.shutdown()
