"""`make bench`: run every benchmark (`tests/perf/bench_*.py`) and record the results.

Each benchmark module has `async def run(settings: Settings) -> dict[str, object]`
and runs the reference for the same work beside Conveyor in the same run, so the
ratio means something on a noisy machine. Results are appended to
`tests/perf/results.json` with the date and the machine; the README's table is
written from them by hand.

    python -m tests.perf                # all
    python -m tests.perf copy points    # the benchmarks whose module name contains a word
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from contracts.runtime.settings import Settings

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


def machine() -> dict[str, object]:
    mem_kb = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        mem_kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


async def main(words: list[str]) -> int:
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    chosen = [m for m in modules if not words or any(w in m for w in words)]
    if not chosen:
        print(f"no benchmark matches {words}; have {modules}", file=sys.stderr)
        return 1
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    for name in chosen:
        module = importlib.import_module(f"tests.perf.{name}")
        print(f"== {name}", flush=True)
        result = await module.run(Settings.from_env())
        record = {
            "benchmark": name,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "result": result,
        }
        print(json.dumps(record, indent=2), flush=True)
        history.append(record)
        RESULTS.write_text(json.dumps(history, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1:])))
