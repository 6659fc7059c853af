"""Every flag of ``train_image_classifiers.py``, grouped as FastNN groups them.

Names and defaults follow FastNN's ``flags.py`` where they make sense (see README, "Flags"); every
one of FastNN's 75 flags is accepted (:mod:`images.utils.fastnn_flags` says what those without a
namesake here become).  Only the entry point reads ``FLAGS``; library code receives plain
arguments.  Validators here check what can be checked without building anything; the trainer checks
names against the registries.  ``--help`` lists these flags by group (:func:`help_text`).
"""
import sys
import textwrap

from absl import app, flags

from images.utils import fastnn_flags

FLAGS = flags.FLAGS

# (group title, index of its first flag in this module's definition order), for --help.
_GROUPS = []


def _group(title):
    _GROUPS.append((title, len(FLAGS.get_flags_for_module(__name__))))


def _fastnn(name):
    """Help of one of FastNN's flags without a namesake here: what it does here."""
    return "FastNN's flag: " + fastnn_flags.FLAGS_HERE[name].here + "."


# ----------------------------------------------------------------------------- dataset
_group("dataset")
flags.DEFINE_string("dataset_name", "mock", "Dataset registry name (mock, digits, cifar10, "
                    "mnist, flowers, imagenet, custom).")
flags.DEFINE_string("dataset_dir", None, "Folder holding the dataset's TFRecord files.")
flags.DEFINE_string("dataset_split_name", "train", "Split to train on when --train_files is not "
                    "given.")
flags.DEFINE_integer("num_sample_per_epoch", None, "Examples in one epoch; enables epoch-based "
                     "learning-rate decay. Defaults to the split's size where the registry "
                     "knows it.")
flags.DEFINE_integer("num_classes", 100, "Classes of the mock dataset (real datasets know their "
                     "own; giving a different value for them is an error).")
flags.DEFINE_string("train_files", None, "Comma-separated TFRecord file names (or glob patterns) "
                    "inside --dataset_dir, e.g. cifar10_train.tfrecord.")
flags.DEFINE_boolean("skip_corrupt_records", False, "Skip (and log, with a running count) "
                     "unreadable TFRecord data and undecodable images instead of stopping with an "
                     "error that names the file.")
flags.DEFINE_boolean("preflight_check", False, "Before training, read every record of the "
                     "input files once: framing, image decoding and label range; stop (exit 2) "
                     "listing every bad record. Its rate is in docs/BENCHMARKS.md.")
flags.DEFINE_integer("labels_offset", None, "Subtracted from stored labels (ImageNet-style "
                     "records with a background class need 1). Defaults to the dataset's.")
flags.DEFINE_string("file_pattern", None, _fastnn("file_pattern"))
flags.DEFINE_string("reader", None, _fastnn("reader"))
flags.DEFINE_string("eval_files", None, _fastnn("eval_files"))

# ----------------------------------------------------------------------------- preprocessing
_group("preprocessing")
flags.DEFINE_string("preprocessing_name", None, "Preprocessing registry name; defaults to the "
                    "model's.")
flags.DEFINE_integer("shuffle_buffer_size", 1024, "Records in the shuffle buffer.")
flags.DEFINE_integer("num_parallel_batches", 8, "Batches decoded in parallel (times batch_size "
                     "parallel map calls, capped by num_preprocessing_threads).")
flags.DEFINE_integer("prefetch_buffer_size", 32, "Batches prefetched.")
flags.DEFINE_integer("num_preprocessing_threads", 16, "Upper bound on parallel decode calls and "
                     "files read at once.")
flags.DEFINE_boolean("datasets_use_caching", False, "Cache the raw records in memory after the "
                     "first epoch.")
flags.DEFINE_integer("train_image_size", None, "Training input side; defaults to the model's.")
flags.DEFINE_boolean("use_grayscale", False, "Convert images to one channel before the network.")
flags.DEFINE_integer("random_seed", None, "Seed for weights, shuffling and augmentation; with it "
                     "the input order is deterministic.")

