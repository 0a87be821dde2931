"""The default path never imports ray: the package, the ranking, the CLI and ``rank --demo``
start as fast as before the Ray executor existed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "RESQUE_CACHE_DIR": str(tmp_path), "HOME": str(tmp_path)},
    )


def test_imports_and_the_local_executor_do_not_import_ray(tmp_path):
    code = (
        "import sys\n"
        "import resque_core, resque_core.ranking, resque_core.validation, resque_core.cli\n"
        "from resque_core.executor import make_executor\n"
        "ex = make_executor('local')\n"
        "print(ex.describe(), 'ray' in sys.modules)\n"
    )
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "local (this process) False"


@pytest.mark.slow
def test_rank_demo_does_not_import_ray(tmp_path):
    code = (
        "import sys\n"
        "from resque_core.cli import main\n"
        f"code = main(['rank', '--demo', '--json', '--cache-dir', {str(tmp_path)!r}])\n"
        "print('RAY', 'ray' in sys.modules, code, file=sys.stderr)\n"
    )
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "RAY False 0"
    assert '"candidates"' in done.stdout
