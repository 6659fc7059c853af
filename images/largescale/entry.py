"""PLSC's ``Entry`` API: configure with setters, then ``train()``, ``test()``, ``predict()``,
``convert_for_prediction()``.

    from images.largescale import Entry      # or: from plsc import Entry
    ins = Entry()
    ins.set_class_num(1000000)
    ins.train()

runs alone or under ``horovodrun -np N python prog.py``; without ``set_dataset_dir`` it reads
PLSC's ``./train_data`` when that exists, else trains on mock data and says so in the log.  Every setter of PLSC v0.1 and v0.2 is here with PLSC's
signature and defaults (the ones PLSC v0.2 added are in :mod:`plsc_setters`); each checks its
argument and raises ValueError with the valid choices, and a setting that has no meaning here
is refused with a message that says what to use instead.  PLSC's custom-reader hooks
``ins.train_reader``, ``ins.test_reader`` and ``ins.predict_reader`` are honoured
(:mod:`readers`).
"""
import dataclasses
import logging
import os

from images.largescale import backbones
from images.largescale import checkpoint as ckpt_lib
from images.largescale import data, losses
from images.largescale.config import LargeScaleConfig
from images.largescale.plsc_setters import PLSCSetters, positive_int as _positive_int
from images.utils import optimizers, precision

log = logging.getLogger("fastnn")


