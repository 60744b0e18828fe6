"""Every example of the guide to scripts without async (docs/guides/scripts.md) runs as written.

The guide holds the blocking twin of every example of the seed page on bound tasks
(shared/seed-bound-tasks.txt; tests/test_seed_page.py runs the async originals). Each block
runs as a script in a fresh interpreter; where the guide shows its output, the script prints
it (times and rates aside, and a summary table only as far as its last line).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "guides" / "scripts.md"
BLOCKS = re.findall(r"```python\n(.*?)```(?:\n\n```text\n(.*?)```)?", GUIDE.read_text(), re.S)
SEED_TWINS = ["Basic usage", "map()", "group()", "Overriding options", "Complete example"]

pytestmark = [pytest.mark.timeout(120)]


def _normal(text: str) -> list[str]:
    """Lines without trailing blanks, times and rates made uniform."""
    text = re.sub(r"\d+\.\d+s \([\d,]+ tasks/s\)", "<time>", text)
    return [line.rstrip() for line in text.strip().splitlines()]


def test_the_guide_has_a_blocking_twin_of_every_seed_example() -> None:
    """Each section of the seed page has its blocking twin under the same title in the guide."""
    text = GUIDE.read_text()
    for title in SEED_TWINS:
        assert f"### {title}\n" in text, title
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_guide_example_runs(index: int, tmp_path: Path) -> None:
    """Example number `index` of the guide runs to completion and prints what the guide shows."""
    code, expected = BLOCKS[index]
    script = tmp_path / f"example_{index}.py"
    script.write_text(code)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "COLUMNS": "100"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=100,
                          cwd=tmp_path, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # nothing printed at exit either (the queue's loop thread ends quietly)
    if expected:
        want, got = _normal(expected), _normal(done.stdout)
        if "display()" in code:
            assert want[-1] in got
        else:
            assert got == want
