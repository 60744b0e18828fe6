"""The conformance suite runs on every available backend × every event loop.

The dask backend runs on one small ``LocalCluster`` shared by the whole session (two worker
processes of two threads, on loopback): each test's queue finds it through
``$DASK_SCHEDULER_ADDRESS``, as a user's queue would, so only the first dask test pays for
starting a cluster. Without ``distributed`` installed the dask params are skipped, saying so (not in CI,
where ``$CI`` is set and the dev extra installs it: there they fail).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from .kit import Kit, make_kit

HAVE_DASK = importlib.util.find_spec("distributed") is not None
#: skipped only outside CI: CI installs the dev extra, so a missing distributed fails there
SKIP_DASK = not HAVE_DASK and not os.environ.get("CI")
BACKENDS = ["async", "thread", "process",
            pytest.param("dask", marks=pytest.mark.skipif(
                SKIP_DASK, reason='distributed is not installed: pip install -e ".[dask]"'))]


@pytest.fixture(scope="session")
def dask_address() -> Iterator[str]:
    """The scheduler address of the session's dask cluster (2 workers × 2 threads, no dashboard)."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
                           scheduler_kwargs={"allowed_failures": 0, "dashboard": False,
                                             "dashboard_address": "127.0.0.1:0"})
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close(timeout=30)


@pytest.fixture(params=BACKENDS)
def kit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Kit:
    """Task functions for one backend."""
    if request.param == "dask":
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", request.getfixturevalue("dask_address"))
    return make_kit(request.param)
