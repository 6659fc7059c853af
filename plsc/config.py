"""PLSC's ``plsc.config``: the defaults every new ``plsc.Entry()`` starts from, under PLSC's names.

    import plsc.config
    plsc.config.config.train_batch_size = 32     # every Entry() created afterwards uses 32

The values are fastnn's defaults (docs/largescale.md): PLSC's where a CPU allows them, but 64
images per worker instead of 128, and the image count counted from the data instead of
MS1M's 5,822,653.  ``None`` leaves a setting at the Entry's own default.
"""
from images.largescale.config import LargeScaleConfig


class AttrDict(dict):
    """A dict whose keys are also attributes (PLSC used ``easydict.EasyDict``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


_DEFAULTS = LargeScaleConfig()

config = AttrDict(
    train_batch_size=_DEFAULTS.train_batch_size,
    test_batch_size=_DEFAULTS.test_batch_size,
    val_targets=_DEFAULTS.val_targets,
    dataset_dir=_DEFAULTS.dataset_dir,
    train_image_num=None,
    model_name="ResNet50",
    train_epochs=None,
    train_steps=None,
    checkpoint_dir="",
    with_test=_DEFAULTS.with_test,
    model_save_dir=_DEFAULTS.model_save_dir,
    warmup_epochs=_DEFAULTS.warmup_epochs,
    model_parallel=None,
    loss_type=_DEFAULTS.loss_type,
    num_classes=_DEFAULTS.class_num,
    sample_ratio=_DEFAULTS.sample_ratio,
    image_shape=_DEFAULTS.image_shape,
    margin1=None,
    margin2=None,
    margin3=None,
    scale=_DEFAULTS.scale,
    lr=_DEFAULTS.lr,
    lr_steps=None,
    emb_dim=_DEFAULTS.emb_size,
)

# PLSC's config key -> the Entry setter that applies it.
SETTERS = (
    ("train_batch_size", "set_train_batch_size"), ("test_batch_size", "set_test_batch_size"),
    ("val_targets", "set_val_targets"), ("train_image_num", "set_train_image_num"),
    ("model_name", "set_model_name"), ("train_epochs", "set_train_epochs"),
    ("train_steps", "set_train_steps"), ("checkpoint_dir", "set_checkpoint_dir"),
    ("with_test", "set_with_test"), ("model_save_dir", "set_model_save_dir"),
    ("warmup_epochs", "set_warmup_epochs"), ("num_classes", "set_class_num"),
    ("sample_ratio", "set_sample_ratio"), ("image_shape", "set_image_shape"),
    ("scale", "set_scale"), ("lr", "set_lr"), ("lr_steps", "set_step_boundaries"),
    ("emb_dim", "set_emb_size"),
)


def apply(entry, values=None):
    """Sets ``entry`` from ``values`` (default :data:`config`) through its setters."""
    values = config if values is None else values
    unknown = sorted(set(values) - set(config))
    if unknown:
        raise ValueError("plsc.config has no %s; its keys: %s" % (", ".join(unknown),
                                                                  ", ".join(sorted(config))))
    entry._set(dataset_dir=values["dataset_dir"] or None)
    for key, setter in SETTERS:
        if values[key] is not None and values[key] != "":
            getattr(entry, setter)(values[key])
    margins = (values["margin1"], values["margin2"], values["margin3"])
    entry.set_loss_type(values["loss_type"], *margins)
    if values["model_parallel"] is not None:
        entry.set_model_parallel(values["model_parallel"])
