"""Benchmark probe: every Dagster run worker writes its own CPU counters as it exits.

Put on ``PYTHONPATH`` by ``bench/run_cost.py`` only, with
``ECLIPSE_BENCH_RUSAGE_DIR`` naming the folder. Dagster's code server starts a
run worker with multiprocessing's spawn (``--multiprocessing-fork`` on its
command line); at exit the worker writes ``getrusage(RUSAGE_SELF)`` (user and
system CPU-seconds of all its threads, peak RSS) to one JSON file. With
``ECLIPSE_BENCH_PROFILE`` set it also profiles itself (cProfile, written beside
as ``worker-{pid}.prof``, with the modules it imported in the JSON). Every
other process is left alone.
"""

import os
import sys

_DIR = os.environ.get("ECLIPSE_BENCH_RUSAGE_DIR")

if _DIR and "--multiprocessing-fork" in sys.orig_argv:
    import atexit
    import json
    import resource
    import time

    _STARTED = time.time()
    _PROFILER = None
    if os.environ.get("ECLIPSE_BENCH_PROFILE"):
        import cProfile

        _PROFILER = cProfile.Profile()
        _PROFILER.enable()

    def _write_rusage() -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        record = {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "cpu_seconds": usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime,
            "user_seconds": usage.ru_utime,
            "system_seconds": usage.ru_stime,
            "max_rss_mib": usage.ru_maxrss / 1024,
            "started": _STARTED,
            "ended": time.time(),
        }
        if _PROFILER is not None:
            _PROFILER.disable()
            _PROFILER.dump_stats(os.path.join(_DIR, f"worker-{os.getpid()}.prof"))
            record["modules"] = sorted(sys.modules)
        with open(os.path.join(_DIR, f"worker-{os.getpid()}.json"), "w") as out:
            json.dump(record, out)

    atexit.register(_write_rusage)
