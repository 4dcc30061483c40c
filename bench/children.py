"""Each contender of a benchmark in a fresh process: the parent runs the script again as a
child for one contender, the child prints its result as one ``RESULT {json}`` line, and the
parent reads it back. Memory, threads and imported libraries of two contenders never mix."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

PREFIX = "RESULT "


def parse_options(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs as a dict, each value read as JSON when it is JSON (a number, a
    list, true), as text otherwise."""
    options = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def print_result(result: dict) -> None:
    """The child's result, as the line :func:`run_child` reads."""
    print(PREFIX + json.dumps(result), flush=True)


def run_child(name: str, command: list[str]) -> dict:
    """Run ``command`` (the script as a child for contender ``name``) and return the result it
    printed last; exit with the tails of its output when it printed none."""
    output = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in output.stdout.splitlines() if line.startswith(PREFIX)]
    if not lines:
        sys.exit(f"{name} failed:\n{output.stdout[-3000:]}\n{output.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix(PREFIX))


def children_cpu() -> float:
    """CPU seconds (user and system) of this process's finished children and their loader
    workers so far: the difference around one child is its CPU time, on a machine shared
    with other jobs a fairer figure than its wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
