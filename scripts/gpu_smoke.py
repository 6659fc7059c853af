"""The GPU path, end to end, on the GPUs of this machine (run through scripts/gpu_smoke.sh).

1. every local GPU on its own trains resnet_v1_50 on mock data in float32, then in float16 (all
   GPUs at once, one process each, so a bad GPU shows up by number);
2. ``horovodrun -np <gpus>`` trains the same in float32 and float16, gradients allreduced over
   NCCL (checked: NCCL must report itself in the workers' log with NCCL_DEBUG=INFO);
3. GPU 0 trains in float16 with ``--xla``;
4. one ``dist_arcface`` step through PLSC's Entry API under ``horovodrun -np <gpus>`` (the FC
   layer split over the GPUs), in float16;

then prints a table of images/s, float16 against float32 and all GPUs against one, like PLSC's
"1.42x" table.  Settings come from the environment (defaults in brackets): SMOKE_MODEL
[resnet_v1_50], SMOKE_IMAGE_SIZE [224], SMOKE_BATCH [64 per GPU], SMOKE_STEPS [40],
SMOKE_CLASSES [1000], SMOKE_ARCFACE_CLASSES [100000 per GPU], SMOKE_WORK [a temporary folder].

``SMOKE_CPU_WORKERS=N`` rehearses the same runs on CPU processes (N workers under Gloo, no NCCL
check): for checking this script on a machine without a GPU with a small model
(SMOKE_MODEL=lenet SMOKE_IMAGE_SIZE=28).
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
BIN = os.path.dirname(PY)
RATE_RE = re.compile(r"\[rank 0\] INFO step=(\d+).*samples/sec=([0-9.]+)")

ENTRY_PROGRAM = r"""
import sys
sys.path.insert(0, %(root)r)
import images  # noqa: F401
from images.largescale import Entry
ins = Entry()
ins.set_model(%(model)r)
ins.set_image_shape((3, %(size)d, %(size)d))
ins.set_class_num(%(classes)d)
ins.set_loss_type("dist_arcface")
ins.set_train_batch_size(%(batch)d)
ins.set_train_steps(1)
ins.set_log_period(1)
ins.set_model_save_dir(None)
ins.set_mixed_precision(%(fp16)s)
out = ins.train()
if ins.cluster.rank == 0:
    print("ENTRY_DONE step=%%d workers=%%d" %% (out["step"], ins.cluster.size), flush=True)
