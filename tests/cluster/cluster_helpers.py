"""Driving scripts/testcluster.sh from the tests: hosts, horovodrun across them, faults.

Every job is launched the way docs/distributed.md tells a user to: on a host of the cluster
(``scripts/testcluster.sh exec h1 ...`` runs there, with that host's network, /etc/hosts, ssh
keys and local disk), as ``horovodrun -np 4 -H h1:2,h2:2 --network-interface eth0 --gloo python
<program> ...`` from the repository, which is at the same path on every host.
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if os.path.dirname(HERE) not in sys.path:
    sys.path.insert(0, os.path.dirname(HERE))

from background import BackgroundRun  # noqa: E402  (tests/background.py)
SCRIPT = os.path.join(ROOT, "scripts", "testcluster.sh")
PYTHON = sys.executable
BIN = os.path.dirname(PYTHON)
STATE = os.environ.get("FASTNN_CLUSTER_STATE", "/tmp/fastnn-testcluster")
LOCAL = os.path.join(STATE, "local")   # each host's private disk (a tmpfs of its own)
IFACE = "eth0"
TRAINER = "train_image_classifiers.py"


def cannot_make_namespaces():
    """Why this machine cannot host the test cluster, or None when it can."""
    if os.geteuid() != 0:
        return ("the multi-host tests build hosts from network namespaces, which needs root "
                "(run `make test-cluster` as root)")
    for tool in ("ip", "tc", "nsenter", "unshare", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return "the multi-host tests need %r (iproute2, util-linux, openssh-client)" % tool
    probe = subprocess.run(["ip", "netns", "add", "fnn-canmake"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "network namespaces cannot be made here: %s" % probe.stderr.strip()
    subprocess.run(["ip", "netns", "del", "fnn-canmake"], capture_output=True)
    return None


def job_env(extra=None):
    """The environment of a launch: the project's venv first on PATH (horovodrun passes it on)."""
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"], PYTHONPATH=ROOT,
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    env.update(extra or {})
    return env


def _failed(what, proc):
    return AssertionError("%s exited %d\n--- stdout\n%s\n--- stderr\n%s" % (
        what, proc.returncode, proc.stdout[-5000:], proc.stderr[-8000:]))


class HostCluster:
    """The hosts h1..hN made by scripts/testcluster.sh."""

    def __init__(self, num_hosts=2):
        self.num_hosts = num_hosts

    def script(self, *args, timeout=300, check=True):
        proc = subprocess.run(["bash", SCRIPT] + [str(a) for a in args], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise _failed("testcluster.sh " + " ".join(map(str, args)), proc)
        return proc

    def up(self):
        return self.script("up", self.num_hosts, timeout=900)

    def down(self):
        return self.script("down", check=False)

    def run(self, host, args, timeout=600, env=None, check=True):
        """Runs ``args`` on ``host``, from the repository root; returns the CompletedProcess."""
        proc = subprocess.run(["bash", SCRIPT, "exec", host] + list(args), cwd=ROOT,
                              env=job_env(env), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise _failed("on %s: %s" % (host, " ".join(args)), proc)
        return proc

    @staticmethod
    def horovodrun_args(hosts, args, interface=True):
        """The README's command form: ``horovodrun -np N -H h1:2,h2:2 --network-interface eth0
        --gloo python ...`` with N the sum of the slots."""
        np_ = sum(int(spec.split(":")[1]) for spec in hosts.split(","))
        return (["horovodrun", "-np", str(np_), "-H", hosts]
                + (["--network-interface", IFACE] if interface else [])
                + ["--gloo", "python"] + list(args))

    def horovodrun(self, hosts, args, launch_from="h1", timeout=600, env=None, check=True):
        return self.run(launch_from, self.horovodrun_args(hosts, args), timeout=timeout,
                        env=env, check=check)

    def launch(self, hosts, args, launch_from="h1", env=None):
        """horovodrun in the background (a :class:`background.BackgroundRun`)."""
        return BackgroundRun(["bash", SCRIPT, "exec", launch_from]
                             + self.horovodrun_args(hosts, args), job_env(env), ROOT)

    def sshd_pid(self, host):
        with open(os.path.join(STATE, "%s.sshd.pid" % host)) as f:
            return int(f.read())

    def on_host(self, host, path):
        """Where ``path`` as ``host`` sees it (its own local disk included) is seen from here."""
        return "/proc/%d/root%s" % (self.sshd_pid(host), os.path.abspath(path))


def rank_steps(output, rank):
    """The steps that ``rank`` logged (``[rank R] INFO step=N, ...``)."""
    return [int(m) for m in re.findall(r"\[rank %d\] INFO step=(\d+)\b" % rank, output)]
