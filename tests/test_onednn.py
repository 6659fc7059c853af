"""oneDNN on or off: the same training step computes the same numbers, within float32 noise."""
import json
import os

import numpy as np

from conftest import ROOT, run_script

WORKER = os.path.join(ROOT, "tests", "data", "onednn_numerics_worker.py")


def _outputs(onednn):
    proc = run_script([WORKER], env={"TF_ENABLE_ONEDNN_OPTS": onednn})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _grad_change(a, b):
    """Median over variables of |a - b| / |a| (gradient norms)."""
    return float(np.median([np.linalg.norm(np.subtract(x, y)) / max(np.linalg.norm(x), 1e-30)
                            for x, y in zip(a, b)]))


def test_resnet_training_step_matches_with_onednn_on_and_off():
    off, on = _outputs("0"), _outputs("1")
    assert (off["onednn"], on["onednn"]) == (False, True)  # the variable took effect
    base, other = off["clean"], on["clean"]
    logits = np.array(base["logits"])
    # Forward: the kernels agree to float32 rounding (a wrong kernel is off by O(1)).
    np.testing.assert_allclose(other["logits"], logits, rtol=0, atol=1e-4 * np.abs(logits).max())
    np.testing.assert_allclose(other["loss"], base["loss"], rtol=1e-4)
    # Backward: batch-norm statistics make this step chaotic (perturbing the input by 1e-6
    # moves the gradients by percents); oneDNN may differ by no more than that noise floor.
    noise = _grad_change(base["grads"], off["perturbed"]["grads"])
    change = _grad_change(base["grads"], other["grads"])
    assert change <= 3 * noise + 1e-5, (change, noise)
