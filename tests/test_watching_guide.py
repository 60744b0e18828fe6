"""The "Watching a run" guide's examples run as written: its log example and its OpenTelemetry recipe."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guides" / "watching.md"

pytestmark = [pytest.mark.timeout(120)]


def _blocks(section: str) -> list[str]:
    """The python blocks of the guide's ``## section`` (up to the next ``## `` heading)."""
    text = GUIDE.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end != -1 else None], re.S)


def test_the_log_example_prints_the_retry_with_its_extras(tmp_path: Path) -> None:
    """The logs section's example logs the retry, formatted with its task_id and event extras."""
    (block,) = _blocks("Logs")
    script = tmp_path / "logs.py"
    script.write_text(block)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=100,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    expected = next(line[2:] for line in block.splitlines() if line.startswith("# INFO"))
    assert done.stderr.strip().splitlines() == [expected]


def test_the_opentelemetry_recipe_makes_a_span_per_task_and_per_attempt(capsys: pytest.CaptureFixture[str]) -> None:
    """The recipe, run as written with the SDK's in-memory exporter, records tasks, attempts and retries."""
    pytest.importorskip("opentelemetry.sdk", reason='the dev extra installs opentelemetry-sdk: pip install -e ".[dev]"')
    recipe, usage = _blocks("OpenTelemetry spans")
    namespace: dict[str, Any] = {"__name__": "watching_recipe"}
    exec(compile(recipe + "\n" + usage, str(GUIDE), "exec"), namespace)
    spans = {span.name: span for span in namespace["exporter"].get_finished_spans()}
    assert set(spans) == {"fetch", "fetch attempt 1", "fetch attempt 2", "power", "power attempt 1"}
    fetch = spans["fetch"]
    assert fetch.attributes["osiiso.status"] == "succeeded" and fetch.attributes["osiiso.attempts"] == 2
    assert [event.name for event in fetch.events] == ["retry"]
    assert fetch.events[0].attributes["exception.type"] == "TimeoutError"
    first, second = spans["fetch attempt 1"], spans["fetch attempt 2"]
    assert first.parent is not None and first.parent.span_id == fetch.context.span_id
    assert first.status.status_code.name == "ERROR" and "slow server" in first.status.description
    assert second.attributes["osiiso.outcome"] == "ok" and second.status.status_code.name == "UNSET"
    assert second.attributes["osiiso.worker"].startswith("thread/")
    assert fetch.start_time <= first.start_time <= first.end_time <= second.start_time <= fetch.end_time
    assert spans["power"].attributes["osiiso.backend"] == "thread"
    assert "fetch UNSET" in capsys.readouterr().out
