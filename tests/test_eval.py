"""eval_image_classifier.py: the whole split, summaries, and bad data named clearly."""
import glob
import json
import os
import shutil

import tensorflow.compat.v1 as tf

from conftest import run_script


def _train_lenet(digits_dir, train_dir):
    run_script(["train_image_classifiers.py", "--enable_paisoar=False", "--model_name=lenet",
                "--dataset_name=digits", "--dataset_dir=%s" % digits_dir,
                "--train_dir=%s" % train_dir, "--stop_at_step=2", "--batch_size=8"])


def test_eval_scores_whole_split_and_writes_summary(digits_dir, tmp_path):
    train_dir = str(tmp_path / "train")
    _train_lenet(digits_dir, train_dir)
    proc = run_script(["eval_image_classifier.py", "--checkpoint_path=%s" % train_dir,
                       "--model_name=lenet", "--dataset_name=digits",
                       "--dataset_dir=%s" % digits_dir, "--batch_size=64"])
    assert "over 360 examples" in proc.stdout  # 5 full batches and a partial one
    events = glob.glob(os.path.join(train_dir, "eval_test", "events.out.tfevents.*"))
    tags = {v.tag for e in events for ev in tf.train.summary_iterator(e)
            for v in ev.summary.value}
    assert {"eval/test/top1", "eval/test/top5"} <= tags


def test_eval_names_a_truncated_file_or_skips_it(digits_dir, tmp_path):
    train_dir = str(tmp_path / "train")
    _train_lenet(digits_dir, train_dir)
    bad_dir = str(tmp_path / "bad")
    shutil.copytree(digits_dir, bad_dir)
    path = os.path.join(bad_dir, "digits_test.tfrecord")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    args = ["eval_image_classifier.py", "--checkpoint_path=%s" % train_dir, "--model_name=lenet",
            "--dataset_name=digits", "--dataset_dir=%s" % bad_dir]
    proc = run_script(args, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "bad input data" in proc.stderr and "digits_test.tfrecord" in proc.stderr
    proc = run_script(args + ["--skip_corrupt_records"])
    count = int(proc.stdout.split(" over ")[1].split()[0])
    assert 100 < count < 360


def test_custom_dataset_rejects_a_wrong_num_classes(tmp_path):
    from images.datasets import labels_file
    labels_file.write_labels({0: "cat", 1: "dog", 2: "owl"}, str(tmp_path))
    proc = run_script(["train_image_classifiers.py", "--model_name=lenet",
                       "--dataset_name=custom", "--dataset_dir=%s" % tmp_path,
                       "--num_classes=5", "--train_dir=%s" % (tmp_path / "t")], check=False)
    assert proc.returncode == 2
    assert "--num_classes=5 but dataset custom has 3 classes" in proc.stderr


def test_eval_and_export_default_to_the_training_run(digits_dir, tmp_path):
    # Trained at 32x32 (lenet's default is 28): evaluating at 28 could not even restore the
    # classifier, so the defaults from the run's flags.json are what makes this work.
    train_dir = str(tmp_path / "train")
    proc = run_script(["train_image_classifiers.py", "--enable_paisoar=False",
                       "--model_name=lenet", "--dataset_name=digits",
                       "--dataset_dir=%s" % digits_dir, "--train_files=digits_train*.tfrecord",
                       "--eval_files=digits_test*.tfrecord", "--train_image_size=32",
                       "--train_dir=%s" % train_dir, "--stop_at_step=2", "--batch_size=8"])
    # The epoch size of the named files is counted (1,437 training digits), so epoch-based
    # decay works as it does for the split.
    assert "epoch size 1437 examples, counted" in proc.stderr
    assert "learning rate stays" not in proc.stderr
    proc = run_script(["eval_image_classifier.py", "--checkpoint_path=%s" % train_dir])
    assert "over 360 examples" in proc.stdout
    assert "eval_image_size=32" in proc.stderr and "model_name=lenet" in proc.stderr
    assert "eval_files=digits_test*.tfrecord" in proc.stderr
    info = str(tmp_path / "export.json")
    run_script(["export_inference_graph.py", "--checkpoint_path=%s" % train_dir,
                "--output_dir=%s" % (tmp_path / "export"), "--output_json=%s" % info])
    exported = json.load(open(info))
    assert (exported["image_size"], exported["num_classes"]) == (32, 10)
