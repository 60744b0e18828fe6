"""osiiso's benchmark harness: ``python -m benchmarks [--quick] [--only W1,W8] [--rounds N] [--json out.json]``.

Each workload lives in its own module and runs osiiso and its peers in one process,
interleaved round by round, so every contender sees the same machine state. The registry
below maps a workload id to its module; a module exposes ``TITLE`` and
``run(config) -> Report`` (see ``_runner``). To add a workload, write its module and add
one line here. A module that fails to import
(say, a backend still being written) is reported as skipped, not as a crash.

Peers come from the ``bench`` extra; a peer that is not installed is skipped with a note.
The original osiiso (PyPI, Python 3.13 only) is driven by the separate script
``benchmarks/original_osiiso.py``.
"""

WORKLOADS: dict[str, str] = {
    "W1": "benchmarks.w1_async_noop",
    "W2": "benchmarks.w2_async_sleep",
    "W3": "benchmarks.w3_thread_noop",
    "W4": "benchmarks.w4_process_tiny",
    "W4B": "benchmarks.w4b_process_many",
    "W5": "benchmarks.w5_process_cpu",
    "W6": "benchmarks.w6_cold_start",
    "W7": "benchmarks.w7_pipeline",
    "W8": "benchmarks.w8_memory",
    "W9": "benchmarks.w9_dask",
}