class Entry(PLSCSetters):
    """Large-scale classification training with PLSC's setters.

    Args:
      cluster: an :class:`images.utils.distributed.Cluster`; by default Horovod is initialised
        (one worker outside ``horovodrun``) when a method first needs it.

    Attributes:
      train_reader: PLSC's custom training reader (a function returning an iterable of
        ``(image, label)`` samples or batches of them); None uses the dataset dir.
      test_reader: ``fn(dataset_dir, val_targets) -> (sets, names)`` as PLSC's
        ``reader.test``; None reads ``<dataset_dir>/<target>.bin``.
      predict_reader: the reader ``predict()`` embeds when given no images.
      train_dataset, test_dataset: PLSC v0.2's map-style datasets, used as readers.
    """

    def __init__(self, cluster=None):
        self.config = LargeScaleConfig()
        self._cluster = cluster
        self.train_reader = None
        self.test_reader = None
        self.predict_reader = None
        self.train_dataset = None
        self.test_dataset = None
        # What the last train() of this Entry produced: its last checkpoint folder, or the
        # embedding model's variables in memory when nothing was saved.
        self._trained = None
        _export_trainer_env()

    # ------------------------------------------------------------------ setters
    def _set(self, **kw):
        self.config = dataclasses.replace(self.config, **kw)

    def set_class_num(self, num):
        """Total number of classes C (labels in [0, C))."""
        self._set(class_num=_positive_int("class_num", num))

    def set_emb_size(self, size):
        """Width of the embedding the backbone produces (512 by default)."""
        self._set(emb_size=_positive_int("emb_size", size))

    def set_loss_type(self, loss_type, margin1=None, margin2=None, margin3=None):
        """The loss and, for margin losses, the margins of ``cos(m1 * theta + m2) - m3``.

        ``softmax``, ``arcface``, ``cosface``, ``sphereface``, ``combined`` keep the whole FC
        layer on every worker (unless ``set_model_parallel(True)``, PLSC v0.2); their ``dist_``
        forms split it by class over the workers.  Margins left None take the loss's defaults
        (arcface (1, 0.5, 0), cosface (1, 0, 0.35), sphereface (1.35, 0, 0)); any other name
        with all three margins is PLSC's user-defined combined margin loss.  Each call resets
        the margins, as PLSC's does.
        """
        given = (margin1, margin2, margin3)
        name = str(loss_type)
        try:
            spec = losses.get_loss(name)
        except ValueError as e:
            if any(m is None for m in given):
                raise ValueError("%s; or give margin1, margin2 and margin3 for a combined "
                                 "margin loss" % e) from None
            name = "dist_combined" if name.startswith("dist_") else "combined"
            spec = losses.get_loss(name)
            log.info("loss %s: a combined margin loss with margins %s", loss_type, given)
        margins = None
        if any(m is not None for m in given):
            if not spec.is_margin:
                raise ValueError("loss %s takes no margins (margin1..3); use a margin loss such "
                                 "as arcface" % name)
            margins = tuple(float(spec.margins[i] if m is None else m)
                            for i, m in enumerate(given))
            losses.Margin(*margins, scale=self.config.scale).validate()
        self._set(loss_type=name, margins=margins)
        if self.config.model_parallel is not None:
            self.config.resolved_loss_type()  # a contradiction fails here, not at train()

    def set_margins(self, m1=1.0, m2=0.0, m3=0.0):
        """Combined margin: the target logit becomes ``s * (cos(m1 * theta + m2) - m3)``."""
        if not losses.get_loss(self.config.loss_type).is_margin:
            raise ValueError("loss %s takes no margins; set_loss_type to a margin loss first"
                             % self.config.loss_type)
        losses.Margin(float(m1), float(m2), float(m3), self.config.scale).validate()
        self._set(margins=(float(m1), float(m2), float(m3)))

    def set_margin(self, margin):
        """The main margin of the current margin loss: m2 of arcface/combined, m3 of cosface,
        m1 of sphereface (PLSC v0.1's single ``margin``)."""
        spec = losses.get_loss(self.config.loss_type)
        if not spec.is_margin:
            raise ValueError("loss %s takes no margin" % spec.name)
        m = list(self.config.margins or spec.margins)
        base = spec.name.replace("dist_", "")
        index = {"arcface": 1, "combined": 1, "cosface": 2, "sphereface": 0}[base]
        m[index] = float(margin)
        self.set_margins(*m)

    def set_scale(self, scale):
        """The scale s of margin losses (64 by default)."""
        if not float(scale) > 0:
            raise ValueError("scale must be > 0, got %r" % (scale,))
        self._set(scale=float(scale))

    def set_easy_margin(self, easy_margin):
        """Apply the margin only where the target cosine is positive."""
        self._set(easy_margin=bool(easy_margin))

    def set_train_batch_size(self, batch_size):
        """Images per worker per step."""
        self._set(train_batch_size=_positive_int("train_batch_size", batch_size))

    def set_test_batch_size(self, batch_size):
        """Images per batch when embedding verification sets."""
        self._set(test_batch_size=_positive_int("test_batch_size", batch_size))

    def set_image_shape(self, shape):
        """``(channels, height, width)``, channels 1 or 3 (PLSC's (3, 112, 112))."""
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or shape[0] not in (1, 3) or min(shape[1:]) < 1:
            raise ValueError("image shape must be (channels in {1, 3}, height, width), got %r"
                             % (shape,))
        self._set(image_shape=shape)

    def set_dataset_dir(self, directory):
        """Folder with the training data (PLSC's ``label.txt`` and images, or
        ``file_list.txt`` naming base64 or TFRecord files) and the ``<target>.bin``
        verification sets.  The default is PLSC's ``./train_data`` when it exists; None (or
        no such folder) trains on mock data."""
        if directory is not None and not os.path.isdir(directory):
            raise ValueError("dataset dir %s does not exist" % directory)
        self._set(dataset_dir=directory)

    def set_dataset_format(self, fmt):
        """``base64``, ``tfrecord`` or ``label_txt`` (None: detected from the files)."""
        if fmt is not None and fmt not in data.FORMATS:
            raise ValueError("unknown dataset format %r; valid: %s" % (fmt,
                                                                       ", ".join(data.FORMATS)))
        self._set(dataset_format=fmt)

    def set_train_image_num(self, num):
        """Images in the training set (one epoch); counted from the files when not set."""
        self._set(train_image_num=_positive_int("train_image_num", num))

    def set_train_epochs(self, num):
        """Epochs to train (120 by default with data); replaces ``set_train_steps``, as in
        PLSC."""
        if not float(num) > 0:
            raise ValueError("train_epochs must be > 0, got %r" % (num,))
        self._set(train_epochs=float(num), train_steps=None)

    def set_train_steps(self, num):
        """Global steps to train in total (0 only loads and saves); replaces
        ``set_train_epochs``, as in PLSC."""
        if isinstance(num, bool) or int(num) != num or num < 0:
            raise ValueError("train_steps must be an integer >= 0, got %r" % (num,))
        self._set(train_steps=int(num), train_epochs=None)

    def set_warmup_epochs(self, num):
        """Linear learning-rate warmup from 0 over this many epochs."""
        if float(num) < 0:
            raise ValueError("warmup_epochs must be >= 0, got %r" % (num,))
        self._set(warmup_epochs=float(num))

    def set_step_boundaries(self, boundaries):
        """Global steps at which the learning rate is multiplied by the decay factor
        (``set_lr_decay_factor``, 0.1)."""
        if not isinstance(boundaries, (list, tuple)):
            raise ValueError("step boundaries must be a list or tuple of steps, got %r"
                             % (boundaries,))
        b = [int(x) for x in boundaries]
        if any(x < 0 for x in b) or b != sorted(b):
            raise ValueError("step boundaries must be increasing and >= 0, got %r" % (b,))
        self._set(step_boundaries=b)

    def set_model(self, model):
        """The backbone: a model name (PLSC's ``ResNet50``/``ResNet100``/``ResNet101``/
        ``ResNet152`` or a registry name), a PLSC model object (``plsc.models.ResNet50()``, or a
        ``BaseModel`` subclass whose ``build_network(input, is_train)`` returns the embedding),
        or ``fn(images, is_training) -> features [batch, depth]``.  See
        :mod:`images.largescale.backbones`."""
        resolved = backbones.resolve(model)
        emb_dim = getattr(model, "emb_dim", None)
        if isinstance(resolved, str) and not isinstance(model, str) and emb_dim:
            self._set(model=resolved, emb_size=_positive_int("emb_dim", emb_dim))
        else:
            self._set(model=resolved)

    def set_model_name(self, model_name):
        """A model by name: ``ResNet50`` (the default), ``ResNet100``, ``ResNet101``,
        ``ResNet152`` or a registry name."""
        if not isinstance(model_name, str):
            raise ValueError("set_model_name takes a name, got %r; use set_model for model "
                             "objects and functions" % (model_name,))
        self.set_model(model_name)

    def set_lr(self, lr):
        """Base learning rate for a global batch of 1024 (scaled linearly with the batch)."""
        if not float(lr) > 0:
            raise ValueError("lr must be > 0, got %r" % (lr,))
        self._set(lr=float(lr))

    def set_weight_decay(self, weight_decay):
        """L2 coefficient of the backbone, the embedding layer and the FC rows (5e-4)."""
        if float(weight_decay) < 0:
            raise ValueError("weight_decay must be >= 0, got %r" % (weight_decay,))
        self._set(weight_decay=float(weight_decay))

    def set_optimizer(self, optimizer, **settings):
        """The optimizer: a ``tf.compat.v1.train.Optimizer`` object (PLSC passed a Paddle
        optimizer; its learning rate, a float or a function, replaces PLSC's schedule), or a name
        of :mod:`images.utils.optimizers` with its settings, e.g.
        ``set_optimizer('momentum', momentum=0.9)`` (the default, with PLSC's schedule)."""
        import tensorflow.compat.v1 as tf
        if isinstance(optimizer, tf.train.Optimizer):
            if settings:
                raise ValueError("settings %s go with an optimizer name; an optimizer object "
                                 "carries its own" % ", ".join(sorted(settings)))
            if self.config.fc_momentum_dtype != "float32" and not isinstance(
                    optimizer, tf.train.MomentumOptimizer):
                raise ValueError("a %s FC momentum needs tf.train.MomentumOptimizer; "
                                 "set_fc_momentum_dtype('float32') first"
                                 % self.config.fc_momentum_dtype)
            self._set(optimizer=optimizer, optimizer_kwargs={})
            return
        if not isinstance(optimizer, str):
            raise ValueError("set_optimizer takes a tf.compat.v1.train.Optimizer (e.g. "
                             "tf.compat.v1.train.MomentumOptimizer(0.1, 0.9); Paddle and Keras "
                             "optimizers do not work here) or an optimizer name (%s), got %r"
                             % (", ".join(optimizers.OPTIMIZERS), optimizer))
        fields = {f.name for f in dataclasses.fields(optimizers.OptimizerConfig)} - {"name"}
        unknown = sorted(set(settings) - fields)
        if unknown:
            raise ValueError("unknown optimizer setting(s) %s; valid: %s"
                             % (", ".join(unknown), ", ".join(sorted(fields))))
        optimizers.OptimizerConfig(name=optimizer, **settings).validate()
        if self.config.fc_momentum_dtype != "float32" and optimizer != "momentum":
            raise ValueError("a %s FC momentum needs the momentum optimizer; "
                             "set_fc_momentum_dtype('float32') first"
                             % self.config.fc_momentum_dtype)
        self._set(optimizer=optimizer, optimizer_kwargs=dict(settings))

    def set_mixed_precision(self, use_fp16, init_loss_scaling=1.0, incr_every_n_steps=2000,
                            decr_every_n_nan_or_inf=2, incr_ratio=2.0, decr_ratio=0.5,
                            use_dynamic_loss_scaling=True, amp_lists=None, dtype="float16"):
        """Mixed precision with PLSC's signature and defaults: the backbone computes in
        ``dtype`` (float16, for GPUs; bfloat16 is the CPU's fast path) with float32 master
        weights, the FC layer and the loss in float32.

        Dynamic loss scaling (Paddle's rule): the scale grows by ``incr_ratio`` after
        ``incr_every_n_steps`` consecutive finite steps and shrinks by ``decr_ratio`` after
        ``decr_every_n_nan_or_inf`` consecutive non-finite ones, which are skipped on every
        worker.  Without dynamic scaling the loss is scaled by ``init_loss_scaling``.

        ``amp_lists`` (Paddle's per-operator float16 lists) has no counterpart: the whole
        backbone runs in ``dtype``; leave it None.
        """
        if amp_lists is not None:
            raise ValueError("amp_lists (Paddle's AutoMixedPrecisionLists) has no counterpart "
                             "here: the whole backbone runs in the 16-bit dtype and the FC layer "
                             "and loss in float32; leave amp_lists=None (choose the type with "
                             "dtype='float16' or 'bfloat16')")
        if dtype not in precision.COMPUTE_DTYPES or dtype == "float32":
            raise ValueError("mixed precision dtype must be float16 or bfloat16, got %r"
                             % (dtype,))
        if not float(init_loss_scaling) >= 1.0:
            raise ValueError("init_loss_scaling must be >= 1, got %r" % (init_loss_scaling,))
        if not float(incr_ratio) > 1.0:
            raise ValueError("incr_ratio must be > 1, got %r" % (incr_ratio,))
        if not 0.0 < float(decr_ratio) < 1.0:
            raise ValueError("decr_ratio must be in (0, 1), got %r" % (decr_ratio,))
        self._set(use_mixed_precision=bool(use_fp16), mixed_precision_dtype=dtype,
                  init_loss_scaling=float(init_loss_scaling),
                  incr_every_n_steps=_positive_int("incr_every_n_steps", incr_every_n_steps),
                  decr_every_n_nan_or_inf=_positive_int("decr_every_n_nan_or_inf",
                                                         decr_every_n_nan_or_inf),
                  incr_ratio=float(incr_ratio), decr_ratio=float(decr_ratio),
                  use_dynamic_loss_scaling=bool(use_dynamic_loss_scaling))

    def set_checkpoint_dir(self, directory):
        """Checkpoint to start from, or to test / predict / export (a checkpoint folder, one of
        PLSC's epoch names ``<model_save_dir>/<epoch>``, or a ``model_save_dir``); a
        different worker count re-shards it.  Missing folders raise when it is used."""
        self._set(checkpoint_dir=directory)

    def set_model_save_dir(self, directory):
        """Where checkpoints go (``output`` by default); training resumes from its latest one
        unless ``set_checkpoint_dir`` names another.  None saves nothing."""
        self._set(model_save_dir=directory)

    def set_save_steps(self, steps):
        """Save every this many steps (default: every epoch, and always at the end)."""
        self._set(save_steps=_positive_int("save_steps", steps))

    def set_with_test(self, with_test):
        """Run the verification sets during training (on by default, as in PLSC; sets without
        a ``.bin`` are skipped): after each checkpoint, or every ``set_test_period`` steps."""
        self._set(with_test=bool(with_test))

    def set_val_targets(self, targets):
        """Comma-separated verification sets, ``<dataset_dir>/<name>.bin`` (e.g.
        ``'lfw,agedb_30,cfp_fp'``); a missing one is skipped with a warning."""
        names = [t.strip() for t in str(targets).split(",") if t.strip()]
        if not names:
            raise ValueError("val targets must name at least one set, got %r" % (targets,))
        self._set(val_targets=",".join(names))

    def set_calc_acc(self, calc):
        """Log the training accuracy, top-1 and top-5 (computed across shards without gathering
        the logits)."""
        self._set(calc_acc=bool(calc))

    def set_sample_ratio(self, sample_ratio):
        """Partial FC: fraction of each shard's class centres used per step (1.0: all)."""
        if not 0.0 < float(sample_ratio) <= 1.0:
            raise ValueError("sample_ratio must be in (0, 1], got %r" % (sample_ratio,))
        self._set(sample_ratio=float(sample_ratio))

    def set_log_period(self, period):
        """Log loss, learning rate and throughput every this many steps."""
        self._set(log_period=_positive_int("log_period", period))

    def set_random_seed(self, seed):
        """Seed of initialisation, shuffling and Partial FC sampling."""
        self._set(seed=int(seed))

    def set_mock_steps(self, steps):
        """Steps on mock data when neither steps nor epochs are set (10)."""
        self._set(mock_steps=_positive_int("mock_steps", steps))

    # ------------------------------------------------------------------ actions
    @property
    def cluster(self):
        if self._cluster is None:
            from images.utils import distributed
            self._cluster = distributed.init_cluster(True)
        return self._cluster

    def _setup_logging(self):
        from images import training
        if not log.handlers:
            training.setup_logging(self.cluster.rank)

    def _reader(self, reader, dataset):
        from images.largescale import readers
        if reader is not None:
            return reader
        return readers.dataset_reader(dataset) if dataset is not None else None

    def trainer(self):
        """The :class:`images.largescale.trainer.Trainer` of this configuration (a context
        manager; ``train()`` uses it)."""
        from images.largescale.trainer import Trainer
        self._setup_logging()
        t = Trainer(self.config.resolved(), self.cluster,
                    train_reader=self._reader(self.train_reader, self.train_dataset),
                    test_reader=self.test_reader)
        t.on_exit = self._remember
        return t

    def _remember(self, t):
        """Keeps what a trainer of this Entry trained, for test / predict / export."""
        if t.last_checkpoint:
            self._trained = t.last_checkpoint
        else:
            from images.largescale.export import TrainedState
            step = t.run(t.global_step)
            self._trained = TrainedState(t.run({v.op.name: v for v in t.other_variables}),
                                         step, t.emb_size)

    def train(self):
        """Trains (on every worker), saving checkpoints to the model save dir.

        With ``set_hdfs_info``, rank 0 first fetches ``fs_checkpoint_dir`` into the checkpoint
        dir and finally uploads the model save dir.

        Returns:
          ``{'step': last step, 'test': {step: {target: figures}}}`` (test results on rank 0
          when ``with_test``).
        """
        from images.largescale import remote
        self.fetch_remote_checkpoint()
        t = self.trainer()
        done = t.finished_step()
        if done is not None:  # a finished job restarted: leave every file as it is
            if self.cluster.rank == 0:
                log.info("run complete: %s holds a checkpoint at step %d, at or past the run's "
                         "last step %d; nothing to train, no file changed. Raise "
                         "set_train_steps or set_train_epochs to train further",
                         self.config.model_save_dir, done, t.total_steps)
            return {"step": done, "test": {}}
        with t:
            step = t.fit()
        cfg = self.config
        if cfg.hdfs and cfg.hdfs[2] and cfg.model_save_dir and self.cluster.rank == 0:
            remote.upload(cfg.model_save_dir, cfg.hdfs[0], cfg.hdfs[2])
        return {"step": int(step), "test": t.results}

    def _checkpoint(self):
        """What test / predict / export use: the model the last ``train()`` of this Entry left,
        else ``set_checkpoint_dir``, else the latest checkpoint of the model save dir."""
        if self._trained is not None:
            return self._trained
        if self.config.checkpoint_dir:
            return ckpt_lib.resolve_checkpoint(self.config.checkpoint_dir)
        if not self.config.model_save_dir:
            raise ValueError("no checkpoint: set_checkpoint_dir or set_model_save_dir")
        return ckpt_lib.resolve_checkpoint(self.config.model_save_dir)

    def _embedding_model(self):
        from images.largescale.export import EmbeddingModel
        self._setup_logging()
        self.fetch_remote_checkpoint()
        return EmbeddingModel(self.config.model, self.config.emb_size, self.config.image_shape,
                              self._checkpoint())

    def test(self):
        """Verification accuracy of the model on every val target (rank 0 computes; the
        others return None): the model the last ``train()`` left, else the checkpoint of
        ``set_checkpoint_dir`` or the latest in the model save dir.  Val targets without a
        ``.bin`` are skipped with a warning; a ``test_reader`` replaces the ``.bin`` files.

        Returns:
          ``{target: {'accuracy', 'accuracy_std', 'val', 'far', ...}}``.
        """
        from images.largescale import trainer as trainer_lib
        cfg = self.config.resolved()
        if not cfg.dataset_dir and self.test_reader is None:
            raise ValueError("test() reads <dataset_dir>/<target>.bin: set_dataset_dir first")
        if self.cluster.rank != 0:
            return None
        targets = cfg.val_target_list() if self.test_reader is not None else \
            trainer_lib.existing_val_targets(cfg.dataset_dir, cfg.val_target_list())
        if not targets:
            log.warning("test(): none of the val targets %s has a .bin in %s", cfg.val_targets,
                        cfg.dataset_dir)
            return {}
        model = self._embedding_model()
        try:
            log.info("testing the model of step %d", model.step)
            results = trainer_lib.run_verification_sets(cfg, model.embed, targets,
                                                        self.test_reader)
        finally:
            model.close()
        for res in results.values():
            res["step"] = model.step
        return results

    def predict(self, images=None, normalize=True):
        """Embeddings ``[N, emb_size]`` (not classes), L2-normalised unless ``normalize`` is
        False (as the served ``embeddings`` and ``raw_embeddings``).

        Args:
          images: encoded images (bytes, decoded as in training and serving) or a uint8 array
            ``[N, H, W, C]``.  None embeds what PLSC's ``predict()`` did: the samples of
            ``predict_reader`` if set, else this worker's share of the training data of the
            dataset dir, in order, without flips; each batch is also logged.
        """
        model = self._embedding_model()
        try:
            if images is not None:
                return model.embed_encoded(images, self.config.test_batch_size, normalize)
            return self._predict_dataset(model, normalize)
        finally:
            model.close()

    def _predict_dataset(self, model, normalize):
        import numpy as np
        import tensorflow.compat.v1 as tf
        from images.largescale import readers
        cfg = self.config.resolved()
        with tf.Graph().as_default():
            if self.predict_reader is not None:
                ds = readers.reader_dataset(self.predict_reader, cfg.image_shape,
                                            cfg.test_batch_size, cfg.class_num,
                                            with_labels=False)
            else:
                if not cfg.dataset_dir:
                    raise ValueError("predict() without images embeds predict_reader or the "
                                     "data of set_dataset_dir: set one of them")
                fmt, files = data.resolve_train_files(cfg.dataset_dir, cfg.dataset_format)
                ds = data.inference_dataset(files, fmt, cfg.image_shape, cfg.test_batch_size,
                                            self.cluster.size, self.cluster.rank)
            batch = tf.data.make_one_shot_iterator(ds).get_next()
            out = []
            with tf.Session() as sess:
                while True:
                    try:
                        images = sess.run(batch)
                    except tf.errors.OutOfRangeError:
                        break
                    emb = model.embed(images)
                    log.info("emb: %s", np.array2string(emb, threshold=12, precision=4))
                    out.append(emb)
        emb = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
        if normalize and len(emb):
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def convert_for_prediction(self, export_dir=None, version=None):
        """Exports the embedding model as a SavedModel in TF Serving's layout,
        ``export_dir/<version>/`` (default ``<model_save_dir>/serving``), from the model the
        last ``train()`` left or the checkpoint of ``set_checkpoint_dir`` (PLSC's
        ``set_checkpoint_dir('./pretrain_model'); set_model_save_dir('./inference_model')``
        writes ``./inference_model/serving/1``, which ``PLSCServer.with_model`` takes as
        ``./inference_model``).  Returns the version folder (None on other ranks)."""
        from images.largescale import export, remote
        cfg = self.config
        if export_dir is None:
            if not cfg.model_save_dir:
                raise ValueError("give export_dir or set_model_save_dir")
            export_dir = os.path.join(cfg.model_save_dir, "serving")
        if self.cluster.rank != 0:
            return None
        self._setup_logging()
        self.fetch_remote_checkpoint()
        folder = export.export_saved_model(backbone=cfg.model, emb_size=cfg.emb_size,
                                           image_shape=cfg.image_shape,
                                           checkpoint=self._checkpoint(), export_dir=export_dir,
                                           version=version)
        if cfg.hdfs and cfg.hdfs[2]:
            remote.upload(export_dir, cfg.hdfs[0], cfg.hdfs[2])
        return folder

    def print_config(self):
        """Logs every setting."""
        self._setup_logging()
        for field in dataclasses.fields(self.config):
            log.info("%-26s %r", field.name, getattr(self.config, field.name))


def _export_trainer_env():
    """PLSC's launcher gave every trainer ``PADDLE_TRAINER_ID`` and ``PADDLE_TRAINERS_NUM``, and
    readers written for PLSC shard their data by them: under Horovod's launcher (horovodrun's
    ``HOROVOD_RANK``/``HOROVOD_SIZE``, or MPI's) they are set from it, before any reader is
    made; a process no launcher started keeps values it was given, else gets 0 of 1."""
    from images.utils import distributed
    rank = next((os.environ[k] for k in ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
                 if k in os.environ), None)
    if rank is not None:  # values inherited from a parent process must not win here
        os.environ["PADDLE_TRAINER_ID"] = rank
        os.environ["PADDLE_TRAINERS_NUM"] = str(distributed.launched_size())
    else:
        os.environ.setdefault("PADDLE_TRAINER_ID", "0")
        os.environ.setdefault("PADDLE_TRAINERS_NUM", "1")
