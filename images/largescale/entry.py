"""PLSC's ``Entry`` API: configure with setters, then ``train()``, ``test()``, ``predict()``,
``convert_for_prediction()``.

    from images.largescale import Entry
    ins = Entry()
    ins.set_class_num(1000000)
    ins.train()

runs alone or under ``horovodrun -np N python prog.py``; without ``set_dataset_dir`` it trains on
mock data and says so in the log.  Each setter checks its argument and raises ValueError with the
valid choices.
"""
import dataclasses
import logging
import os

from images.largescale import checkpoint as ckpt_lib
from images.largescale import data, losses
from images.largescale.config import LargeScaleConfig
from images.utils import optimizers, precision

log = logging.getLogger("fastnn")


def _positive_int(name, value):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError("%s must be a positive integer, got %r" % (name, value))
    return int(value)


class Entry:
    """Large-scale classification training with PLSC's setters.

    Args:
      cluster: an :class:`images.utils.distributed.Cluster`; by default Horovod is initialised
        (one worker outside ``horovodrun``) when a method first needs it.
    """

    def __init__(self, cluster=None):
        self.config = LargeScaleConfig()
        self._cluster = cluster

    # ------------------------------------------------------------------ setters
    def _set(self, **kw):
        self.config = dataclasses.replace(self.config, **kw)

    def set_class_num(self, class_num):
        """Total number of classes C (labels in [0, C))."""
        self._set(class_num=_positive_int("class_num", class_num))

    def set_emb_size(self, emb_size):
        """Width of the embedding the backbone produces (512 by default)."""
        self._set(emb_size=_positive_int("emb_size", emb_size))

    def set_loss_type(self, loss_type):
        """``softmax``, ``arcface``, ``cosface``, ``sphereface``, ``combined`` (whole layer on
        every worker) or their ``dist_`` forms (layer split by class over the workers)."""
        spec = losses.get_loss(loss_type)
        if self.config.margins is not None and not spec.is_margin:
            raise ValueError("loss %s takes no margins; margins were set with set_margins"
                             % loss_type)
        self._set(loss_type=loss_type)

    def set_margins(self, m1=1.0, m2=0.0, m3=0.0):
        """Combined margin: the target logit becomes ``s * (cos(m1 * theta + m2) - m3)``."""
        if not losses.get_loss(self.config.loss_type).is_margin:
            raise ValueError("loss %s takes no margins; set_loss_type to a margin loss first"
                             % self.config.loss_type)
        losses.Margin(float(m1), float(m2), float(m3), self.config.scale).validate()
        self._set(margins=(float(m1), float(m2), float(m3)))

    def set_margin(self, margin):
        """The main margin of the current margin loss: m2 of arcface/combined, m3 of cosface,
        m1 of sphereface (PLSC's single ``margin``)."""
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

    def set_dataset_dir(self, dataset_dir):
        """Folder with ``file_list.txt`` (base64 or TFRecord files) and the ``<target>.bin``
        verification sets; None trains on mock data."""
        if dataset_dir is not None and not os.path.isdir(dataset_dir):
            raise ValueError("dataset dir %s does not exist" % dataset_dir)
        self._set(dataset_dir=dataset_dir)

    def set_dataset_format(self, fmt):
        """``base64`` or ``tfrecord`` (None: detected from the file names)."""
        if fmt is not None and fmt not in data.FORMATS:
            raise ValueError("unknown dataset format %r; valid: %s" % (fmt,
                                                                       ", ".join(data.FORMATS)))
        self._set(dataset_format=fmt)

    def set_train_image_num(self, num):
        """Images in the training set (one epoch); counted from the files when not set."""
        self._set(train_image_num=_positive_int("train_image_num", num))

    def set_train_epochs(self, epochs):
        """Epochs to train (120 by default with data)."""
        if not float(epochs) > 0:
            raise ValueError("train_epochs must be > 0, got %r" % (epochs,))
        self._set(train_epochs=float(epochs))

    def set_train_steps(self, steps):
        """Global steps to train in total (overrides epochs); 0 only loads and saves."""
        if isinstance(steps, bool) or int(steps) != steps or steps < 0:
            raise ValueError("train_steps must be an integer >= 0, got %r" % (steps,))
        self._set(train_steps=int(steps))

    def set_warmup_epochs(self, epochs):
        """Linear learning-rate warmup from 0 over this many epochs."""
        if float(epochs) < 0:
            raise ValueError("warmup_epochs must be >= 0, got %r" % (epochs,))
        self._set(warmup_epochs=float(epochs))

    def set_step_boundaries(self, boundaries):
        """Global steps at which the learning rate is multiplied by 0.1."""
        b = [int(x) for x in boundaries]
        if any(x < 0 for x in b) or b != sorted(b):
            raise ValueError("step boundaries must be increasing and >= 0, got %r" % (b,))
        self._set(step_boundaries=b)

    def set_model(self, model):
        """The backbone: a registry name (``images.models.model_factory.list_models()``) or
        ``fn(images, is_training) -> features [batch, depth]``."""
        if not callable(model):
            from images.models import model_factory
            model_factory.get_model_record(model)  # raises with the valid names
        self._set(model=model)

    set_model_name = set_model

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

    def set_optimizer(self, name, **kwargs):
        """An optimizer of :mod:`images.utils.optimizers` with its settings, e.g.
        ``set_optimizer('momentum', momentum=0.9)`` (the default)."""
        fields = {f.name for f in dataclasses.fields(optimizers.OptimizerConfig)} - {"name"}
        unknown = sorted(set(kwargs) - fields)
        if unknown:
            raise ValueError("unknown optimizer setting(s) %s; valid: %s"
                             % (", ".join(unknown), ", ".join(sorted(fields))))
        optimizers.OptimizerConfig(name=name, **kwargs).validate()
        self._set(optimizer=name, optimizer_kwargs=dict(kwargs))

    def set_mixed_precision(self, use_mixed_precision, init_loss_scaling=1.0,
                            incr_every_n_steps=2000, decr_every_n_nan_or_inf=1, incr_ratio=2.0,
                            decr_ratio=0.5, use_dynamic_loss_scaling=True, dtype="float16"):
        """Backbone in ``dtype`` (float16 for GPUs; bfloat16 is the CPU's fast path) with float32
        master weights; the FC layer stays float32.

        Dynamic loss scaling doubles the scale after ``incr_every_n_steps`` finite steps and
        halves it on a non-finite step (which is skipped on every worker); the scaler of
        :mod:`images.utils.precision` supports exactly these ratios.
        """
        if dtype not in precision.COMPUTE_DTYPES:
            raise ValueError("mixed precision dtype must be one of %s, got %r"
                             % (", ".join(precision.COMPUTE_DTYPES), dtype))
        if float(incr_ratio) != 2.0 or float(decr_ratio) != 0.5 or int(
                decr_every_n_nan_or_inf) != 1:
            raise ValueError("the loss scaler doubles after incr_every_n_steps clean steps and "
                             "halves on every non-finite step: use incr_ratio=2.0, "
                             "decr_ratio=0.5, decr_every_n_nan_or_inf=1 (got %r, %r, %r)"
                             % (incr_ratio, decr_ratio, decr_every_n_nan_or_inf))
        if not float(init_loss_scaling) >= 1.0:
            raise ValueError("init_loss_scaling must be >= 1, got %r" % (init_loss_scaling,))
        self._set(use_mixed_precision=bool(use_mixed_precision), mixed_precision_dtype=dtype,
                  init_loss_scaling=float(init_loss_scaling),
                  incr_every_n_steps=_positive_int("incr_every_n_steps", incr_every_n_steps),
                  decr_every_n_nan_or_inf=1, incr_ratio=2.0, decr_ratio=0.5,
                  use_dynamic_loss_scaling=bool(use_dynamic_loss_scaling))

    def set_checkpoint_dir(self, path):
        """Checkpoint to start from (a ``ckpt-<step>`` folder or a ``model_save_dir``); a
        different worker count re-shards it.  Missing folders raise when training starts."""
        self._set(checkpoint_dir=path)

    def set_model_save_dir(self, path):
        """Where checkpoints go (``output`` by default); training resumes from its latest one
        unless ``set_checkpoint_dir`` names another.  None saves nothing."""
        self._set(model_save_dir=path)

    def set_save_steps(self, steps):
        """Save every this many steps (default: every epoch, and always at the end)."""
        self._set(save_steps=_positive_int("save_steps", steps))

    def set_with_test(self, with_test):
        """Run the verification sets after each checkpoint during training."""
        self._set(with_test=bool(with_test))

    def set_val_targets(self, targets):
        """Comma-separated verification sets, ``<dataset_dir>/<name>.bin`` (e.g.
        ``'lfw,agedb_30,cfp_fp'``)."""
        names = [t.strip() for t in str(targets).split(",") if t.strip()]
        if not names:
            raise ValueError("val targets must name at least one set, got %r" % (targets,))
        self._set(val_targets=",".join(names))

    def set_calc_acc(self, calc_acc):
        """Log the training accuracy (computed across shards without gathering the logits)."""
        self._set(calc_acc=bool(calc_acc))

    def set_sample_ratio(self, ratio):
        """Partial FC: fraction of each shard's class centres used per step (1.0: all)."""
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError("sample_ratio must be in (0, 1], got %r" % (ratio,))
        self._set(sample_ratio=float(ratio))

    def set_log_period(self, steps):
        """Log loss, learning rate and throughput every this many steps."""
        self._set(log_period=_positive_int("log_period", steps))

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

    def trainer(self):
        """The :class:`images.largescale.trainer.Trainer` of this configuration (a context
        manager; ``train()`` uses it)."""
        from images.largescale.trainer import Trainer
        self._setup_logging()
        return Trainer(self.config, self.cluster)

    def train(self):
        """Trains (on every worker), saving checkpoints to the model save dir.

        Returns:
          ``{'step': last step, 'test': {step: {target: figures}}}`` (test results on rank 0
          when ``with_test``).
        """
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
        return {"step": int(step), "test": t.results}

    def _checkpoint(self):
        path = self.config.checkpoint_dir or self.config.model_save_dir
        if not path:
            raise ValueError("no checkpoint: set_checkpoint_dir or set_model_save_dir")
        return ckpt_lib.resolve_checkpoint(path)

    def _embedding_model(self):
        from images.largescale.export import EmbeddingModel
        self._setup_logging()
        return EmbeddingModel(self.config.model, self.config.emb_size, self.config.image_shape,
                              self._checkpoint())

    def test(self):
        """Verification accuracy of the saved model on every val target (rank 0 computes; the
        others return None).

        Returns:
          ``{target: {'accuracy', 'accuracy_std', 'val', 'far', ...}}``.
        """
        from images.largescale import verification
        cfg = self.config
        if not cfg.dataset_dir:
            raise ValueError("test() reads <dataset_dir>/<target>.bin: set_dataset_dir first")
        if self.cluster.rank != 0:
            return None
        model = self._embedding_model()
        try:
            results = {}
            for target in cfg.val_target_list():
                path = os.path.join(cfg.dataset_dir, target + ".bin")
                if not os.path.exists(path):
                    raise FileNotFoundError("val target %s: %s does not exist" % (target, path))
                res = verification.verify(path, model.embed, cfg.image_shape, cfg.test_batch_size)
                log.info("[%s] step %d: accuracy %.5f +- %.5f, VAL %.5f @ FAR %.5f", target,
                         model.step, res["accuracy"], res["accuracy_std"], res["val"],
                         res["far"])
                results[target] = res
            return results
        finally:
            model.close()

    def predict(self, images, normalize=True):
        """Embeddings ``[N, emb_size]`` (not classes) of encoded images (bytes) or of a uint8
        array ``[N, H, W, C]``, from the saved model; L2-normalised unless ``normalize`` is
        False (as the served ``embeddings`` and ``raw_embeddings``)."""
        model = self._embedding_model()
        try:
            return model.embed_encoded(images, self.config.test_batch_size, normalize)
        finally:
            model.close()

    def convert_for_prediction(self, export_dir=None, version=None):
        """Exports the embedding model as a SavedModel (``export_dir/<version>/``, TF Serving's
        layout; default ``<model_save_dir>/serving``).  Returns the version folder."""
        from images.largescale import export
        cfg = self.config
        if export_dir is None:
            if not cfg.model_save_dir:
                raise ValueError("give export_dir or set_model_save_dir")
            export_dir = os.path.join(cfg.model_save_dir, "serving")
        if self.cluster.rank != 0:
            return None
        self._setup_logging()
        return export.export_saved_model(backbone=cfg.model, emb_size=cfg.emb_size,
                                         image_shape=cfg.image_shape,
                                         checkpoint=self._checkpoint(), export_dir=export_dir,
                                         version=version)

    def print_config(self):
        """Logs every setting."""
        self._setup_logging()
        for field in dataclasses.fields(self.config):
            log.info("%-26s %r", field.name, getattr(self.config, field.name))

