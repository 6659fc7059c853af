"""Top-1 / top-5 accuracy of a checkpoint over a whole dataset split, once or for every new
checkpoint of a training folder (:func:`evaluate_continuously`)."""
import logging
import os
import time

import numpy as np
import tensorflow.compat.v1 as tf

from images import training
from images.datasets import dataset_factory
from images.models import model_factory
from images.preprocessing import preprocessing_factory
from images.utils import distributed, resume_state

log = logging.getLogger("fastnn")


def resolve_checkpoint_path(path):
    """A checkpoint file prefix from a file prefix or a folder (its latest checkpoint)."""
    if tf.gfile.IsDirectory(path):
        latest = tf.train.latest_checkpoint(path)
        if not latest:
            raise FileNotFoundError("no checkpoint in %s (no 'checkpoint' file)" % path)
        return latest
    if not tf.train.checkpoint_exists(path):
        raise FileNotFoundError("checkpoint %s does not exist" % path)
    return path


class CheckpointGoneError(FileNotFoundError):
    """The checkpoint was removed (rotated away by a running trainer) before it was read."""


class Evaluator:
    """The evaluation graph of a model on a split, built once, run on any number of checkpoints.

    Arguments as :func:`evaluate` (without ``checkpoint_path`` and ``eval_dir``).
    """

    def __init__(self, model_name, dataset_name, dataset_dir=None, split_name="test",
                 batch_size=100, image_size=None, preprocessing_name=None, num_classes=None,
                 labels_offset=None, use_grayscale=False, max_num_batches=None,
                 moving_average_decay=None, num_preprocessing_threads=4,
                 skip_corrupt_records=False, session_config=None, file_names=None):
        record = model_factory.get_model_record(model_name)
        dataset = dataset_factory.get_dataset(dataset_name)
        if dataset.is_mock and not max_num_batches:
            raise ValueError("mock data never ends: give --max_num_batches")
        offset = dataset.labels_offset if labels_offset is None else labels_offset
        classes = (dataset_factory.resolve_num_classes(dataset, dataset_dir, num_classes)
                   if dataset.num_classes is None else dataset.num_classes - offset)
        size = image_size or record.default_image_size
        self.split_name, self.dataset_name = split_name, dataset_name
        self.moving_average_decay = moving_average_decay
        self.session_config = session_config
        self.graph = tf.Graph()
        with self.graph.as_default():
            preprocessing_fn = preprocessing_factory.get_preprocessing(
                preprocessing_name or record.preprocessing_name, is_training=False,
                use_grayscale=use_grayscale)
            ds = training.make_input_dataset(
                dataset, dataset_dir=dataset_dir, split_name=split_name, file_names=file_names,
                preprocessing_fn=preprocessing_fn, image_size=size, batch_size=batch_size,
                is_training=False, num_classes=classes, channels=1 if use_grayscale else 3,
                num_epochs=1, cluster=distributed.Cluster(), seed=0, labels_offset=offset,
                input_options=dict(num_preprocessing_threads=num_preprocessing_threads,
                                   num_parallel_batches=2, prefetch_buffer_size=2,
                                   shuffle_buffer_size=1,
                                   skip_corrupt_records=skip_corrupt_records))
            if max_num_batches:
                ds = ds.take(max_num_batches)
            self._iterator = tf.data.make_initializable_iterator(ds)
            images, labels = self._iterator.get_next()
            network_fn = model_factory.get_network_fn(model_name, num_classes=classes,
                                                      is_training=False)
            logits, _ = network_fn(images)
            logits = tf.cast(logits, tf.float32)
            k = min(5, classes)
            self._fetches = [
                tf.reduce_sum(tf.cast(tf.nn.in_top_k(logits, labels, 1), tf.int64)),
                tf.reduce_sum(tf.cast(tf.nn.in_top_k(logits, labels, k), tf.int64)),
                tf.size(labels, out_type=tf.int64)]
            self._global_step = tf.train.get_or_create_global_step()
            self._mapping = variables_to_restore(moving_average_decay)
            self._saver = tf.train.Saver(self._mapping)

    def run(self, checkpoint_path):
        """Scores the checkpoint file prefix ``checkpoint_path``; returns the result dict.

        Raises:
          CheckpointGoneError: the checkpoint disappeared before it was read.
        """
        totals = np.zeros(3, np.int64)
        with self.graph.as_default():
            try:
                check_restorable(checkpoint_path, self._mapping, self.moving_average_decay)
                with tf.Session(config=self.session_config) as sess:
                    self._saver.restore(sess, checkpoint_path)
                    step = int(sess.run(self._global_step))
                    sess.run(self._iterator.initializer)
                    while True:
                        try:
                            totals += np.array(sess.run(self._fetches), np.int64)
                        except tf.errors.OutOfRangeError:
                            break
            except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
                if tf.train.checkpoint_exists(checkpoint_path):
                    raise
                raise CheckpointGoneError(
                    "checkpoint %s was removed before it could be read (a running trainer "
                    "keeps only its last --keep_checkpoint_max)" % checkpoint_path) from e
        if totals[2] == 0:
            raise ValueError("split %r of %s has no examples" % (self.split_name,
                                                                  self.dataset_name))
        return {"top1": totals[0] / totals[2], "top5": totals[1] / totals[2],
                "count": int(totals[2]), "global_step": step, "checkpoint": checkpoint_path}


