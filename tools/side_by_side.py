"""Run independent commands at the same time, each line of output prefixed with its name; fail if any fails.

Usage: python tools/side_by_side.py NAME=COMMAND [NAME=COMMAND ...]
`make test` runs its two long parts this way on 2 cores (through tools/install.py, which calls ``run``): the
unit tests and the notebooks under nbval. They share nothing (each has its own models cache and output folder),
and much of each is one busy Python thread (tracing, eager steps, kernel start), so together they take less time
than one after the other. Each command is split like a shell line (no shell runs it). At the end: one line per
command with its exit status, its minutes and, where the system reports it, its CPU minutes (user + system, its
own processes and every one they waited for); the exit status is the first non-zero one, or 0.

The cores are shared out, not fought over: each command gets ``cores // commands`` threads (at least one) for
TensorFlow's two thread pools and for OpenMP (TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS, OMP_NUM_THREADS),
unless the caller set them. Left to itself every TensorFlow process sizes its pools to the whole machine, and two
side by side on 2 cores spend much of their CPU time spinning for each other (benchmarks/bench_threads.py).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time


def parse(argv: list[str]) -> list[tuple[str, list[str]]]:
    """[(name, argv)] from NAME=COMMAND arguments; a clear SystemExit for anything else."""
    jobs = []
    for item in argv:
        name, sep, command = item.partition("=")
        if not sep or not name.isidentifier() or not command.strip():
            raise SystemExit(f"side_by_side: {item!r} is not NAME=COMMAND (e.g. unit='python -m pytest tests/').")
        jobs.append((name, shlex.split(command)))
    if not jobs:
        raise SystemExit("side_by_side: give at least one NAME=COMMAND.")
    if len({name for name, _ in jobs}) != len(jobs):
        raise SystemExit("side_by_side: each command needs its own name.")
    return jobs


def _wait(child: subprocess.Popen) -> float | None:
    """Wait for ``child``; its CPU seconds (user + system, with the processes it waited for) where os.wait4 exists."""
    if not hasattr(os, "wait4"):  # Windows
        child.wait()
        return None
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def relay(name: str, child: subprocess.Popen, width: int, lock: threading.Lock, ended: dict, cpu: dict) -> None:
    """Copy a child's output to ours line by line, prefixed with its name; note when it ended and its CPU time."""
    for line in iter(child.stdout.readline, ""):
        with lock:
            sys.stdout.write(f"[{name:<{width}}] {line.rstrip(chr(10))}\n")
            sys.stdout.flush()
    cpu[name] = _wait(child)
    ended[name] = time.perf_counter()


THREAD_SETTINGS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def cores() -> int:
    """The cores this process may run on (its affinity where the system says, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def shared_threads(environment: dict[str, str], jobs: int, available: int | None = None) -> dict[str, str]:
    """``environment`` with each thread setting the caller left unset at ``available // jobs`` (at least 1)."""
    each = str(max(1, (cores() if available is None else available) // max(1, jobs)))
    return {**{name: each for name in THREAD_SETTINGS}, **environment}


def run(jobs: list[tuple[str, list[str]]], env: dict[str, str] | None = None, cwd=None,
        share: bool = True) -> tuple[int, list[dict]]:
    """Run ``jobs`` [(name, argv)] at once; the first non-zero exit status (or 0) and per job its name, status, wall and
    CPU seconds.

    ``share=False`` leaves the thread settings alone (each TensorFlow process then sizes its pools to the machine).
    """
    width, lock, ended, cpu = max(len(name) for name, _ in jobs), threading.Lock(), {}, {}
    environment = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")  # the children's lines as they come
    if share:
        environment = shared_threads(environment, len(jobs))
    start, running = time.perf_counter(), []
    for name, command in jobs:
        try:
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     env=environment, cwd=cwd)
        except OSError as error:
            for _, started, _ in running:  # leave nothing running behind the error
                started.kill()
            raise SystemExit(f"side_by_side: {name} could not start {command[0]!r}: {error}") from None
        thread = threading.Thread(target=relay, args=(name, child, width, lock, ended, cpu), daemon=True)
        thread.start()
        running.append((name, child, thread))
    for _, _, thread in running:
        thread.join()
    results = []
    for name, child, _ in running:
        verdict = "passed" if child.returncode == 0 else f"FAILED (exit status {child.returncode})"
        wall = ended[name] - start
        used = f", {cpu[name] / 60:.1f} CPU min" if cpu[name] is not None else ""
        print(f"side_by_side: {name} {verdict} in {wall / 60:.1f} min{used}")
        results.append({"name": name, "status": child.returncode, "wall_s": wall, "cpu_s": cpu[name]})
    return next((r["status"] for r in results if r["status"]), 0), results


def main(argv: list[str] | None = None) -> int:
    return run(parse(sys.argv[1:] if argv is None else argv))[0]


if __name__ == "__main__":
    sys.exit(main())
