"""Builds the training graph of a :class:`LargeScaleConfig` and runs it on one worker.

Every worker runs the same program (under ``horovodrun`` or alone).  The graph: data (base64,
TFRecord or mock) -> embedding network -> sharded FC layer and loss -> routed gradients
(:mod:`train_graph`) -> optimizer.  Non-shard variables are broadcast from rank 0 once the
session exists; shard variables never are.  Checkpoints are written by every worker
(:mod:`checkpoint`) every ``save_steps`` (or epoch) and at the end.
"""
import logging
import math
import os
import time

import tensorflow.compat.v1 as tf

from images import training
from images.largescale import checkpoint as ckpt_lib
from images.largescale import (backbones, data, embedding, epoch_alias, fc_layer, fc_optimizer,
                               loss_scaling, losses, readers, train_graph, verification)
from images.largescale.collectives import Collectives, agree
from images.largescale.config import LargeScaleConfig
from images.utils import distributed, hooks as hooks_lib, optimizers, precision

log = logging.getLogger("fastnn")

DEFAULT_EPOCHS = 120
DEFAULT_BOUNDARIES = (0.5, 0.75, 0.9)


class _StopAtStep(tf.train.SessionRunHook):
    """Stops at ``last_step``, also before the first step when a restored run is already there
    (TF's StopAtStepHook always runs one step first)."""

    def __init__(self, last_step, global_step):
        self._last, self._gs = int(last_step), global_step

    def after_create_session(self, session, coord):
        if session.run(self._gs) >= self._last:
            coord.request_stop()

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._gs)

    def after_run(self, run_context, run_values):
        if run_values.results + 1 >= self._last and run_context.session.run(
                self._gs) >= self._last:
            run_context.request_stop()


class _FetchHook(tf.train.SessionRunHook):
    """Fetches tensors in every step and discards them (keeps collectives in step)."""

    def __init__(self, tensors):
        self._tensors = tensors

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._tensors)


class _TopFiveLogHook(tf.train.SessionRunHook):
    """Logs the top-5 accuracy (PLSC's acc5) beside the throughput hook's line."""

    def __init__(self, accuracy5, global_step, every):
        self._acc5, self._gs, self._every = accuracy5, global_step, every

    def before_run(self, run_context):
        return tf.train.SessionRunArgs([self._gs, self._acc5])

    def after_run(self, run_context, run_values):
        step, acc5 = run_values.results
        if (int(step) + 1) % self._every == 0:
            log.info("step=%d, accuracy5=%.5g", int(step) + 1, float(acc5))


class _SessionCapture(tf.train.SessionRunHook):
    """Keeps the raw session, to read variables after the monitored loop has stopped."""
    session = None

    def after_create_session(self, session, coord):
        self.session = session