# ----------------------------------------------------------------------------- model
_group("model")
flags.DEFINE_enum("task_type", "pretrain", ["pretrain", "finetune"], "Train from scratch, or "
                  "warm-start from --model_dir/--ckpt_file_name.")
flags.DEFINE_string("model_name", "inception_resnet_v2", "Network registry name.")
flags.DEFINE_integer("num_epochs", 100, "Passes over the training data (the run also stops at "
                     "--stop_at_step).")
flags.DEFINE_float("weight_decay", 4e-5, "L2 coefficient on the network's weights (added to the "
                   "loss).")
flags.DEFINE_float("max_gradient_norm", None, "Clip gradients to this global norm.")
flags.DEFINE_integer("batch_size", 32, "Examples per step per worker.")
flags.DEFINE_string("model_dir", None, "Folder of the checkpoint to finetune from.")
flags.DEFINE_string("ckpt_file_name", None, "Checkpoint file name inside --model_dir (e.g. "
                    "resnet_v1_50.ckpt); defaults to the folder's latest checkpoint.")
flags.DEFINE_string("checkpoint_scope_map", None, "Finetune: rename checkpoint scope prefixes "
                    "to the model's, old:new[,old2:new2] (e.g. resnet_v1_50:my_net).")
flags.DEFINE_string("checkpoint_exclude_scopes", None, "Finetune: comma-separated model scopes "
                    "not restored from the checkpoint (they start from their initialisers).")
flags.DEFINE_string("trainable_scopes", None, "Comma-separated scopes whose variables are "
                    "trained; the others stay fixed. Default: all.")
flags.DEFINE_boolean("ignore_missing_vars", False, "Finetune: model variables the checkpoint "
                     "lacks start from their initialisers instead of stopping the run.")
flags.DEFINE_float("moving_average_decay", None, "Keep exponential moving averages of the model "
                   "variables with this decay (saved in checkpoints; eval and export use them "
                   "with the same flag). Default: none kept.")
flags.DEFINE_float("label_smoothing", 0.0, "Label smoothing of the cross-entropy targets.")
flags.DEFINE_string("train_dir", None, "Where checkpoints, summaries, profiles and the run's "
                    "resolved flags go; a checkpoint there is resumed (a run of another model, "
                    "dataset, class count or task type is refused). Default: "
                    "<temp dir>/fastnn_train/<model_name>, <model_name>_finetune for finetuning.")

# ----------------------------------------------------------------------------- learning rate
_group("learning rate")
flags.DEFINE_integer("warmup_steps", 0, "Steps of learning-rate warmup.")
flags.DEFINE_string("warmup_scheme", "t2t", "t2t (from lr/100, exponential) or linear (from 0).")
flags.DEFINE_string("decay_scheme", "", "luong234, luong5, luong10, or empty.")
flags.DEFINE_float("learning_rate_decay_factor", 0.94, "Factor of each exponential decay step.")
flags.DEFINE_string("learning_rate_decay_type", "exponential", "fixed, exponential, polynomial "
                    "or cosine.")
flags.DEFINE_float("learning_rate", 0.01, "Initial learning rate.")
flags.DEFINE_float("end_learning_rate", 1e-4, "Final learning rate of polynomial and cosine "
                   "decay.")
flags.DEFINE_float("num_epochs_per_decay", 2.0, "Epochs between exponential decays when the "
                   "epoch size is known and no decay_scheme is set.")

# ----------------------------------------------------------------------------- optimizer
_group("optimizer")
flags.DEFINE_string("optimizer", "rmsprop", "adadelta, adagrad, adam, adamweightdecay, ftrl, "
                    "momentum, rmsprop or sgd.")
