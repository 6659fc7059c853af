#!/usr/bin/env python
"""Trains an image classifier: ``python train_image_classifiers.py --model_name=... [flags]``.

Single process, or data parallel under ``horovodrun -np N [-H host1:4,host2:4] python
train_image_classifiers.py ...``.  Checkpoints, TensorBoard summaries, profiles and the resolved
flags go to ``--train_dir``; a checkpoint already there is resumed.  See README for examples.
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from images.utils import xla  # noqa: E402
xla.allow_cpu_jit()  # before TensorFlow starts, or --xla could not compile on CPUs

from images.utils import onednn  # noqa: E402  (imports no TensorFlow)

ONEDNN = onednn.configure()  # before TensorFlow is imported: it reads the variable once

import flags as flag_defs  # noqa: E402  (defines the flags; imports no TensorFlow)

if __name__ == "__main__":
    flag_defs.answer_help(sys.argv)  # without waiting for TensorFlow to load

from absl import app  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402
from images.datasets import dataset_factory, pipeline  # noqa: E402
from images.models import model_factory  # noqa: E402
from images.preprocessing import preprocessing_factory  # noqa: E402
from images import training  # noqa: E402
from images.utils import distributed, hooks as hooks_lib, learning_rate as lr_lib  # noqa: E402
from images.utils import losses, optimizers, precision, warm_start  # noqa: E402
from images.utils import fastnn_flags, progress, record_count, run_dir  # noqa: E402
from images.utils import checkpoint_io, preflight, resume_state  # noqa: E402

FLAGS = flag_defs.FLAGS
log = training.log


class UsageError(ValueError):
    """A flag combination that cannot run; the message says how to fix it."""


def _gpu_available():
    return bool(tf.config.list_physical_devices("GPU"))


def resolve_precision():
    """The compute dtype from --use_fp16 / --use_bf16 and this machine (docs/distributed.md)."""
    return precision.resolve_policy(FLAGS.use_fp16, FLAGS.use_bf16, _gpu_available())


def resolve_loss_scale(policy):
    """--loss_scale; float16 without an explicit --loss_scale scales dynamically."""
    text = FLAGS.loss_scale
    if policy.dtype == tf.float16 and not FLAGS["loss_scale"].present:
        text = "dynamic"
    return precision.LossScaleConfig.parse(text, FLAGS.loss_scale_growth_steps,
                                           FLAGS.loss_scale_initial)


def check_flags():
    """Cross-checks flags against the registries; raises UsageError with the fix."""
    record = model_factory.get_model_record(FLAGS.model_name)
    dataset = dataset_factory.get_dataset(FLAGS.dataset_name)
    if FLAGS.preprocessing_name:
        preprocessing_factory.get_preprocessing(FLAGS.preprocessing_name)
    hook_names = hooks_lib.parse_hook_names(FLAGS.hooks)
    optimizers.OptimizerConfig(name=FLAGS.optimizer).validate()
    precision.LossScaleConfig.parse(FLAGS.loss_scale)
    warm_start.parse_scope_map(FLAGS.checkpoint_scope_map)
    if not dataset.is_mock:
        dataset_factory.check_split(dataset, FLAGS.dataset_split_name)
        if FLAGS["num_classes"].present:
            # Real datasets know their class count (custom ones from labels.txt).
            known = (dataset.num_classes - _labels_offset(dataset)
                     if dataset.num_classes is not None else
                     dataset_factory.resolve_num_classes(dataset, FLAGS.dataset_dir, None))
            if FLAGS.num_classes != known:
                raise UsageError("--num_classes=%d but dataset %s has %d classes; drop "
                                 "--num_classes" % (FLAGS.num_classes, dataset.name, known))
    if dataset.is_mock and not FLAGS.num_sample_per_epoch and (
            not FLAGS.stop_at_step or "StopAtStepHook" not in hook_names):
        raise UsageError("mock data never ends: give --stop_at_step > 0 (with StopAtStepHook in "
                         "--hooks) or --num_sample_per_epoch to define its epochs")
    if FLAGS.eval_files:  # a typo shows now, not when evaluation starts
        dataset_factory.resolve_files(dataset, FLAGS.dataset_dir, file_names=FLAGS.eval_files)
    return record, dataset


def resolve_fastnn_flags(cluster):
    """Applies FastNN's flags that have another name here and the default ``--train_dir``.

    Logs (on the chief) each FastNN flag that has no effect here, and the oneDNN choice.

    Raises:
      ValueError: a FastNN value refused under Horovod, or one contradicting our flag.
    """
    values = resolved_flags()
    present = {name for name in values if FLAGS[name].present}
    updates, notes = fastnn_flags.translate(values, present, num_workers=cluster.size)
    for name, value in updates.items():
        setattr(FLAGS, name, value)
    if not FLAGS.train_dir:
        FLAGS.train_dir = run_dir.default_train_dir(FLAGS.model_name, FLAGS.task_type)
    if cluster.is_chief:
        for note in notes:
            log.warning("%s", note)
        log.info("%s", ONEDNN)
        cpus = os.cpu_count() or 1
        if FLAGS.num_intra_threads > cpus:
            log.warning("--num_intra_threads=%d is more than the %d CPU(s) here: threads will "
                        "wait for each other; 0 lets TensorFlow choose", FLAGS.num_intra_threads,
                        cpus)


def profile_dir():
    """Where Chrome traces go: ``--train_dir``, or FastNN's ``--output_dir`` when only it is given."""
    return fastnn_flags.profile_dir(
        FLAGS.train_dir, FLAGS["train_dir"].present or bool(FLAGS.checkpointDir), FLAGS.output_dir)