"""


def env_int(name, default):
    """An integer setting from the environment."""
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        sys.exit("gpu_smoke: %s=%r is not an integer" % (name, value))


class Smoke:
    """The runs and their results."""

    def __init__(self, num_devices, cpu_rehearsal, work):
        self.n = num_devices
        self.cpu = cpu_rehearsal
        self.work = work
        self.model = os.environ.get("SMOKE_MODEL", "resnet_v1_50")
        self.size = env_int("SMOKE_IMAGE_SIZE", 224)
        self.batch = env_int("SMOKE_BATCH", 64)
        self.steps = env_int("SMOKE_STEPS", 40)
        self.classes = env_int("SMOKE_CLASSES", 1000)
        self.arcface_classes = env_int("SMOKE_ARCFACE_CLASSES", 100000) * num_devices
        self.log_every = max(1, self.steps // 4)
        self.failures = []

    def env(self, device=None):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                   PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
        if device is not None and not self.cpu:
            env["CUDA_VISIBLE_DEVICES"] = str(device)
        return env

    def trainer_args(self, name, fp16, xla=False):
        return [PY, os.path.join(ROOT, "train_image_classifiers.py"),
                "--model_name=%s" % self.model, "--dataset_name=mock",
                "--num_classes=%d" % self.classes, "--train_image_size=%d" % self.size,
                "--batch_size=%d" % self.batch, "--stop_at_step=%d" % self.steps,
                "--log_loss_every_n_iters=%d" % self.log_every,
                "--hooks=StopAtStepHook,LoggingTensorHook", "--save_summaries_steps=0",
                "--optimizer=momentum", "--learning_rate=0.01", "--random_seed=1",
                "--use_fp16=%s" % fp16, "--xla=%s" % xla,
                "--train_dir=%s" % os.path.join(self.work, name)]

    def horovodrun(self, extra_env=None):
        args = [os.path.join(BIN, "horovodrun"), "-np", str(self.n), "-H",
                "localhost:%d" % self.n, "--gloo"]
        return args, dict(self.env(), **(extra_env or {}))

    @staticmethod
    def rate(log_text):
        """images/s of rank 0: median of its throughput lines after the first (warm-up)."""
        rates = [float(m.group(2)) for m in RATE_RE.finditer(log_text)]
        if not rates:
            return None
        return statistics.median(rates[1:] if len(rates) >= 3 else rates[-1:])

    def start(self, name, args, env):
        log_path = os.path.join(self.work, name + ".log")
        log_file = open(log_path, "w")
        return name, log_path, log_file, subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)

    def finish(self, running):
        """Waits for ``running`` (from :meth:`start`); returns {name: log text}."""
        logs = {}
        for name, log_path, log_file, proc in running:
            code = proc.wait()
            log_file.close()
            with open(log_path) as f:
                logs[name] = f.read()
            if code != 0:
                tail = "\n".join(logs[name].splitlines()[-15:])
                self.failures.append("%s exited with %d (log %s):\n%s"
                                     % (name, code, log_path, tail))
        return logs

    def per_device(self, fp16):
        """Each device on its own, all at once; returns {device: images/s}."""
        tag = "fp16" if fp16 else "fp32"
        running = [self.start("gpu%d-%s" % (d, tag), self.trainer_args("gpu%d-%s" % (d, tag), fp16),
                              self.env(d))
                   for d in range(self.n)]
        logs = self.finish(running)
        return {d: self.rate(logs["gpu%d-%s" % (d, tag)]) for d in range(self.n)}

    def all_devices(self, fp16):
        tag = "fp16" if fp16 else "fp32"
        prefix, env = self.horovodrun(None if self.cpu else {"NCCL_DEBUG": "INFO"})
        name = "hvd%d-%s" % (self.n, tag)
        logs = self.finish([self.start(name, prefix + self.trainer_args(name, fp16), env)])
        text = logs[name]
        if not self.cpu and "NCCL INFO" not in text:
            self.failures.append("%s: no 'NCCL INFO' line in the workers' log: the allreduce did "
                                 "not go through NCCL (is Horovod built with it? horovodrun "
                                 "--check-build)" % name)
        nccl = re.search(r"NCCL version [^\s]+", text)
        return self.rate(text), nccl.group(0) if nccl else None

    def xla_run(self):
        name = "gpu0-fp16-xla"
        logs = self.finish([self.start(name, self.trainer_args(name, True, xla=True),
                                       self.env(0))])
        if "XLA: on" not in logs[name]:
            self.failures.append("%s: the trainer did not log 'XLA: on'" % name)
        return self.rate(logs[name])

    def entry_step(self):
        program = os.path.join(self.work, "entry_step.py")
        with open(program, "w") as f:
            f.write(ENTRY_PROGRAM % dict(root=ROOT, model=self.model, size=self.size,
                                         classes=self.arcface_classes, batch=self.batch,
                                         fp16=True))
        prefix, env = self.horovodrun()
        logs = self.finish([self.start("entry-dist_arcface", prefix + [PY, program], env)])
        done = re.search(r"ENTRY_DONE step=(\d+) workers=(\d+)", logs["entry-dist_arcface"])
        return done.group(0) if done else None


def _rounded(rates):
    return {d: None if v is None else round(v, 2) for d, v in rates.items()}


def fmt(value, pattern="%.1f"):
    return "-" if value is None else pattern % value


def ratio(a, b):
    return None if a is None or not b else a / b


def main():
    cpu_workers = env_int("SMOKE_CPU_WORKERS", 0)
    if cpu_workers:
        num, what = cpu_workers, "CPU worker"
    else:
        import tensorflow as tf
        num, what = len(tf.config.list_physical_devices("GPU")), "GPU"
    if num == 0:
        print("gpu_smoke: no GPU visible to TensorFlow here; nothing to run")
        return 0
    work = os.environ.get("SMOKE_WORK") or tempfile.mkdtemp(prefix="gpu_smoke_")
    os.makedirs(work, exist_ok=True)
    smoke = Smoke(num, bool(cpu_workers), work)
    print("gpu_smoke: %d %s(s); %s %dx%d, batch %d per %s, %d steps; logs in %s"
          % (num, what, smoke.model, smoke.size, smoke.size, smoke.batch, what, smoke.steps,
             work), flush=True)

    one32 = smoke.per_device(False)
    one16 = smoke.per_device(True)
    print("gpu_smoke: per-%s images/s float32 %s, float16 %s"
          % (what, json.dumps(_rounded(one32)), json.dumps(_rounded(one16))), flush=True)
    all32, nccl = smoke.all_devices(False)
    all16, _ = smoke.all_devices(True)
    xla16 = smoke.xla_run()
    entry = smoke.entry_step()

    def med(rates):
        vals = [v for v in rates.values() if v is not None]
        return statistics.median(vals) if vals else None

    m32, m16 = med(one32), med(one16)
    one, many = "1 %s (median of %d)" % (what, num), "%d %ss, horovodrun" % (num, what)
    rows = [  # (run, precision, images/s, ratio, the ratio's reference)
        (one, "float32", m32, None, ""),
        (one, "float16", m16, ratio(m16, m32), "1 %s float32" % what),
        ("1 %s, --xla" % what, "float16", xla16, ratio(xla16, m16), "1 %s float16" % what),
        (many, "float32", all32, ratio(all32, num * m32 if m32 else None),
         "%d x 1 %s float32 (scaling)" % (num, what)),
        (many, "float16", all16, ratio(all16, all32), "%d %ss float32" % (num, what)),
        (many, "float16", all16, ratio(all16, num * m16 if m16 else None),
         "%d x 1 %s float16 (scaling)" % (num, what)),
    ]
    print("\n| run | precision | images/s | ratio | against |")
    print("|---|---|---|---|---|")
    for run, prec, rate, value, against in rows:
        print("| %s | %s | %s | %s | %s |" % (run, prec, fmt(rate), fmt(value, "%.2fx"),
                                                against or "-"))
    print("\nallreduce: %s" % (nccl or ("Gloo (CPU rehearsal)" if smoke.cpu else "unknown")))
    print("dist_arcface Entry step (%d classes over %d %ss, float16): %s"
          % (smoke.arcface_classes, num, what, entry or "FAILED"))
    if entry is None:
        smoke.failures.append("the dist_arcface Entry step did not finish")
    if any(r[2] is None for r in rows):
        smoke.failures.append("some runs logged no throughput line")
    for failure in smoke.failures:
        print("gpu_smoke: FAILED: %s" % failure, file=sys.stderr)
    if smoke.failures:
        return 1
    if not os.environ.get("SMOKE_WORK"):
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
