"""Background worker processes for tests that build many networks.

TensorFlow starts once per worker instead of once per network, and the workers use the second
core while the test process builds its own graphs.  A worker is a script called as
``python SCRIPT OUT.jsonl [ARGS...] SPEC [SPEC ...]`` that appends one JSON line per SPEC to
OUT.jsonl; tests wait for the line they need.
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BackgroundRuns:
    """``workers`` processes of ``script``, the specs dealt out in turn; results by key.

    Args:
      script: the worker script.
      specs: ``[(key, spec string)]``; ``key_of(json record)`` must give the same key.
      workdir: where the result and log files go.
      key_of: the key of a result line.
      extra_args: arguments between OUT.jsonl and the specs.
      workers: number of processes.
    """

    def __init__(self, script, specs, workdir, key_of, extra_args=(), workers=2):
        self.key_of = key_of
        self.workers = {}  # key -> (process, results file, log file)
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        for i in range(workers):
            group = specs[i::workers]
            if not group:
                continue
            out = os.path.join(workdir, "runs-%d.jsonl" % i)
            log = open(os.path.join(workdir, "worker-%d.log" % i), "w")
            proc = subprocess.Popen(
                [sys.executable, script, out] + list(extra_args) + [s for _, s in group],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            self.workers.update({key: (proc, out, log) for key, _ in group})

    def result(self, key, timeout=1800):
        """The JSON record of ``key`` once its worker wrote it.

        Raises:
          AssertionError: the worker exited without it (with the log's tail) or took longer
            than ``timeout`` seconds.
        """
        proc, out, log = self.workers[key]
        deadline = time.time() + timeout
        while True:
            found = self._read(out).get(key)
            if found is not None:
                return found
            if proc.poll() is not None:
                found = self._read(out).get(key)
                if found is None:
                    with open(log.name) as f:
                        raise AssertionError("worker exited %s before %s:\n%s"
                                             % (proc.returncode, key, f.read()[-4000:]))
                return found
            if time.time() > deadline:
                raise AssertionError("no result for %s in %ds" % (key, timeout))
            time.sleep(0.5)

    def _read(self, out):
        if not os.path.exists(out):
            return {}
        with open(out, encoding="utf-8") as f:
            records = (json.loads(line) for line in f if line.strip())
            return {self.key_of(r): r for r in records}

    def stop(self):
        """Kills the workers still running."""
        for proc, _, log in set(self.workers.values()):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