def evaluate(checkpoint_path, model_name, dataset_name, dataset_dir=None,
             split_name="test", batch_size=100, image_size=None, preprocessing_name=None,
             num_classes=None, labels_offset=None, use_grayscale=False, max_num_batches=None,
             eval_dir=None, moving_average_decay=None, num_preprocessing_threads=4,
             skip_corrupt_records=False, session_config=None, file_names=None):
    """Evaluates a checkpoint on every example of a split.

    Args:
      checkpoint_path: checkpoint file prefix or a folder (its latest checkpoint; when a running
        trainer removes that one before it is read, the folder's newest is taken instead).
      model_name: network registry name.
      dataset_name: dataset registry name.
      dataset_dir: folder of the TFRecord files.
      split_name: split to evaluate.
      batch_size: examples per batch (the last batch may be smaller).
      image_size: input side; defaults to the model's.
      preprocessing_name: defaults to the model's.
      num_classes: for ``mock`` data only.
      labels_offset: defaults to the dataset's.
      use_grayscale: as in training.
      max_num_batches: stop after this many batches (required for mock data).
      eval_dir: where the summary goes; None writes none.
      moving_average_decay: when set, evaluate the exponential moving averages of the weights.
      num_preprocessing_threads: parallel decode calls.
      skip_corrupt_records: skip (and log) unreadable records and images instead of stopping;
        the accuracy is then over the examples that could be read (``count`` says how many).
      session_config: optional ``tf.ConfigProto``.
      file_names: comma-separated files (or glob patterns) inside ``dataset_dir`` to evaluate
        instead of the split's (FastNN's ``--eval_files``).

    Returns:
      ``{'top1': float, 'top5': float, 'count': int, 'global_step': int, 'checkpoint': path}``.

    Raises:
      CheckpointGoneError: the named checkpoint (or, three times over, a folder's newest) was
        removed before it was read.
    """
    resolved = resolve_checkpoint_path(checkpoint_path)
    evaluator = Evaluator(model_name, dataset_name, dataset_dir=dataset_dir,
                          split_name=split_name, batch_size=batch_size, image_size=image_size,
                          preprocessing_name=preprocessing_name, num_classes=num_classes,
                          labels_offset=labels_offset, use_grayscale=use_grayscale,
                          max_num_batches=max_num_batches,
                          moving_average_decay=moving_average_decay,
                          num_preprocessing_threads=num_preprocessing_threads,
                          skip_corrupt_records=skip_corrupt_records,
                          session_config=session_config, file_names=file_names)
    for attempt in range(3):
        try:
            result = evaluator.run(resolved)
            break
        except CheckpointGoneError as e:
            if attempt == 2 or not tf.gfile.IsDirectory(checkpoint_path):
                raise
            log.info("%s; taking the newest one instead", e)
            resolved = resolve_checkpoint_path(checkpoint_path)
    if eval_dir:
        write_eval_summary(eval_dir, result, split_name)
    return result


def checkpoints_in(checkpoint_dir):
    """The checkpoints the ``checkpoint`` state file of a folder lists, oldest first."""
    state = tf.train.get_checkpoint_state(checkpoint_dir)
    if state is None:
        return []
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    paths = [p if os.path.isabs(p) else os.path.join(checkpoint_dir, p) for p in paths]
    return sorted(paths, key=lambda p: resume_state.checkpoint_step(p) or 0)