flags.DEFINE_float("adadelta_rho", 0.95, "Adadelta decay.")
flags.DEFINE_float("adagrad_initial_accumulator_value", 0.1, "Adagrad initial accumulator.")
flags.DEFINE_float("adam_beta1", 0.9, "Adam first-moment decay (adam, adamweightdecay).")
flags.DEFINE_float("adam_beta2", 0.999, "Adam second-moment decay (adam, adamweightdecay).")
flags.DEFINE_float("opt_epsilon", 1.0, "Epsilon of adadelta, adam, adamweightdecay and rmsprop.")
flags.DEFINE_float("ftrl_learning_rate_power", -0.5, "FTRL learning-rate power.")
flags.DEFINE_float("ftrl_initial_accumulator_value", 0.1, "FTRL initial accumulator.")
flags.DEFINE_float("ftrl_l1", 0.0, "FTRL L1 strength.")
flags.DEFINE_float("ftrl_l2", 0.0, "FTRL L2 strength.")
flags.DEFINE_float("momentum", 0.9, "Momentum of the momentum optimizer.")
flags.DEFINE_float("rmsprop_momentum", 0.9, "RMSProp momentum.")
flags.DEFINE_float("rmsprop_decay", 0.9, "RMSProp decay.")
flags.DEFINE_float("adamw_weight_decay_rate", 0.01, "Decoupled weight decay of adamweightdecay.")

# ----------------------------------------------------------------------------- logging
_group("logging")
flags.DEFINE_integer("stop_at_step", 100, "Last global step (StopAtStepHook); 0 runs num_epochs.")
flags.DEFINE_integer("log_loss_every_n_iters", 10, "Steps between log lines (LoggingTensorHook).")
flags.DEFINE_integer("profile_every_n_iters", 0, "Steps between Chrome traces (ProfilerHook); 0 "
                     "turns profiling off.")
flags.DEFINE_integer("profile_at_task", 0, "Rank of the worker that writes profiles.")
flags.DEFINE_boolean("log_device_placement", False, "Log the device of every op.")
flags.DEFINE_boolean("print_model_statistics", False, "Print each trainable variable's shape and "
                     "the parameter count.")
flags.DEFINE_string("hooks", "StopAtStepHook,ProfilerHook,LoggingTensorHook,CheckpointSaverHook",
                    "Comma-separated session hooks (any letter case, as FastNN).")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Steps between checkpoints "
                     "(CheckpointSaverHook); one is always written at the end.")
flags.DEFINE_integer("save_summaries_steps", 100, "Steps between TensorBoard summaries; 0 off.")
flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints kept in train_dir.")
flags.DEFINE_boolean("log_trainable_vars_statistics", False,
                     _fastnn("log_trainable_vars_statistics"))
flags.DEFINE_boolean("log_optimizer_vars_statistics", False,
                     _fastnn("log_optimizer_vars_statistics"))

# ----------------------------------------------------------------------------- performance
_group("performance")
flags.DEFINE_boolean("use_fp16", None, "Compute in float16 with float32 master weights. "
                     "Default: on when a GPU is visible, off on CPUs (TF's CPU float16 kernels "
                     "are slow; use --use_bf16 there).")
flags.DEFINE_boolean("use_bf16", None, "Compute in bfloat16 with float32 master weights. "
                     "Default: on for a CPU run on a CPU with bfloat16 instructions "
                     "(avx512_bf16/amx_bf16), else off (docs/distributed.md).")
flags.DEFINE_string("loss_scale", "1.0", "Loss scale: a number >= 1 (static) or 'dynamic'. "
                    "With float16 and no --loss_scale given: dynamic.")
flags.DEFINE_integer("loss_scale_growth_steps", 2000, "Dynamic loss scaling: clean steps before "
                     "the scale doubles.")
flags.DEFINE_float("loss_scale_initial", 32768.0, "Dynamic loss scaling: initial scale.")
flags.DEFINE_boolean("enable_paisoar", True, "Use the distributed (Horovod) optimizer. Outside "
                     "horovodrun this is a one-worker run.")