def resolve_epoch_size(dataset, is_chief):
    """Examples in one epoch over all workers, or None when unknown (a WARNING says why).

    ``--num_sample_per_epoch`` if given; else the registry's size of the split; else, for files
    named by ``--train_files`` and splits of unknown size, the records counted in the files
    (once: the count is cached beside them).
    """
    if FLAGS.num_sample_per_epoch or dataset.is_mock:
        return FLAGS.num_sample_per_epoch
    if not FLAGS.train_files:
        size = dataset_factory.split_size(dataset, FLAGS.dataset_split_name, FLAGS.dataset_dir)
        if size:
            return size
    files = dataset_factory.resolve_files(dataset, FLAGS.dataset_dir, FLAGS.dataset_split_name,
                                          FLAGS.train_files)
    size, why = record_count.epoch_size(files)
    if is_chief and size is None:
        log.warning("epoch size unknown (%s): epoch-based learning-rate decay is off and "
                    "--num_epochs cannot give the run's length; give --num_sample_per_epoch",
                    why)
    elif is_chief:
        log.info("epoch size %d examples, counted in %d file(s) (cached in %s beside them)",
                 size, len(files), record_count.CACHE_NAME)
    return size


def resolved_run(record, dataset, num_classes, image_size, labels_offset):
    """What this run trains, for ``flags.json`` (:mod:`images.utils.run_dir`)."""
    return {"model_name": record.name, "dataset_name": dataset.name,
            "dataset_dir": FLAGS.dataset_dir, "num_classes": num_classes,
            "task_type": FLAGS.task_type, "image_size": image_size,
            "preprocessing_name": preprocessing_factory.canonical_name(
                FLAGS.preprocessing_name or record.preprocessing_name),
            "labels_offset": labels_offset, "use_grayscale": FLAGS.use_grayscale,
            "channels": dataset.channels, "eval_files": FLAGS.eval_files,
            "moving_average_decay": FLAGS.moving_average_decay}


def resolved_flags():
    """``{name: value}`` of every trainer flag (absl's own flags left out)."""
    return {f.name: f.value for f in FLAGS.get_flags_for_module(flag_defs)}


def _labels_offset(dataset):
    return dataset.labels_offset if FLAGS.labels_offset is None else FLAGS.labels_offset


