"""`make demo`'s script: LeNet on the embedded digits reaches at least 95% held-out top-1."""
import json
import os
import subprocess
import sys

from conftest import ROOT


def test_demo_reaches_95_percent(tmp_path):
    env = dict(os.environ, PY=sys.executable, DEMO_DATA_DIR=str(tmp_path / "digits"),
               DEMO_TRAIN_DIR=str(tmp_path / "train"), PYTHONPATH=ROOT)
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.load(open(tmp_path / "train" / "eval_test.json"))
    assert result["count"] == 360  # the whole held-out split, last partial batch included
    assert result["top1"] >= 0.95
    assert "held-out top-1" in proc.stdout
