"""Run independent commands at the same time, each line of output prefixed with its name; fail if any fails.

Usage: python tools/side_by_side.py NAME=COMMAND [NAME=COMMAND ...]
`make test` runs its two long parts this way on 2 cores: the unit tests (with the `full` path of every
notebook) and the notebooks under nbval. They share nothing (each has its own models cache and output
folder), and much of each is one busy Python thread (tracing, eager steps, kernel start), so together
they take less time than one after the other. Each command is split like a shell line (no shell runs
it). At the end: one line per command with its exit status and minutes; the exit status is the first
non-zero one, or 0.
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


def relay(name: str, child: subprocess.Popen, width: int, lock: threading.Lock, ended: dict) -> None:
    """Copy a child's output to ours line by line, prefixed with its name; note when it ended."""
    for line in iter(child.stdout.readline, ""):
        with lock:
            sys.stdout.write(f"[{name:<{width}}] {line.rstrip(chr(10))}\n")
            sys.stdout.flush()
    child.wait()
    ended[name] = time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    jobs = parse(sys.argv[1:] if argv is None else argv)
    width, lock, ended = max(len(name) for name, _ in jobs), threading.Lock(), {}
    environment = dict(os.environ, PYTHONUNBUFFERED="1")  # the children's lines as they come, not in blocks
    start, running = time.perf_counter(), []
    for name, command in jobs:
        try:
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=environment)
        except OSError as error:
            for _, started, _ in running:  # leave nothing running behind the error
                started.kill()
            raise SystemExit(f"side_by_side: {name} could not start {command[0]!r}: {error}")
        thread = threading.Thread(target=relay, args=(name, child, width, lock, ended), daemon=True)
        thread.start()
        running.append((name, child, thread))
    for _, _, thread in running:
        thread.join()
    for name, child, _ in running:
        verdict = "passed" if child.returncode == 0 else f"FAILED (exit status {child.returncode})"
        print(f"side_by_side: {name} {verdict} in {(ended[name] - start) / 60:.1f} min")
    return next((child.returncode for _, child, _ in running if child.returncode), 0)


if __name__ == "__main__":
    sys.exit(main())