def main(argv):
    del argv
    try:
        os.environ.update(fastnn_flags.horovod_env(FLAGS.tensor_fusion_max_bytes))
        unfused = distributed.reproducible_sums_env(FLAGS.random_seed is not None)
        os.environ.update(unfused)
        cluster = distributed.init_cluster(FLAGS.enable_paisoar)
    except ValueError as e:
        raise app.UsageError(str(e))
    training.setup_logging(cluster.rank)
    if unfused and cluster.distributed and cluster.is_chief:
        log.info("--random_seed with %d workers: tensor fusion off (HOROVOD_FUSION_THRESHOLD=0) "
                 "so that gradients are summed in one fixed order and runs repeat bit for bit; "
                 "--tensor_fusion_max_bytes=N turns it back on", cluster.size)
    try:
        resolve_fastnn_flags(cluster)
        record, dataset = check_flags()
        log.info("%s", xla.describe(FLAGS.xla))
        return train(cluster, record, dataset)
    except (UsageError, ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        return 2
    except (training.NonFiniteLossError, checkpoint_io.CheckpointWriteError) as e:
        log.error("%s", e)
        return 1
    except (tf.errors.OpError, OSError) as e:
        lost = distributed.lost_worker_message(cluster, e) if isinstance(
            e, tf.errors.OpError) else None  # another worker died or hung
        if lost is not None:
            log.error("%s", lost)
            return 1
        mismatch = run_dir.restore_error_message(e, FLAGS.train_dir)  # another run's checkpoint
        if mismatch is not None:
            log.error("%s", mismatch)
            return 2
        written = checkpoint_io.write_error_message(e, FLAGS.train_dir)  # full disk ...
        if written is not None:
            log.error("%s", written)
            return 1
        if isinstance(e, OSError):
            raise
        message = pipeline.data_error_message(e)  # corrupt file, bad image or label
        if message is None:
            raise
        log.error("bad input data: %s", message)
        return 2


def train(cluster, record, dataset):
    """Builds the training graph and runs it in a MonitoredTrainingSession."""
    policy = resolve_precision()
    loss_scale = resolve_loss_scale(policy)
    labels_offset = _labels_offset(dataset)
    num_classes = dataset_factory.resolve_num_classes(
        dataset, FLAGS.dataset_dir, FLAGS.num_classes) if dataset.num_classes is None else (
        dataset.num_classes - labels_offset)
    image_size = FLAGS.train_image_size or record.default_image_size
    global_batch = FLAGS.batch_size * cluster.size
    is_chief = cluster.is_chief
    samples_per_epoch = resolve_epoch_size(dataset, is_chief)
    run = resolved_run(record, dataset, num_classes, image_size, labels_offset)
    run_dir.check_compatible(FLAGS.train_dir, run,
                             tf.train.latest_checkpoint(FLAGS.train_dir) is not None)
    files = None if dataset.is_mock else dataset_factory.resolve_files(
        dataset, FLAGS.dataset_dir, FLAGS.dataset_split_name, FLAGS.train_files)
    plan = resume_state.plan_run(
        cluster, FLAGS.train_dir, batch_size=FLAGS.batch_size, num_epochs=FLAGS.num_epochs,
        stop_at_step=(FLAGS.stop_at_step if "StopAtStepHook" in hooks_lib.parse_hook_names(
            FLAGS.hooks) else None),
        files=files, mock_steps=resume_state.mock_batches(FLAGS.num_epochs, samples_per_epoch,
                                                          FLAGS.batch_size, cluster.size))
    if plan.complete:  # a finished job restarted: leave every file as it is
        # No record says the checkpoint is this model's: rank 0, the one worker that reads it
        # (plan.checkpoint is None elsewhere; --train_dir may be on rank 0's host alone), checks.
        if plan.checkpoint and not run_dir.read_resolved(FLAGS.train_dir):
            misfit = run_dir.checkpoint_misfit(
                plan.checkpoint, FLAGS.train_dir, model_factory.get_network_fn(
                    record.name, num_classes=num_classes, is_training=True),
                image_size, 1 if FLAGS.use_grayscale else 3)
            if misfit:
                raise ValueError(misfit)
        if is_chief:
            log.info("%s", resume_state.completion_message(plan, FLAGS.train_dir))
        return 0
    if FLAGS.preflight_check and files:
        preflight.check_for_worker(files, dataset, num_classes, labels_offset, cluster)
    if is_chief:
        checkpoint_io.remove_stale_temp_files(FLAGS.train_dir)
        training.write_run_flags(FLAGS.train_dir, resolved_flags(), sys.argv, run)
    log.info("model %s, dataset %s (%d classes), image %dx%d, batch %d x %d worker(s), %s",
             record.name, dataset.name, num_classes, image_size, image_size, FLAGS.batch_size,
             cluster.size, policy.description)
    log.info("precision: %s; loss scale: %s", policy.reason,
             loss_scale.mode if loss_scale.mode != "static" else loss_scale.value)

    clock = progress.StartupClock()
    if is_chief:
        log.info("building the training graph (%s); train_dir %s", record.name, FLAGS.train_dir)
    graph = tf.Graph()
    with graph.as_default():
        if FLAGS.random_seed is not None:
            tf.set_random_seed(FLAGS.random_seed)
        global_step = tf.train.get_or_create_global_step()
        preprocessing_fn = preprocessing_factory.get_preprocessing(
            FLAGS.preprocessing_name or record.preprocessing_name, is_training=True,
            use_grayscale=FLAGS.use_grayscale)
        channels = 1 if FLAGS.use_grayscale else 3
        ds = training.make_input_dataset(
            dataset, dataset_dir=FLAGS.dataset_dir, split_name=FLAGS.dataset_split_name,
            file_names=FLAGS.train_files, preprocessing_fn=preprocessing_fn,
            image_size=image_size, batch_size=FLAGS.batch_size, is_training=True,
            num_classes=num_classes, channels=channels, num_epochs=FLAGS.num_epochs,
            cluster=cluster, seed=FLAGS.random_seed, labels_offset=labels_offset,
            samples_per_epoch=samples_per_epoch, start_step=plan.start_step,
            epoch_size=plan.epoch_size,
            input_options=dict(
                shuffle_buffer_size=FLAGS.shuffle_buffer_size,
                num_parallel_batches=FLAGS.num_parallel_batches,
                num_preprocessing_threads=FLAGS.num_preprocessing_threads,
                prefetch_buffer_size=FLAGS.prefetch_buffer_size,
                use_caching=FLAGS.datasets_use_caching,
                skip_corrupt_records=FLAGS.skip_corrupt_records))
        images, labels = tf.data.make_one_shot_iterator(ds).get_next()

        network_fn = model_factory.get_network_fn(
            record.name, num_classes=num_classes, weight_decay=FLAGS.weight_decay,
            is_training=True)
        logits, _, aux_logits = training.build_network(
            network_fn, images, policy.build_dtype,
            random_key=training.step_random_key(FLAGS.random_seed, cluster.rank, global_step))
        total_loss, cross_entropy = losses.classification_loss(
            logits, labels, num_classes, label_smoothing=FLAGS.label_smoothing,
            aux_logits=aux_logits if record.has_aux_logits else None)
        accuracy = losses.accuracy(logits, labels)

        lr_cfg = lr_lib.LearningRateConfig(
            learning_rate=FLAGS.learning_rate * (cluster.size if
                                                 FLAGS.scale_learning_rate_by_workers else 1),
            decay_type=FLAGS.learning_rate_decay_type,
            decay_factor=FLAGS.learning_rate_decay_factor,
            end_learning_rate=FLAGS.end_learning_rate, warmup_steps=FLAGS.warmup_steps,
            warmup_scheme=FLAGS.warmup_scheme, decay_scheme=FLAGS.decay_scheme,
            total_steps=FLAGS.stop_at_step, num_samples_per_epoch=samples_per_epoch,
            global_batch_size=global_batch, num_epochs_per_decay=FLAGS.num_epochs_per_decay)
        learning_rate = lr_lib.build_learning_rate(lr_cfg, global_step)
        opt_cfg = optimizers.OptimizerConfig(
            name=FLAGS.optimizer, adadelta_rho=FLAGS.adadelta_rho,
            adagrad_initial_accumulator_value=FLAGS.adagrad_initial_accumulator_value,
            adam_beta1=FLAGS.adam_beta1, adam_beta2=FLAGS.adam_beta2,
            opt_epsilon=FLAGS.opt_epsilon, ftrl_learning_rate_power=FLAGS.ftrl_learning_rate_power,
            ftrl_initial_accumulator_value=FLAGS.ftrl_initial_accumulator_value,
            ftrl_l1=FLAGS.ftrl_l1, ftrl_l2=FLAGS.ftrl_l2, momentum=FLAGS.momentum,
            rmsprop_momentum=FLAGS.rmsprop_momentum, rmsprop_decay=FLAGS.rmsprop_decay,
            adamw_weight_decay_rate=FLAGS.adamw_weight_decay_rate)
        optimizer = precision.GradientPolicyOptimizer(
            optimizers.build_optimizer(opt_cfg, learning_rate),
            loss_scale=loss_scale,
            max_gradient_norm=FLAGS.max_gradient_norm)
        optimizer = distributed.distributed_optimizer(
            cluster, optimizer, compression="fp16" if FLAGS.hvd_fp16_compression else "none",
            op=FLAGS.allreduce_op, backward_passes_per_step=FLAGS.backward_passes_per_step)
        train_op = training.build_train_op(
            optimizer, total_loss, global_step,
            var_list=warm_start.variables_to_train(tf.trainable_variables(),
                                                   FLAGS.trainable_scopes))
        averages = None
        if FLAGS.moving_average_decay:
            # Updated after each step's weights change; the shadows are global variables, so
            # every checkpoint carries them (eval and export read them with the same flag).
            ema = tf.train.ExponentialMovingAverage(FLAGS.moving_average_decay,
                                                    num_updates=global_step)
            with tf.control_dependencies([train_op]):
                train_op = ema.apply(tf.model_variables())
            averages = {v: ema.average(v) for v in tf.model_variables()}

        if (FLAGS.print_model_statistics or FLAGS.log_trainable_vars_statistics) and is_chief:
            for line in training.model_statistics(tf.trainable_variables()):
                print(line)
        if FLAGS.log_optimizer_vars_statistics and is_chief:
            for line in training.model_statistics(optimizer.variables(), "optimizer values"):
                print(line)

        tf.summary.scalar("loss/total", total_loss)
        tf.summary.scalar("loss/cross_entropy", cross_entropy)
        tf.summary.scalar("train/accuracy", accuracy)
        tf.summary.scalar("train/learning_rate", learning_rate)

        saver = checkpoint_io.GuardedSaver(max_to_keep=FLAGS.keep_checkpoint_max)
        init_fn = None
        if FLAGS.task_type == "finetune" and is_chief:  # the broadcast gives the others
            init_fn = warm_start.warm_start_init_fn(
                FLAGS.model_dir, FLAGS.ckpt_file_name, train_dir=FLAGS.train_dir,
                num_classes=num_classes,
                scope_map=warm_start.parse_scope_map(FLAGS.checkpoint_scope_map),
                exclude_scopes=warm_start.parse_scopes(FLAGS.checkpoint_exclude_scopes),
                ignore_missing_vars=FLAGS.ignore_missing_vars, averages=averages)
        scaffold = tf.train.Scaffold(saver=saver, init_fn=init_fn)
        hook_names = hooks_lib.parse_hook_names(FLAGS.hooks)
        total_steps = plan.last_step  # where the run stops: the share and ETA end at 100%
        hooks = hooks_lib.build_hooks(
            hook_names, log_tensors={"global_step": global_step, "loss": total_loss, "accuracy": accuracy,
                         "learning_rate": learning_rate},
            train_dir=FLAGS.train_dir, stop_at_step=FLAGS.stop_at_step,
            log_every_n_iters=FLAGS.log_loss_every_n_iters,
            profile_every_n_iters=FLAGS.profile_every_n_iters,
            profile_this_worker=cluster.rank == FLAGS.profile_at_task, is_chief=is_chief,
            global_batch_size=global_batch, saver=saver,
            save_checkpoints_steps=FLAGS.save_checkpoints_steps,
            total_steps=total_steps, summary_dir=FLAGS.summaryDir or None,
            profile_dir=profile_dir())
        hooks.extend(resume_state.data_end_hooks(plan))
        bcast = distributed.broadcast_hook(cluster)
        if bcast is not None:
            hooks.insert(0, bcast)
        run_clock = progress.RunClockHook(clock, total_steps, announce=is_chief)
        hooks.append(run_clock)
        clock.mark_graph_built()

        latest = tf.train.latest_checkpoint(FLAGS.train_dir) if is_chief else None
        if latest:
            log.info("resuming from %s", latest)
        with tf.train.MonitoredTrainingSession(
                # Every worker initialises its own variables (a non-chief would wait for
                # another process to do it); the broadcast hook then copies rank 0's.
                master="", is_chief=True,
                checkpoint_dir=FLAGS.train_dir if is_chief else None, scaffold=scaffold,
                hooks=hooks, save_checkpoint_secs=None, save_checkpoint_steps=None,
                summary_dir=(FLAGS.summaryDir or None) if is_chief else None,
                save_summaries_steps=(FLAGS.save_summaries_steps or None) if is_chief else None,
                save_summaries_secs=None, log_step_count_steps=None,
                config=xla.configure_session(
                    policy.configure_session(distributed.configure_session(
                        cluster, training.session_config(FLAGS.num_intra_threads,
                                                         FLAGS.num_inter_threads,
                                                         FLAGS.log_device_placement))),
                    FLAGS.xla)) as sess:
            training.run_training_loop(sess, train_op, global_step,
                                       train_dir=FLAGS.train_dir if is_chief else None)
        if is_chief:
            log.info("%s", progress.outcome_text(
                run_clock.start_step, run_clock.last_step, time.time() - run_clock.start_time,
                FLAGS.train_dir,
                tf.train.latest_checkpoint(FLAGS.train_dir), "CheckpointSaverHook" in hook_names))
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=flag_defs.parse_flags)
