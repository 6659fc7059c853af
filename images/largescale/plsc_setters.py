"""The rest of PLSC's Entry: the setters PLSC v0.2 added, and the attributes PLSC programs read.

Each setter has PLSC's signature and either takes effect or is refused with a message that
says what to use instead.  PLSC programs also read the Entry's attributes
(``ins.train_batch_size`` when they batch their own reader, ``ins.num_classes``, ...): they are
properties over the configuration here; assigning one calls its setter.
"""
import logging

log = logging.getLogger("fastnn")


def positive_int(name, value):
    """``value`` as an int; ValueError unless it is a positive integer."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError("%s must be a positive integer, got %r" % (name, value))
    return int(value)


def _non_negative_int(name, value):
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError("%s must be an integer >= 0, got %r" % (name, value))
    return int(value)


def _attribute(field, setter=None, doc=""):
    """A property reading ``self.config.<field>``; assignment calls ``setter``."""
    def get(self):
        return getattr(self.config, field)

    def put(self, value):
        if setter is None:
            raise AttributeError("%s is read-only" % field)
        getattr(self, setter)(value)

    return property(get, put, doc=doc or "PLSC's ``%s``." % field)


class PLSCSetters:
    """Mixed into :class:`images.largescale.Entry` (which provides ``_set`` and ``config``)."""

    # -------------------------------------------------------------- PLSC's attributes
    train_batch_size = _attribute("train_batch_size", "set_train_batch_size")
    test_batch_size = _attribute("test_batch_size", "set_test_batch_size")
    num_classes = _attribute("class_num", "set_class_num")
    emb_dim = _attribute("emb_size", "set_emb_size")
    dataset_dir = _attribute("dataset_dir", "set_dataset_dir")
    model_save_dir = _attribute("model_save_dir", "set_model_save_dir")
    checkpoint_dir = _attribute("checkpoint_dir", "set_checkpoint_dir")
    loss_type = _attribute("loss_type", "set_loss_type")
    val_targets = _attribute("val_targets", "set_val_targets")
    train_epochs = _attribute("train_epochs", "set_train_epochs")
    train_steps = _attribute("train_steps", "set_train_steps")
    train_image_num = _attribute("train_image_num", "set_train_image_num")
    warmup_epochs = _attribute("warmup_epochs", "set_warmup_epochs")
    with_test = _attribute("with_test", "set_with_test")
    lr_decay_factor = _attribute("lr_decay_factor", "set_lr_decay_factor")
    log_period = _attribute("log_period", "set_log_period")
    test_period = _attribute("test_period", "set_test_period")
    image_shape = _attribute("image_shape", "set_image_shape")
    sample_ratio = _attribute("sample_ratio", "set_sample_ratio")
    model_parallel = _attribute("model_parallel", "set_model_parallel")
    calc_train_acc = _attribute("calc_acc", "set_calc_acc")
    use_fp16 = _attribute("use_mixed_precision")
    scale = _attribute("scale", "set_scale")
    lr = _attribute("lr", "set_lr")
    lr_steps = _attribute("step_boundaries", "set_step_boundaries")
    max_last_checkpoint_num = _attribute("max_to_keep", "set_max_last_checkpoint_num")

    @property
    def model_name(self):
        """The backbone's name, PLSC's (``ResNet50``) where it has one."""
        from images.largescale import backbones
        names = {v: k for k, v in backbones.plsc_name_map().items()}
        return names.get(self.config.model, backbones.display_name(self.config.model))

    @model_name.setter
    def model_name(self, value):
        self.set_model_name(value)

    @property
    def margin1(self):
        return self._margins()[0]

    @property
    def margin2(self):
        return self._margins()[1]

    @property
    def margin3(self):
        return self._margins()[2]

    def _margins(self):
        from images.largescale import losses
        spec = losses.get_loss(self.config.loss_type)
        return self.config.margins or spec.margins or (None, None, None)

    @property
    def trainer_id(self):
        """This worker's rank (PLSC's ``PADDLE_TRAINER_ID``)."""
        return self.cluster.rank

    @property
    def num_trainers(self):
        """The worker count (PLSC's ``PADDLE_TRAINERS_NUM``)."""
        return self.cluster.size

    @property
    def global_train_batch_size(self):
        return self.config.train_batch_size * self.num_trainers

    @property
    def global_test_batch_size(self):
        return self.config.test_batch_size * self.num_trainers

    # -------------------------------------------------------------- PLSC v0.2's setters
    def set_model_parallel(self, flag):
        """PLSC v0.2: True splits the FC layer by class over the workers (``arcface`` trains
        as ``dist_arcface``, and so on); False keeps the whole layer on every worker.  With one
        worker a split layer is the whole layer."""
        self._set(model_parallel=bool(flag))
        self.config.resolved_loss_type()  # a contradiction with the loss type fails here

    def set_lr_decay_factor(self, factor):
        """The factor the learning rate is multiplied by at each step boundary (0.1)."""
        if not float(factor) > 0:
            raise ValueError("lr_decay_factor must be > 0, got %r" % (factor,))
        self._set(lr_decay_factor=float(factor))

    def set_test_period(self, period):
        """With ``set_with_test(True)``: run the verification sets every this many steps
        (PLSC v0.2); 0 (the default) runs them after each checkpoint, as PLSC v0.1 did after
        each epoch."""
        self._set(test_period=_non_negative_int("test_period", period))

    def set_max_last_checkpoint_num(self, num):
        """How many of the latest checkpoints the model save dir keeps (0: all)."""
        self._set(max_to_keep=_non_negative_int("max_last_checkpoint_num", num))

    def set_distfc_attr(self, param_attr=None, bias_attr=None):
        """The initial values of the FC layer (PLSC passed Paddle ``ParamAttr`` objects).

        Args:
          param_attr: None (a normal draw with standard deviation 0.01), a standard deviation,
            or ``fn(shape, dtype) -> tensor`` such as a ``tf.compat.v1`` initializer, called
            with each shard's ``[classes of the shard, emb_size]``.
          bias_attr: the softmax losses' bias: None (zeros), a number, or ``fn(shape, dtype)``.
            Margin losses have no bias.
        """
        for name, attr in (("param_attr", param_attr), ("bias_attr", bias_attr)):
            if attr is None or callable(attr):
                continue
            if isinstance(attr, bool) or not isinstance(attr, (int, float)):
                raise ValueError("%s must be None, a number or fn(shape, dtype) -> tensor (e.g. "
                                 "tf.compat.v1.initializers.random_normal(stddev=0.01)); Paddle "
                                 "ParamAttr objects do not work here, got %r" % (name, attr))
        if param_attr is not None and not callable(param_attr) and not float(param_attr) > 0:
            raise ValueError("param_attr as a standard deviation must be > 0, got %r"
                             % (param_attr,))
        self._set(fc_initializer=param_attr, fc_bias_initializer=bias_attr)

    def set_hdfs_info(self, fs_name, fs_ugi, fs_dir_for_save=None, fs_checkpoint_dir=None):
        """PLSC's HDFS support, through TensorFlow's file systems
        (:mod:`images.largescale.remote`): before training (or testing, predicting, exporting)
        ``fs_checkpoint_dir`` on ``fs_name`` is downloaded into the checkpoint dir, after
        training the model save dir is uploaded into ``fs_dir_for_save``.

        Args:
          fs_name: the file system, e.g. ``hdfs://namenode:9000`` (any scheme TensorFlow opens).
          fs_ugi: Hadoop's ``user,password``; the user becomes ``HADOOP_USER_NAME``.
          fs_dir_for_save: remote folder for the saved model (None: no upload).
          fs_checkpoint_dir: remote folder of the starting checkpoint (None: no download);
            needs ``set_checkpoint_dir`` for where to put it.
        """
        from images.largescale import remote
        remote.check_file_system(fs_name)
        if fs_checkpoint_dir is None and fs_dir_for_save is None:
            raise ValueError("set_hdfs_info needs fs_dir_for_save (upload the saved model) or "
                             "fs_checkpoint_dir (download the starting checkpoint)")
        remote.set_user(fs_ugi)
        self._set(hdfs=(str(fs_name), str(fs_ugi), fs_dir_for_save, fs_checkpoint_dir))
        self._fetched = False

    def fetch_remote_checkpoint(self):
        """Downloads ``fs_checkpoint_dir`` into the checkpoint dir once (rank 0; the other
        workers wait for it at a collective)."""
        from images.largescale import collectives, remote
        cfg = self.config
        if not cfg.hdfs or not cfg.hdfs[3] or getattr(self, "_fetched", False):
            return
        if not cfg.checkpoint_dir:
            raise ValueError("set_hdfs_info(fs_checkpoint_dir=...) downloads into the "
                             "checkpoint dir: set_checkpoint_dir first")
        failed = 0
        if self.cluster.rank == 0:
            try:
                remote.download(cfg.hdfs[0], cfg.hdfs[3], cfg.checkpoint_dir)
            except Exception:
                failed = 1
                if self.cluster.size == 1:
                    raise
                log.exception("downloading the checkpoint failed")
        if collectives.agree(self.cluster, failed, "max"):
            raise RuntimeError("rank 0 could not download %s (see its log)"
                               % remote.remote_path(cfg.hdfs[0], cfg.hdfs[3]))
        self._fetched = True

    def set_input_info(self, input_holder):
        """PLSC's input description: a list of ``{'name', 'shape', 'dtype'}`` with an
        ``image`` (``[-1, C, H, W]`` as PLSC, or ``[-1, H, W, C]``, float32) and a ``label``
        (int64 or int32).  The image's shape becomes the image shape.  Other inputs are refused:
        the Entry trains on images and labels (a model needing more builds it from a custom
        reader's images)."""
        if not isinstance(input_holder, (list, tuple)):
            raise ValueError("input info must be a list or tuple of dicts, got %r"
                             % (input_holder,))
        fields = {}
        for element in input_holder:
            if not isinstance(element, dict) or not {"name", "shape", "dtype"} <= set(element):
                raise ValueError("every input is a dict with 'name', 'shape' and 'dtype', got %r"
                                 % (element,))
            fields[element["name"]] = element
        if "label" not in fields:
            raise ValueError("the input must contain a field named 'label'")
        extra = sorted(set(fields) - {"image", "label"})
        if extra or "image" not in fields:
            raise ValueError("inputs %s: the Entry feeds exactly 'image' and 'label'"
                             % (extra or ["(no 'image')"]))
        if str(fields["label"]["dtype"]) not in ("int64", "int32"):
            raise ValueError("the label must be int64 or int32, got %r"
                             % (fields["label"]["dtype"],))
        image = fields["image"]
        if str(image["dtype"]) != "float32":
            raise ValueError("the image must be float32, got %r" % (image["dtype"],))
        shape = [int(d) for d in image["shape"]]
        if len(shape) != 4:
            raise ValueError("the image shape is [-1, C, H, W], got %r" % (image["shape"],))
        dims = shape[1:]
        chw = dims if dims[0] in (1, 3) else [dims[2], dims[0], dims[1]]
        self.set_image_shape(chw)

    def set_use_quant(self, quant):
        """Quantization-aware training (PLSC's ``QuantizeProgramPass``) does not exist here:
        False is accepted, True refused with what to do instead."""
        if quant:
            raise ValueError(
                "quantization-aware training is not available: train in float32 (or with "
                "set_mixed_precision) and quantize the exported model after training, e.g. "
                "tf.lite.TFLiteConverter.from_saved_model(<convert_for_prediction() folder>) "
                "with converter.optimizations = [tf.lite.Optimize.DEFAULT]")

    def set_fc_momentum_dtype(self, dtype):
        """Keep the FC shard's momentum in ``bfloat16`` or ``float16`` (``float32`` by
        default): 6 instead of 8 bytes per FC parameter, the update itself in float32.  Needs
        the momentum optimizer.  See docs/largescale.md for the measured accuracy effect."""
        from images.largescale import fc_optimizer
        if dtype not in fc_optimizer.SLOT_DTYPES:
            raise ValueError("FC momentum dtype must be one of %s, got %r"
                             % (", ".join(fc_optimizer.SLOT_DTYPES), dtype))
        opt = self.config.optimizer
        if dtype != "float32" and not _is_momentum(opt):
            raise ValueError("a %s FC momentum needs the momentum optimizer, not %r"
                             % (dtype, opt))
        self._set(fc_momentum_dtype=dtype)


def _is_momentum(optimizer):
    if isinstance(optimizer, str):
        return optimizer == "momentum"
    import tensorflow.compat.v1 as tf
    return isinstance(optimizer, tf.train.MomentumOptimizer)

