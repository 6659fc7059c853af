"""Everything the large-scale trainer needs, with PLSC's defaults where the CPU allows them.

Memory of the FC layer per worker, for C classes, N workers, embedding d, global batch G, float32:
weights + optimizer slot + their gradient = ``3 * 4 * d * C / N`` bytes (momentum; Adam has two
slots; 2 bytes less per parameter with a 16-bit momentum), plus a few ``G x C / N`` logit-sized
tensors (``~5 * 4 * G * C / N``).  At the defaults (d = 512, 32 images per worker) and
C = 1,000,000 on 2 workers that is about 3 GB + 0.6 GB per worker, plus the backbone (PLSC's
IR-ResNet-50: about 4.8 GB at 32 images); with a whole-layer loss each worker would need about 4x
more for the layer.  With Partial FC only the weights and their slot stay at full size.
"""
import dataclasses
import os
from typing import Any, Optional, Sequence, Tuple

DEFAULT_MOCK_STEPS = 10
# PLSC's default dataset dir; when it does not exist the Entry trains on mock data.
PLSC_DATASET_DIR = "./train_data"


@dataclasses.dataclass
class LargeScaleConfig:
    """The settings behind :class:`images.largescale.Entry`'s setters (see there)."""
    class_num: int = 85742                 # PLSC's default (MS1M-ArcFace)
    emb_size: int = 512
    loss_type: str = "dist_arcface"
    model_parallel: Optional[bool] = None  # PLSC v0.2: True -> dist_ form of the loss type
    margins: Optional[Tuple[float, float, float]] = None   # None: the loss type's defaults
    scale: float = 64.0
    easy_margin: bool = False
    train_batch_size: int = 32             # per worker (PLSC: 128 on a GPU; IR-ResNet-50 here)
    test_batch_size: int = 64
    image_shape: Tuple[int, int, int] = (3, 112, 112)
    dataset_dir: Optional[str] = PLSC_DATASET_DIR
    dataset_format: Optional[str] = None   # None: detected from the files
    train_image_num: Optional[int] = None  # None: counted from the files
    train_epochs: Optional[float] = None   # None: 120 with data (PLSC), see train_steps
    train_steps: Optional[int] = None
    warmup_epochs: float = 0.0
    step_boundaries: Optional[Sequence[int]] = None   # None: 50%, 75%, 90% of the steps
    model: Any = "irresnet_50"             # PLSC's default, ResNet50 (IR-ResNet-50)
    lr: float = 0.1                        # for a global batch of 1024, scaled linearly
    weight_decay: float = 5e-4
    lr_decay_factor: float = 0.1           # multiplies the rate at each step boundary
    optimizer: Any = "momentum"            # a name, or a tf.compat.v1.train.Optimizer object
    optimizer_kwargs: dict = dataclasses.field(default_factory=lambda: {"momentum": 0.9})
    fc_momentum_dtype: str = "float32"     # the FC shard's momentum slot (bfloat16/float16)
    fc_initializer: Any = None             # set_distfc_attr: stddev or fn(shape, dtype)
    fc_bias_initializer: Any = None
    use_mixed_precision: bool = False
    mixed_precision_dtype: str = "float16"
    init_loss_scaling: float = 1.0
    incr_every_n_steps: int = 2000
    decr_every_n_nan_or_inf: int = 2
    incr_ratio: float = 2.0
    decr_ratio: float = 0.5
    use_dynamic_loss_scaling: bool = True
    checkpoint_dir: Optional[str] = None   # load from here (re-sharding when needed)
    model_save_dir: Optional[str] = "output"
    save_steps: Optional[int] = None       # None: every epoch and at the end
    max_to_keep: int = 3                   # set_max_last_checkpoint_num (0: keep all)
    with_test: bool = True                 # PLSC's default; skipped without .bin sets
    test_period: int = 0                   # > 0: verification every this many steps
    val_targets: str = "lfw"
    calc_acc: bool = False
    sample_ratio: float = 1.0
    log_period: int = 10
    seed: int = 0
    num_intra_threads: int = 0
    num_inter_threads: int = 0
    mock_steps: int = DEFAULT_MOCK_STEPS
    hdfs: Optional[Tuple[str, str, Optional[str], Optional[str]]] = None  # set_hdfs_info

    def resolved(self):
        """This config with PLSC's default dataset dir dropped when it does not exist (mock
        data then)."""
        if self.dataset_dir == PLSC_DATASET_DIR and not os.path.isdir(self.dataset_dir):
            return dataclasses.replace(self, dataset_dir=None)
        return self

    def val_target_list(self):
        return [t.strip() for t in self.val_targets.split(",") if t.strip()]

    def resolved_loss_type(self):
        """The registry loss after PLSC v0.2's ``set_model_parallel``: True turns ``arcface``
        into ``dist_arcface`` (and so on); False keeps the whole layer on every worker.

        Raises:
          ValueError: ``set_model_parallel(False)`` with a ``dist_`` loss.
        """
        name = self.loss_type
        if self.model_parallel and not name.startswith("dist_"):
            return "dist_" + name
        if self.model_parallel is False and name.startswith("dist_"):
            raise ValueError("loss %s splits the FC layer over the workers, but "
                             "set_model_parallel(False) asks for the whole layer on every "
                             "worker: use set_loss_type(%r) or set_model_parallel(True)"
                             % (name, name[len("dist_"):]))
        return name
