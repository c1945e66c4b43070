"""Kills a worker's steps when the worker dies (`kill -9`, a crash): a step runs in its own session and
would otherwise outlive it, and run on beside the new attempt the driver starts when it finds the worker
lost. Run as a script (`python -I -S orphan_watchdog.py`) by `celery_worker.Watchdog`: it reads lines
`+PGID` / `-PGID` on stdin (the steps' process groups, as they start and end); at end of input (its worker
is gone: nothing else holds the pipe) it SIGKILLs every group still listed. Standard library only."""

import contextlib
import os
import signal
import sys


def main() -> None:
    groups = set()
    for line in sys.stdin:
        line = line.strip()
        if line[:1] == "+":
            groups.add(int(line[1:]))
        elif line[:1] == "-":
            groups.discard(int(line[1:]))
    for group in groups:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)


if __name__ == "__main__":
    main()