def evaluate_continuously(checkpoint_dir, evaluator, interval_secs=60, timeout_secs=None,
                          eval_dir=None, on_result=None, sleep=time.sleep, clock=time.time):
    """Evaluates every new checkpoint in ``checkpoint_dir`` once, as slim's evaluation loop.

    Polls the folder (which may not exist yet) every ``interval_secs``; each checkpoint not yet
    evaluated (oldest first)
    is scored and its summaries written to ``eval_dir`` at its step.  A checkpoint removed
    before it is read (a trainer's rotation) is skipped with a line.  Stops after
    ``timeout_secs`` without a new checkpoint (None: never).

    Args:
      checkpoint_dir: the training folder.
      evaluator: an :class:`Evaluator`.
      interval_secs: seconds between polls.
      timeout_secs: seconds without a new checkpoint before returning.
      eval_dir: where the summaries go; None writes none.
      on_result: called with each result dict.
      sleep, clock: time functions (replaceable in tests).

    Returns:
      The list of result dicts, in the order evaluated.
    """
    results, seen = [], set()
    last_new = clock()
    writer = None
    if eval_dir:
        os.makedirs(eval_dir, exist_ok=True)
        with tf.Graph().as_default():  # the v1 writer refuses eager mode
            writer = tf.summary.FileWriter(eval_dir)
    try:
        while True:
            pending = [p for p in checkpoints_in(checkpoint_dir) if p not in seen]
            for path in pending:
                seen.add(path)
                last_new = clock()
                try:
                    result = evaluator.run(path)
                except CheckpointGoneError as e:
                    log.info("skipped %s", e)
                    continue
                if writer is not None:
                    write_eval_summary(eval_dir, result, evaluator.split_name, writer=writer)
                results.append(result)
                if on_result is not None:
                    on_result(result)
            if timeout_secs is not None and clock() - last_new >= timeout_secs:
                log.info("no new checkpoint in %s for %g s: stopping after %d evaluation(s)",
                         checkpoint_dir, timeout_secs, len(results))
                return results
            wait = interval_secs if timeout_secs is None else min(
                interval_secs, max(0.0, timeout_secs - (clock() - last_new)))
            sleep(max(wait, 0.05))
    finally:
        if writer is not None:
            writer.close()


def variables_to_restore(moving_average_decay=None):
    """``{checkpoint name: variable}`` for the model's variables and the global step (if any).

    With a decay, each model variable reads its moving average (``<name>/ExponentialMovingAverage``
    as the trainer's ``--moving_average_decay`` saves it); the decay's value does not change the
    names.
    """
    global_step = tf.train.get_global_step()
    extra = [] if global_step is None else [global_step]
    if moving_average_decay:
        ema = tf.train.ExponentialMovingAverage(moving_average_decay)
        mapping = {ema.average_name(v): v for v in tf.model_variables()}
        mapping.update({v.op.name: v for v in extra})
        return mapping
    return {v.op.name: v for v in tf.model_variables() + extra}


def check_restorable(checkpoint_path, mapping, moving_average_decay=None):
    """Fails early, and clearly, when the checkpoint lacks names or shapes of ``mapping``.

    Raises:
      ValueError: listing up to five missing or mis-shaped variables and the likely fix.
    """
    shapes = tf.train.load_checkpoint(checkpoint_path).get_variable_to_shape_map()
    missing = sorted(n for n in mapping if n not in shapes)
    bad = sorted("%s: checkpoint %s, model %s" % (n, list(shapes[n]), v.shape.as_list())
                 for n, v in mapping.items()
                 if n in shapes and list(shapes[n]) != v.shape.as_list())
    if missing and moving_average_decay and all(n.endswith("/ExponentialMovingAverage")
                                                for n in missing):
        raise ValueError("checkpoint %s holds no moving averages (e.g. %s); train with "
                         "--moving_average_decay, or drop --moving_average_decay here"
                         % (checkpoint_path, missing[0]))
    if missing or bad:
        raise ValueError("checkpoint %s does not fit the model:%s%s\ncheck --model_name, "
                         "--num_classes and the image size"
                         % (checkpoint_path,
                            "\n  missing: " + ", ".join(missing[:5]) if missing else "",
                            "\n  " + "\n  ".join(bad[:5]) if bad else ""))


def write_eval_summary(eval_dir, result, split_name, writer=None):
    """Writes ``eval/<split>/top1`` and ``top5`` at the checkpoint's step for TensorBoard
    (through ``writer`` when given, else a writer opened and closed here)."""
    summary = tf.Summary(value=[
        tf.Summary.Value(tag="eval/%s/top1" % split_name, simple_value=result["top1"]),
        tf.Summary.Value(tag="eval/%s/top5" % split_name, simple_value=result["top5"]),
    ])
    if writer is not None:
        writer.add_summary(summary, result["global_step"])
        writer.flush()
        return
    os.makedirs(eval_dir, exist_ok=True)
    with tf.Graph().as_default():  # the v1 writer refuses eager mode
        writer = tf.summary.FileWriter(eval_dir)
        writer.add_summary(summary, result["global_step"])
        writer.close()
