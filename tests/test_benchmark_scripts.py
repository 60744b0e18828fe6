"""The benchmark script that runs apart from the harness still runs.

``benchmarks/original_osiiso.py`` measures the original osiiso 1.1 (Python 3.13) with the
harness's shared W1 helpers, so a change to those helpers can break it without any other
test noticing. With ``OSIISO_ORIGINAL_PYTHON`` pointing at an interpreter that has the
original installed (``.ci/run`` sets it), it runs one round here, from the repository root,
and every row must produce a time.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.environ.get("OSIISO_ORIGINAL_PYTHON"), reason="OSIISO_ORIGINAL_PYTHON is not set")
def test_the_original_osiiso_benchmark_runs_every_row() -> None:
    done = subprocess.run([os.environ["OSIISO_ORIGINAL_PYTHON"], "benchmarks/original_osiiso.py", "--rounds", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "original osiiso AsyncQueue" in done.stdout, done.stdout