flags.DEFINE_string("protocol", None, _fastnn("protocol"))
flags.DEFINE_integer("num_intra_threads", 0, "TensorFlow intra-op threads (0: TensorFlow's "
                     "choice).")
flags.DEFINE_integer("num_inter_threads", 0, "TensorFlow inter-op threads (0: TensorFlow's "
                     "choice).")
flags.DEFINE_integer("inter_op_parallelism_threads", None,
                     _fastnn("inter_op_parallelism_threads"))
flags.DEFINE_integer("intra_op_parallelism_threads", None,
                     _fastnn("intra_op_parallelism_threads"))
flags.DEFINE_boolean("colocate_gradients_with_ops", None, _fastnn("colocate_gradients_with_ops"))
flags.DEFINE_boolean("xla", False, "Compile the training step with XLA's JIT (auto-clustering: "
                     "the session's global_jit_level; also on CPUs). For GPUs; on this project's "
                     "CPU it made resnet_v1_50 slower (docs/BENCHMARKS.md, \"XLA\").")

# ----------------------------------------------------------------------------- distribution
_group("distribution (FastNN's PAI-Soar)")
flags.DEFINE_boolean("hvd_fp16_compression", False, "Allreduce gradients as float16.")
flags.DEFINE_integer("backward_passes_per_step", 1, "Gradient accumulation steps before each "
                     "allreduce.")
flags.DEFINE_enum("allreduce_op", "average", ["average", "adasum"], "How workers' gradients are "
                  "combined.")
flags.DEFINE_boolean("scale_learning_rate_by_workers", False, "Multiply the learning rate by the "
                     "number of workers.")
flags.DEFINE_integer("tensor_fusion_max_bytes", None, _fastnn("tensor_fusion_max_bytes"))
flags.DEFINE_string("tensor_fusion_policy", None, _fastnn("tensor_fusion_policy"))
flags.DEFINE_string("communication_policy", None, _fastnn("communication_policy"))

# ----------------------------------------------------------------------------- input/output
_group("input/output (FastNN's PAI names)")
flags.DEFINE_string("checkpointDir", None, _fastnn("checkpointDir"))
flags.DEFINE_string("summaryDir", None, _fastnn("summaryDir"))
flags.DEFINE_string("output_dir", None, _fastnn("output_dir"))
flags.DEFINE_string("tables", None, _fastnn("tables"))
flags.DEFINE_string("buckets", None, _fastnn("buckets"))
flags.DEFINE_string("outputs", None, _fastnn("outputs"))

# ----------------------------------------------------------------------------- machine
_group("machine (FastNN's PAI cluster; horovodrun starts the workers here)")
flags.DEFINE_integer("task_index", None, _fastnn("task_index"))
flags.DEFINE_string("taskId", None, _fastnn("taskId"))
flags.DEFINE_string("worker_hosts", None, _fastnn("worker_hosts"))
flags.DEFINE_string("ps_hosts", None, _fastnn("ps_hosts"))
flags.DEFINE_integer("worker_count", None, _fastnn("worker_count"))
flags.DEFINE_integer("ps_count", None, _fastnn("ps_count"))
flags.DEFINE_string("job_name", None, _fastnn("job_name"))


# ----------------------------------------------------------------------------- validators
def _positive(name):
    flags.register_validator(name, lambda v: v is None or v > 0,
                             message="--%s must be > 0" % name)


for _name in ("batch_size", "num_epochs", "shuffle_buffer_size", "num_parallel_batches",
              "prefetch_buffer_size", "num_preprocessing_threads", "save_checkpoints_steps",
              "keep_checkpoint_max", "backward_passes_per_step", "loss_scale_growth_steps",
              "train_image_size", "num_sample_per_epoch", "max_gradient_norm",
              "num_epochs_per_decay", "loss_scale_initial"):
    _positive(_name)