class _CheckpointAndTestHook(tf.train.SessionRunHook):
    """Saves every ``save_steps`` steps and at the end (all workers); on rank 0 names the
    checkpoints that end an epoch by the epoch (PLSC's ``<model_save_dir>/<epoch>``) and runs
    the verification sets when asked: after each checkpoint, or every ``test_period`` steps
    when that is set (PLSC v0.2)."""

    def __init__(self, trainer, save_steps):
        self._t, self._every = trainer, save_steps
        self._last_saved = None
        self._last_tested = None

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._t.global_step)

    def after_run(self, run_context, run_values):
        step = int(run_values.results) + 1
        if self._every and step % self._every == 0:
            self._save(run_context.session, step)
        period = self._t.cfg.test_period
        if period and step % period == 0:
            self._test(run_context.session, step)

    def end(self, session):
        step = int(session.run(self._t.global_step))
        if step != self._last_saved:
            self._save(session, step)

    def _save(self, session, step):
        self._last_saved = step
        cfg, t = self._t.cfg, self._t
        if cfg.model_save_dir:
            folder = t.checkpointer.save(session, cfg.model_save_dir, step)
            t.last_checkpoint = folder
            if t.cluster.rank == 0 and t.steps_per_epoch and step % t.steps_per_epoch == 0:
                epoch_alias.link(cfg.model_save_dir, step // t.steps_per_epoch - 1, folder)
            if t.cluster.rank == 0:
                epoch_alias.prune(cfg.model_save_dir)
        if not cfg.test_period:
            self._test(session, step)

    def _test(self, session, step):
        if self._t.val_targets and self._t.cluster.rank == 0 and step != self._last_tested:
            self._last_tested = step
            self._t.results[step] = self._t.run_verification(session)


class Trainer:
    """The training graph and session of one worker.

    Use as a context manager::

        with Trainer(cfg, cluster) as t:
            t.fit()
    """

    def __init__(self, cfg: LargeScaleConfig, cluster=None, train_reader=None, test_reader=None):
        self.cfg = cfg
        self.cluster = cluster or distributed.init_cluster(True)
        self.comm = Collectives(self.cluster)
        self.loss_type = cfg.resolved_loss_type()
        self.loss_spec = losses.get_loss(self.loss_type)
        self.train_reader, self.test_reader = train_reader, test_reader
        self.results = {}
        self.last_checkpoint = None
        self.on_exit = None  # fn(trainer) called before a session that trained is closed
        self._plan()
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._build()
        self.sess = None

    # ------------------------------------------------------------------ planning
    def _plan(self):
        cfg, size = self.cfg, self.cluster.size
        if self.loss_spec.distributed and cfg.class_num < size:
            raise ValueError("class_num %d is smaller than the %d workers of a dist loss"
                             % (cfg.class_num, size))
        self.global_batch = cfg.train_batch_size * size
        reader_steps = None
        if self.train_reader is not None:
            self.data_format, self.files = "reader", []
            self.image_num = cfg.train_image_num
            source = "train_reader (the program's own reader)"
            if not self.image_num and cfg.train_steps is None:
                # One pass of the reader is one epoch; the workers agree on the shortest.
                if self.cluster.rank == 0 and getattr(self.train_reader, "num_samples",
                                                      None) is None:
                    log.info("counting the samples of train_reader (one pass; "
                             "set_train_image_num or set_train_steps to skip)")
                local = readers.count_samples(self.train_reader)
                if not local:
                    raise ValueError("train_reader yielded no samples")
                reader_steps = agree(self.cluster, int(math.ceil(local / cfg.train_batch_size)))
                self.image_num = reader_steps * self.global_batch
                source += ", %d samples per pass on this worker" % local
        elif cfg.dataset_dir:
            self.data_format, self.files = data.resolve_train_files(cfg.dataset_dir,
                                                                    cfg.dataset_format)
            if not cfg.train_image_num and self.cluster.rank == 0:
                log.info("counting the images of %d file(s) (set_train_image_num to skip)",
                         len(self.files))
            self.image_num = cfg.train_image_num or data.count_examples(self.files,
                                                                        self.data_format)
            source = "%s data from %s (%d files, %d images)" % (
                self.data_format, cfg.dataset_dir, len(self.files), self.image_num)
        else:
            self.data_format, self.files = "mock", []
            self.image_num = cfg.train_image_num
            source = "MOCK data (no dataset dir was set): one fixed random batch per worker"
        self.steps_per_epoch = reader_steps or steps_per_epoch(self.image_num, self.global_batch)
        if cfg.train_steps is not None:
            self.total_steps = int(cfg.train_steps)
        elif self.steps_per_epoch and (cfg.train_epochs is not None or self.files
                                       or self.train_reader is not None):
            epochs = cfg.train_epochs if cfg.train_epochs is not None else DEFAULT_EPOCHS
            self.total_steps = steps_for_epochs(epochs, self.steps_per_epoch)
        else:
            self.total_steps = cfg.mock_steps
            source += "; %d steps (set_train_steps to change)" % cfg.mock_steps
        self.warmup_steps = steps_for_epochs(cfg.warmup_epochs, self.steps_per_epoch) if (
            cfg.warmup_epochs and self.steps_per_epoch) else 0
        if cfg.warmup_epochs and not self.steps_per_epoch:
            raise ValueError("warmup_epochs needs the epoch size: set_train_image_num")
        self.save_steps = cfg.save_steps or self.steps_per_epoch
        self.source = source
        if self.cluster.rank == 0:
            log.info("training %s, %d classes, emb %d, loss %s%s on %d worker(s) x %d images; "
                     "%s; %d steps%s", _model_name(cfg.model), cfg.class_num, cfg.emb_size,
                     self.loss_type, "" if cfg.sample_ratio >= 1.0 else
                     " (Partial FC %.3g)" % cfg.sample_ratio, size, cfg.train_batch_size, source,
                     self.total_steps, " (%d per epoch)" % self.steps_per_epoch
                     if self.steps_per_epoch else "")

    # ------------------------------------------------------------------ graph
    def _build(self):
        cfg, cluster = self.cfg, self.cluster
        tf.set_random_seed(cfg.seed)
        self.global_step = tf.train.get_or_create_global_step()
        if self.data_format == "mock":
            ds = data.mock_dataset(cfg.image_shape, cfg.train_batch_size, cfg.class_num,
                                   seed=cfg.seed + cluster.rank)
        elif self.data_format == "reader":
            ds = readers.reader_dataset(self.train_reader, cfg.image_shape, cfg.train_batch_size,
                                        cfg.class_num)
        else:
            ds = data.train_dataset(self.files, self.data_format, cfg.image_shape,
                                    cfg.train_batch_size, cfg.class_num, num_workers=cluster.size,
                                    worker_index=cluster.rank, seed=cfg.seed)
        images, labels = tf.data.make_one_shot_iterator(ds).get_next()
        compute_dtype = (precision.COMPUTE_DTYPES[cfg.mixed_precision_dtype]
                         if cfg.use_mixed_precision else tf.float32)
        emb = embedding.build_embedding(images, backbone=cfg.model, emb_size=cfg.emb_size,
                                        is_training=True, weight_decay=cfg.weight_decay,
                                        compute_dtype=compute_dtype, labels=labels)
        # A PLSC model object decides its own width (as in PLSC); everything else has emb_size.
        self.emb_size = int(emb.shape[-1])
        if self.emb_size != cfg.emb_size and cluster.rank == 0:
            log.info("the model's embedding is %d wide (emb_size says %d): using %d",
                     self.emb_size, cfg.emb_size, self.emb_size)
        base_lr = cfg.lr * self.global_batch / 1024.0
        boundaries = cfg.step_boundaries if cfg.step_boundaries is not None else [
            int(f * self.total_steps) for f in DEFAULT_BOUNDARIES]
        self.learning_rate = train_graph.piecewise_learning_rate(
            self.global_step, base_lr, boundaries, self.warmup_steps, decay=cfg.lr_decay_factor)
        inner = self._inner_optimizer()
        dynamic = cfg.use_mixed_precision and cfg.use_dynamic_loss_scaling
        if dynamic:
            self.optimizer = loss_scaling.PLSCLossScaleOptimizer(
                inner, cfg.init_loss_scaling, cfg.incr_every_n_steps,
                cfg.decr_every_n_nan_or_inf, cfg.incr_ratio, cfg.decr_ratio)
        else:
            scale_cfg = (precision.LossScaleConfig.parse(cfg.init_loss_scaling)
                         if cfg.use_mixed_precision else precision.LossScaleConfig())
            self.optimizer = precision.GradientPolicyOptimizer(inner, loss_scale=scale_cfg)
        scale_cfg = self.optimizer.loss_scale_config
        margin = None
        if self.loss_spec.is_margin:
            m = cfg.margins or self.loss_spec.margins
            margin = losses.Margin(m[0], m[1], m[2], cfg.scale, cfg.easy_margin)
        self.fc = fc = fc_layer.build_fc_loss(
            emb, labels, num_classes=cfg.class_num, loss_spec=self.loss_spec, comm=self.comm,
            margin=margin, sample_ratio=cfg.sample_ratio if cfg.sample_ratio < 1.0 else None,
            weight_decay=cfg.weight_decay, seed=cfg.seed, calc_acc=cfg.calc_acc,
            loss_scale=self.optimizer.loss_scale() if scale_cfg.mode != "none" else None,
            weights_initializer=cfg.fc_initializer, bias_initializer=cfg.fc_bias_initializer)
        if isinstance(inner, fc_optimizer.LowPrecisionMomentum):
            inner.set_low_variables([v for v in (fc.weights, fc.bias) if v is not None])
        reg_terms = [tf.cast(r, tf.float32) for r in tf.losses.get_regularization_losses()]
        # The FC rows' weight decay is part of their gradient (fc_layer._with_weight_decay);
        # fc.reg_loss only adds its value to the logged loss.
        reg_loss = tf.add_n(reg_terms, name="regularization_loss") if reg_terms else None
        self.loss = fc.loss

        train_op = train_graph.build_train_op(
            self.optimizer, fc.loss + fc.reg_loss, reg_loss, fc.shard_variables, self.comm,
            self.loss_spec.distributed, self.global_step, dynamic_loss_scale=dynamic)
        self.train_op = train_op

        # The FC arrays and their slots are saved per shard; everything else by rank 0.
        # 16-bit slots are saved as float32 (fc_optimizer.Float32View).
        fc_vars = [fc.weights] + ([fc.bias] if fc.bias is not None else [])
        shard_arrays = {}
        for var, key in zip(fc_vars, ("weights", "bias")):
            shard_arrays[key] = var
            for slot_name in self.optimizer.get_slot_names():
                slot = self.optimizer.get_slot(var, slot_name)
                if slot is not None:
                    shard_arrays[key + "/" + slot_name] = fc_optimizer.checkpoint_view(slot)
        fc_ids = {id(getattr(v, "variable", v)) for v in shard_arrays.values()}
        others = [v for v in tf.global_variables() if id(v) not in fc_ids]
        self.shard_arrays = shard_arrays
        self.other_variables = others
        # Shards of a dist layer must stay local.  A whole layer starts the same on every
        # worker without a broadcast (its initial draw and any checkpoint are the same for all
        # ranks), which spares a second copy of a layer that may hold millions of classes.
        self.broadcast_variables = [v for v in tf.global_variables() if id(v) not in fc_ids]
        self.checkpointer = ckpt_lib.ShardedCheckpointer(
            self.comm, shard_arrays, others, num_classes=cfg.class_num, emb_size=self.emb_size,
            num_shards=fc.num_shards, max_to_keep=cfg.max_to_keep or KEEP_ALL,
            optional_variables=[v for v in self.optimizer.variables()
                                if v.op.name.startswith("loss_scale")],
            extra_meta={"loss_type": self.loss_type, "model": _model_name(cfg.model),
                        "image_shape": list(cfg.image_shape),
                        "optimizer": cfg.optimizer if isinstance(cfg.optimizer, str)
                        else type(cfg.optimizer).__name__,
                        "steps_per_epoch": self.steps_per_epoch})

        self.eval_images = self.eval_embeddings = None
        self.val_targets = self._check_val_targets() if cfg.with_test else []
        if self.val_targets and cluster.rank == 0:
            c, h, w = cfg.image_shape
            self.eval_images = tf.placeholder(tf.float32, [None, h, w, c], "eval_images")
            self.eval_embeddings = embedding.build_embedding(
                self.eval_images, backbone=cfg.model, emb_size=cfg.emb_size, is_training=False,
                reuse=True)

        log_tensors = {"global_step": self.global_step, "loss": fc.loss}
        if self.learning_rate is not None:
            log_tensors["learning_rate"] = self.learning_rate
        if fc.accuracy is not None:
            log_tensors["accuracy"] = fc.accuracy
            log_tensors["accuracy5"] = fc.accuracy5
        self.accuracy = fc.accuracy
        self._session_capture = _SessionCapture()
        hooks = [self._session_capture, _StopAtStep(self.total_steps, self.global_step),
                 _CheckpointAndTestHook(self, self.save_steps)]
        if cfg.log_period > 0:
            # The logged tensors (accuracy) hold collectives, so every worker fetches them in
            # every step; only rank 0 prints.  (A control dependency would not do: Grappler
            # prunes a side-effect-free branch that nothing consumes.)
            hooks.append(hooks_lib.ThroughputLoggingHook(log_tensors, cfg.log_period,
                                                         self.global_batch)
                         if cluster.rank == 0 else _FetchHook(log_tensors))
            if fc.accuracy5 is not None and cluster.rank == 0:
                hooks.append(_TopFiveLogHook(fc.accuracy5, self.global_step, cfg.log_period))
        if self.comm.active:
            hooks.insert(0, distributed.BroadcastVariablesHook(cluster.hvd,
                                                               self.broadcast_variables))
        self.hooks = hooks
        self.restore_from = self._restore_source()
        self.scaffold = tf.train.Scaffold(init_op=init_op_slots_first(fc.weights),
                                          init_fn=self._init_fn, saver=tf.train.Saver(
                                              var_list=[tf.train.get_global_step()]))

    def _check_val_targets(self):
        """The val targets whose ``.bin`` exists; a missing one is skipped with a warning, as
        PLSC's reader skips it."""
        if self.test_reader is not None:
            return self.cfg.val_target_list()
        if not self.cfg.dataset_dir:
            if self.cluster.rank == 0:
                log.info("no verification during training: no dataset dir with "
                         "<target>.bin sets (set_with_test(False) silences this)")
            return []
        return existing_val_targets(self.cfg.dataset_dir, self.cfg.val_target_list(),
                                    warn=self.cluster.rank == 0)

    def _inner_optimizer(self):
        """The optimizer the update uses: a named one (with PLSC's learning-rate schedule), or
        the program's own ``tf.compat.v1.train.Optimizer`` object, whose learning rate is its
        own; with a 16-bit FC momentum, wrapped so that the FC rows' slot is 16 bits."""
        cfg = self.cfg
        if isinstance(cfg.optimizer, str):
            inner = optimizers.build_optimizer(
                optimizers.OptimizerConfig(name=cfg.optimizer, **cfg.optimizer_kwargs),
                self.learning_rate)
        else:
            inner = cfg.optimizer
            rate = getattr(inner, "_learning_rate", None)
            rate = rate() if callable(rate) else rate
            try:
                self.learning_rate = tf.identity(tf.cast(rate, tf.float32),
                                                 name="optimizer_learning_rate")
            except (TypeError, ValueError):
                self.learning_rate = None  # not a number or a tensor of this graph: not logged
        if cfg.fc_momentum_dtype != "float32":
            inner = fc_optimizer.LowPrecisionMomentum(
                inner, [], fc_optimizer.SLOT_DTYPES[cfg.fc_momentum_dtype])
        return inner

    def _restore_source(self):
        cfg = self.cfg
        if cfg.checkpoint_dir:
            return ckpt_lib.resolve_checkpoint(cfg.checkpoint_dir)
        if cfg.model_save_dir:
            latest = ckpt_lib.latest_checkpoint(cfg.model_save_dir)
            if latest and self.cluster.rank == 0:
                log.info("resuming from %s", latest)
            return latest
        return None

    def finished_step(self):
        """The step of the model save dir's checkpoint when it is already at or past
        ``total_steps`` (a finished run restarted), else None."""
        cfg = self.cfg
        if not cfg.model_save_dir or (cfg.checkpoint_dir and os.path.abspath(
                cfg.checkpoint_dir) != os.path.abspath(cfg.model_save_dir)):
            return None
        latest = ckpt_lib.latest_checkpoint(cfg.model_save_dir)
        step = int(ckpt_lib.read_meta(latest)["step"]) if latest else None
        return step if step is not None and step >= self.total_steps else None

    def _init_fn(self, scaffold, sess):
        if self.restore_from:
            self.checkpointer.restore(sess, self.restore_from)

    # ------------------------------------------------------------------ running
    def __enter__(self):
        with self.graph.as_default():
            config = large_layer_session_config(self.cfg.num_intra_threads,
                                                self.cfg.num_inter_threads)
            if self.cluster.distributed:
                # Each worker on the GPU of its local rank, as in the image trainer: workers
                # sharing a GPU make NCCL fail ("Duplicate GPU detected").
                config.gpu_options.visible_device_list = str(self.cluster.local_rank)
            self.sess = tf.train.MonitoredSession(
                session_creator=tf.train.ChiefSessionCreator(scaffold=self.scaffold,
                                                             config=config),
                hooks=self.hooks)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.sess is not None and exc_type is None and self.on_exit is not None \
                and self._session_capture.session is not None:
            self.on_exit(self)
        if self.sess is not None:
            with self.graph.as_default():
                self.sess.close()
            self.sess = None
        return False

    def fit(self):
        """Trains to ``total_steps``; returns the last global step."""
        start = time.time()
        with self.graph.as_default():
            step = training.run_training_loop(self.sess, self.train_op, self.global_step)
        if self.cluster.rank == 0:
            log.info("training stopped at step %d after %.1f s", step, time.time() - start)
        return step

    def run(self, fetches, feed_dict=None):
        """Runs ``fetches`` in the raw session (no hooks), also after training stopped."""
        return self._session_capture.session.run(fetches, feed_dict)

    def variable_values(self):
        """``{name: value}`` of every global variable on this worker."""
        with self.graph.as_default():
            variables = tf.global_variables()
        values = self.run(variables)
        return {v.op.name: val for v, val in zip(variables, values)}

    def run_verification(self, session):
        """Verification figures of every val target with the current weights (rank 0)."""
        return run_verification_sets(
            self.cfg, lambda x: session.run(self.eval_embeddings, {self.eval_images: x}),
            self.val_targets, self.test_reader)


KEEP_ALL = 2 ** 31 - 1  # set_max_last_checkpoint_num(0): every checkpoint is kept


def steps_per_epoch(image_num, global_batch):
    """Steps of one epoch: ``ceil(image_num / global_batch)``, PLSC's count (each worker reads
    ``ceil(image_num / N)`` images in ``train_batch_size`` batches).  The only definition used,
    for the total, the warmup, the checkpoints and the epoch names.  None without a count."""
    if not image_num:
        return None
    return max(1, int(math.ceil(image_num / float(global_batch))))


def steps_for_epochs(epochs, per_epoch):
    """Steps of ``epochs`` (possibly fractional) epochs of ``per_epoch`` steps."""
    return int(math.ceil(float(epochs) * per_epoch - 1e-9))


def existing_val_targets(dataset_dir, targets, warn=True):
    """The targets whose ``<dataset_dir>/<target>.bin`` exists; the others are skipped with a
    warning."""
    found = []
    for target in targets:
        path = os.path.join(dataset_dir, target + ".bin")
        if os.path.exists(path):
            found.append(target)
        elif warn:
            log.warning("val target %s skipped: %s does not exist", target, path)
    return found


def run_verification_sets(cfg, embed_fn, targets, test_reader=None):
    """Verification figures per target, from the ``.bin`` sets or a PLSC ``test_reader``
    (``test_reader(dataset_dir, val_targets) -> (sets, names)``, each set
    ``([images, flipped images], issame)``)."""
    results = {}
    if test_reader is not None:
        sets, names = test_reader(cfg.dataset_dir, cfg.val_targets)
        if len(sets) != len(names):
            raise ValueError("test_reader returned %d sets and %d names"
                             % (len(sets), len(names)))
        items = [(name, lambda s=s: verification.verify_arrays(
            s[0], s[1], embed_fn, cfg.image_shape, cfg.test_batch_size))
            for name, s in zip(names, sets)]
    else:
        items = [(target, lambda t=target: verification.verify(
            os.path.join(cfg.dataset_dir, t + ".bin"), embed_fn, cfg.image_shape,
            cfg.test_batch_size)) for target in targets]
    for name, run in items:
        res = run()
        log.info("[%s] accuracy %.5f +- %.5f, VAL %.5f @ FAR %.5f (%d pairs)", name,
                 res["accuracy"], res["accuracy_std"], res["val"], res["far"], res["pairs"])
        results[name] = res
    return results


def init_op_slots_first(weights):
    """Initialises every variable, the FC weights last.

    A zero-initialised variable (an optimizer slot) passes through a temporary of its own size,
    the random weights do not; in this order the start-up peak is two layer-sized buffers
    instead of three.
    """
    others = [v.initializer for v in tf.global_variables() if v is not weights]
    with tf.control_dependencies(others):
        return tf.group(weights.initializer, name="init_slots_first")


def large_layer_session_config(num_intra_threads=0, num_inter_threads=0):
    """The trainer's session config with Grappler's constant folding off.

    With it on, a variable initialised to zeros (every optimizer slot) shares its buffer with a
    folded constant that lives as long as the session: the first update copies the variable and
    both stay resident, one extra copy of every slot of a layer that may hold millions of
    classes (measured: 1.5x the layer's memory).
    """
    from tensorflow.core.protobuf import rewriter_config_pb2
    config = training.session_config(num_intra_threads, num_inter_threads)
    config.graph_options.rewrite_options.constant_folding = rewriter_config_pb2.RewriterConfig.OFF
    return config


def _model_name(model):
    return backbones.display_name(model)

