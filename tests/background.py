"""A command run in the background, for tests that act on a job while it runs (kill a worker,
cut a host off): its output collected line by line, waited on for a pattern, killed whole."""
import os
import re
import signal
import subprocess
import threading
import time


class BackgroundRun:
    """Starts ``cmd`` in its own process group; stdout and stderr are merged into ``output``."""

    def __init__(self, cmd, env, cwd):
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self):
        return "".join(self.lines)

    def wait_for(self, pattern, timeout):
        """True once ``pattern`` appears in the output; False after ``timeout`` s or an exit."""
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            if re.search(pattern, self.output):
                return True
            time.sleep(0.2)
        return bool(re.search(pattern, self.output))

    def close(self):
        """Kills the whole process group if it still runs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._reader.join(timeout=10)
