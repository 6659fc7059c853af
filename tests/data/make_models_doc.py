#!/usr/bin/env python
"""Writes docs/models.md from the registry and ``tests/data/variables``.

    python tests/data/make_models_doc.py          # rewrite docs/models.md
    python tests/data/make_models_doc.py --check  # exit 1 if it is out of date

tests/test_models.py checks that the file matches (``render()``), so a registry change that is not
reflected in the document fails the tests.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from images.models import model_factory  # noqa: E402

DOC = os.path.join(ROOT, "docs", "models.md")
VARIABLES = os.path.join(ROOT, "tests", "data", "variables")

HEAD = """# Model zoo

Every network of FastNN's model map, registered in `images/models` (one folder per family) and
built with the variable names and shapes of the published TF-slim checkpoints, so
`--task_type=finetune` loads them.  AlexNet, OverFeat, VGG, Inception v1-v3 and ResNet come from
`tf_slim.nets`; the others are written here from their papers.

```python
from images.models import model_factory
network_fn = model_factory.get_network_fn("mobilenet_v1", num_classes=1001, is_training=True)
logits, end_points = network_fn(images)       # end_points: 'Logits', 'Predictions', ...
features, _ = model_factory.get_network_fn("mobilenet_v1", num_classes=0)(images)  # [batch, 1024]
model_factory.list_models("resnet_v2_*")
```

`num_classes=0` (or None) returns the pooled features `[batch, depth]`; the options each
network takes are listed below (others are rejected).  Columns:

* **parameters**: trainable parameters with the published classifier (1000 or 1001 classes, 10
  for the CIFAR and MNIST networks), without the auxiliary head; batch-norm moving statistics are
  not counted.  From the checkpoint variable lists in `tests/data/variables`.
* **multiply-adds**: forward multiply-adds of one image at the default size (convolutions and
  matrix products up to the logits), `ModelRecord.flops`; the tests recount them with TF's
  profiler.  A training step costs about three times as much.
* **aux**: an auxiliary classifier (`end_points['AuxLogits']`) in training; the trainer adds its
  loss with weight 0.4.
* **heavy**: slow to build or to run here; the tests check them at the default size without
  running them there, and train them (two steps) at their smallest size through the trainer.

Regenerate with `python tests/data/make_models_doc.py` (the tests fail when it is stale).

"""


def parameters(name):
    """Trainable parameters without the auxiliary head, from the expected-variable list."""
    total = 0
    with open(os.path.join(VARIABLES, name + ".txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            var, shape = line.split()
            if var.endswith(("moving_mean", "moving_variance")):
                continue
            if "AuxLogits" in var or var.startswith("aux_"):
                continue
            count = 1
            for d in shape.split(","):
                count *= int(d)
            total += count
    return total


def _si(value):
    if value >= 1e9:
        return "%.2f G" % (value / 1e9)
    if value >= 1e6:
        return "%.1f M" % (value / 1e6) if value >= 1e8 else "%.2f M" % (value / 1e6)
    return "%.0f k" % (value / 1e3)


def render():
    """The full text of docs/models.md."""
    lines = ["| network | family | image | preprocessing | classes | parameters | "
             "multiply-adds | aux | heavy | options |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in model_factory.list_models():
        r = model_factory.get_model_record(name)
        lines.append("| %s | %s | %d | %s | %d | %s | %s | %s | %s | %s |" % (
            name, r.family, r.default_image_size, r.preprocessing_name, r.default_num_classes,
            _si(parameters(name)), _si(r.flops), "yes" if r.has_aux_logits else "",
            "yes" if r.heavy else "", ", ".join(r.options)))
    return HEAD + "\n".join(lines) + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        with open(DOC, encoding="utf-8") as f:
            if f.read() != text:
                print("docs/models.md is out of date: run python tests/data/make_models_doc.py")
                return 1
        return 0
    os.makedirs(os.path.dirname(DOC), exist_ok=True)
    with open(DOC + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(DOC + ".tmp", DOC)
    print("wrote %s (%d networks)" % (DOC, len(model_factory.list_models())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