for _name in ("stop_at_step", "log_loss_every_n_iters", "profile_every_n_iters",
              "profile_at_task", "warmup_steps", "save_summaries_steps", "num_intra_threads",
              "num_inter_threads", "weight_decay", "end_learning_rate", "labels_offset",
              "inter_op_parallelism_threads", "intra_op_parallelism_threads",
              "tensor_fusion_max_bytes", "worker_count"):
    flags.register_validator(_name, lambda v: v is None or v >= 0,
                             message="--%s must be >= 0" % _name)

flags.register_validator("learning_rate", lambda v: v > 0, message="--learning_rate must be > 0")
flags.register_validator("label_smoothing", lambda v: 0.0 <= v < 1.0,
                         message="--label_smoothing must be in [0, 1)")


def _fastnn_value_check(name):
    def check(value):
        message = fastnn_flags.refusal(name, value)
        if message:
            raise flags.ValidationError(message)
        return True
    return check


for _name, _spec in fastnn_flags.FLAGS_HERE.items():
    if _spec.kind == "horovod":
        flags.register_validator(_name, _fastnn_value_check(_name))
flags.register_multi_flags_validator(
    ["task_type", "model_dir"],
    lambda f: f["task_type"] != "finetune" or bool(f["model_dir"]),
    message="--task_type=finetune needs --model_dir (the folder of the checkpoint to start from) "
            "and optionally --ckpt_file_name")
flags.register_validator("moving_average_decay", lambda v: v is None or 0.0 < v < 1.0,
                         message="--moving_average_decay must be in (0, 1), e.g. 0.9999")
flags.register_multi_flags_validator(
    ["task_type", "checkpoint_scope_map", "checkpoint_exclude_scopes", "ignore_missing_vars"],
    lambda f: f["task_type"] == "finetune" or not (
        f["checkpoint_scope_map"] or f["checkpoint_exclude_scopes"] or f["ignore_missing_vars"]),
    message="--checkpoint_scope_map, --checkpoint_exclude_scopes and --ignore_missing_vars shape "
            "the warm start and need --task_type=finetune")
flags.register_multi_flags_validator(
    ["use_fp16", "use_bf16"], lambda f: not (f["use_fp16"] and f["use_bf16"]),
    message="--use_fp16 and --use_bf16 exclude each other")


# ----------------------------------------------------------------------------- help
_HELP_ARGS = {"--help", "-help", "--helpshort", "-helpshort", "-?", "-h", "--help=true",
              "--helpshort=true"}


def help_text(short=False):
    """The trainer's flags by group (FastNN's grouping); ``short`` leaves out the help texts."""
    defined = FLAGS.get_flags_for_module(__name__)
    doc = (sys.modules["__main__"].__doc__ or "").strip()
    lines = [doc, ""] if doc else []
    bounds = [start for _, start in _GROUPS[1:]] + [len(defined)]
    for (title, start), end in zip(_GROUPS, bounds):
        lines.append("%s:" % title)
        for flag in defined[start:end]:
            default = "" if flag.default is None else " (default: %s)" % flag.default_as_str
            if short:
                lines.append("  --%s%s" % (flag.name, default))
                continue
            lines.append("  --%s%s" % (flag.name, default))
            lines.extend(textwrap.wrap(flag.help, 96, initial_indent="      ",
                                       subsequent_indent="      "))
        lines.append("")
    lines.append("absl's own flags (--flagfile, --logtostderr, ...): --helpfull")
    return "\n".join(lines)


def answer_help(argv):
    """Prints :func:`help_text` and exits when ``argv`` asks for ``--help`` / ``--helpshort``."""
    for arg in argv[1:]:
        if arg == "--":
            break
        if arg in _HELP_ARGS:
            print(help_text(short="helpshort" in arg))
            sys.exit(0)


def parse_flags(argv):
    """``app.run``'s flags parser: ``--help`` / ``--helpshort`` print :func:`help_text`."""
    answer_help(argv)
    return app.parse_flags_with_usage(argv)
