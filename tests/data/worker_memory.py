"""Keeps a long-lived test worker's memory bounded by starting it afresh between networks.

TensorFlow keeps much of what a graph and its session allocated (kernel caches, the allocator's
free lists) after both are gone, so a process that builds thirty networks in turn grows to
several gigabytes; four such workers beside the test processes ran a 24 GiB CI machine out of
memory (the kernel killed one with SIGKILL).
"""
import os
import sys

LIMIT_BYTES = 3 << 30


def resident_bytes():
    """This process's resident memory in bytes (0 where /proc does not tell)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def restart_if_large(script, args, remaining):
    """Runs ``script args remaining`` in place of this process once it holds over the limit.

    ``os.execv`` keeps the process id, so the test waiting on the worker goes on waiting on the
    fresh one, which appends its results to the same file.

    Args:
      script: the worker script's path.
      args: the arguments before the specs.
      remaining: the specs not done yet; nothing happens when there are none.
    """
    if remaining and resident_bytes() > LIMIT_BYTES:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, script] + list(args) + list(remaining))
