"""FastNN's flags that have no flag of the same name here: what each one becomes under Horovod.

FastNN's ``flags.py`` (alibaba/FastNN, ``images/flags.py``) defines 75 flags; 50 have a namesake in
our ``flags.py``.  The other 25 fall into three kinds, and every one is accepted by the parser so
that a FastNN flag file runs unchanged:

* an equivalent here: the flag acts as ours (``--checkpointDir`` is ``--train_dir``,
  ``--intra_op_parallelism_threads`` is ``--num_intra_threads``, ``--tensor_fusion_max_bytes`` is
  Horovod's fusion threshold, ...);
* a PAI cluster or PAISoar setting with no meaning under Horovod: FastNN's default value (what a
  flag file written by FastNN holds) is accepted with a warning, any other value is refused with
  what to do instead (``horovodrun -np N -H host1:n,host2:n``);
* a flag FastNN defined but never read (``--tables``, ``--reader``, ...): accepted with a warning
  that it has no effect, here as there.

This module takes plain values (the entry point reads the flags): :func:`refusal` is the
parse-time check of one value, :func:`translate` turns the given values into our flags' values and
the warnings to log.
"""
import dataclasses
from typing import Dict, List, Optional, Set, Tuple


@dataclasses.dataclass(frozen=True)
class FastNNFlag:
    """One of FastNN's flags that our trainer knows under another name or not at all.

    Attributes:
      name: FastNN's flag name.
      kind: ``equivalent``, ``horovod`` (no meaning under Horovod) or ``unread`` (FastNN never read
        it).
      here: what it does here, one line (the flag's help and README's table).
      harmless: values of a ``horovod`` flag that ask for nothing Horovod does differently
        (FastNN's default and its synonyms); they are accepted with a warning.
      instead: what to do instead of a refused value.
      why: why a harmless or unread value has no effect (the warning).
    """
    name: str
    kind: str
    here: str
    harmless: Tuple = ()
    instead: str = ""
    why: str = ""


_HOROVODRUN = ("start every worker with horovodrun, e.g. `horovodrun -np 8 -H host1:4,host2:4 "
               "python train_image_classifiers.py ...` (docs/distributed.md)")
_NEVER_READ = "FastNN defined it but never read it"

FLAGS_HERE = {f.name: f for f in (
    # machine (PAI's cluster description)
    FastNNFlag("task_index", "horovod",
               "horovodrun numbers the workers; 0 (FastNN's default) is accepted with a "
               "warning, another index is refused", harmless=(0,),
               instead="horovodrun gives each worker its rank; drop --task_index and "
                       + _HOROVODRUN,
               why="horovodrun gives each worker its rank"),
    FastNNFlag("taskId", "unread", "no effect: PAI's job id", why=_NEVER_READ),
    FastNNFlag("worker_hosts", "horovod", "refused when set: list the hosts with "
               "`horovodrun -H host1:n,host2:n`",
               instead="drop --worker_hosts and " + _HOROVODRUN),
    FastNNFlag("ps_hosts", "horovod", "refused when set: Horovod has no parameter servers",
               instead="Horovod averages gradients between the workers without parameter "
                       "servers; drop --ps_hosts and " + _HOROVODRUN),
    FastNNFlag("worker_count", "equivalent", "checked against the number of workers "
               "horovodrun started (-np); a different count is refused"),
    FastNNFlag("ps_count", "horovod", "0 is accepted with a warning; more is refused (no "
               "parameter servers)", harmless=(0,),
               instead="Horovod has no parameter servers; drop --ps_count and " + _HOROVODRUN,
               why="there are no parameter servers under Horovod"),
    FastNNFlag("job_name", "horovod", "'worker' / 'localhost' are accepted with a warning "
               "(every horovodrun process is a worker); 'ps' is refused",
               harmless=("worker", "localhost"),
               instead="every process horovodrun starts is a worker and there are no parameter "
                       "servers; drop --job_name and " + _HOROVODRUN,
               why="every process horovodrun starts is a worker"),
    # dataset
    FastNNFlag("file_pattern", "equivalent", "glob of the training files inside --dataset_dir, "
               "%s standing for --dataset_split_name (e.g. cifar10_%s.tfrecord), like "
               "--train_files (FastNN never read it)"),
    FastNNFlag("reader", "unread", "no effect: TFRecord files are read by tf.data",
               why="FastNN passed it to a function that ignored it"),
    FastNNFlag("eval_files", "equivalent", "comma-separated evaluation files inside "
               "--dataset_dir: checked at the start, and evaluated by "
               "`eval_image_classifier.py --checkpoint_path=<train_dir>` (FastNN never read "
               "it)"),
    # logging
    FastNNFlag("log_trainable_vars_statistics", "equivalent", "table of the trainable "
               "variables (name, shape, size) and the parameter count, as "
               "--print_model_statistics"),
    FastNNFlag("log_optimizer_vars_statistics", "equivalent", "table of the optimizer's "
               "variables (slots such as momentum) and their total size"),
    # performance
    FastNNFlag("inter_op_parallelism_threads", "equivalent", "--num_inter_threads"),
    FastNNFlag("intra_op_parallelism_threads", "equivalent", "--num_intra_threads"),
    FastNNFlag("colocate_gradients_with_ops", "unread", "no effect", why=_NEVER_READ),
    FastNNFlag("protocol", "horovod", "'grpc' (FastNN's default) is accepted with a warning; "
               "other transports are refused", harmless=("grpc",),
               instead="--protocol was PAISoar's transport and has no meaning under Horovod; "
                       "drop it and pick the transport with horovodrun (--gloo, "
                       "--network-interface)",
               why="horovodrun picks the transport (--gloo, --network-interface)"),
    # input/output
    FastNNFlag("tables", "unread", "no effect: PAI's ODPS tables; give TFRecord files with "
               "--dataset_dir", why=_NEVER_READ),
    FastNNFlag("buckets", "unread", "no effect: PAI's OSS buckets", why=_NEVER_READ),
    FastNNFlag("outputs", "unread", "no effect: PAI's output tables", why=_NEVER_READ),
    FastNNFlag("output_dir", "equivalent", "folder of the Chrome traces (--profile_every_n_iters) "
               "when neither --train_dir nor --checkpointDir is given, as in FastNN"),
    FastNNFlag("checkpointDir", "equivalent", "--train_dir"),
    FastNNFlag("summaryDir", "equivalent", "folder of the TensorBoard summaries (default: "
               "--train_dir; FastNN never read it)"),
    # PAI-Soar
    FastNNFlag("tensor_fusion_policy", "horovod", "'default' is accepted with a warning; other "
               "policies are refused", harmless=("default",),
               instead="Horovod fuses tensors up to a size; set it with "
                       "--tensor_fusion_max_bytes and drop --tensor_fusion_policy",
               why="Horovod fuses tensors by size (--tensor_fusion_max_bytes)"),
    FastNNFlag("communication_policy", "horovod", "'nccl_fullring' is accepted with a warning; "
               "other policies are refused", harmless=("nccl_fullring",),
               instead="Horovod picks its collectives at launch: horovodrun --gloo / --mpi, and "
                       "HOROVOD_HIERARCHICAL_ALLREDUCE=1 for a hierarchical allreduce; drop "
                       "--communication_policy",
               why="horovodrun picks the collectives (--gloo / --mpi)"),
    FastNNFlag("tensor_fusion_max_bytes", "equivalent", "Horovod's fusion threshold "
               "(HOROVOD_FUSION_THRESHOLD)"),
)}


def _given(value):
    return value is not None and value != ""


def refusal(name, value) -> Optional[str]:
    """The message refusing ``value`` for FastNN's ``--name``, or None when it is accepted."""
    spec = FLAGS_HERE.get(name)
    if spec is None or spec.kind != "horovod" or not _given(value):
        return None
    if value in spec.harmless:
        return None
    instead = spec.instead
    if name == "worker_hosts":
        instead += "; for these hosts: `%s`" % horovodrun_for_hosts(value)
    return "--%s=%s: %s" % (name, value, instead)


def horovodrun_for_hosts(worker_hosts):
    """The horovodrun command line starting one worker per entry of FastNN's ``--worker_hosts``."""
    slots = {}
    for entry in worker_hosts.split(","):
        host = entry.strip().rsplit(":", 1)[0]
        if host:
            slots[host] = slots.get(host, 0) + 1
    return "horovodrun -np %d -H %s python train_image_classifiers.py ..." % (
        sum(slots.values()), ",".join("%s:%d" % kv for kv in slots.items()))


def horovod_env(tensor_fusion_max_bytes) -> Dict[str, str]:
    """Environment variables for Horovod from FastNN's flags, to set before ``hvd.init()``.

    The flag, given on purpose, wins over a ``HOROVOD_FUSION_THRESHOLD`` inherited from the
    environment.
    """
    if tensor_fusion_max_bytes is None:
        return {}
    if tensor_fusion_max_bytes < 0:
        raise ValueError("--tensor_fusion_max_bytes must be >= 0 (0 turns fusion off), got %d"
                         % tensor_fusion_max_bytes)
    return {"HOROVOD_FUSION_THRESHOLD": str(tensor_fusion_max_bytes)}


def _same_or_refuse(ours, theirs, values, present):
    if ours in present and theirs in present and values[ours] != values[theirs]:
        raise ValueError("--%s=%s and FastNN's --%s=%s name the same setting with different "
                         "values; give one of them" % (ours, values[ours], theirs, values[theirs]))


def profile_dir(train_dir, train_dir_given, output_dir):
    """Where Chrome traces go: FastNN wrote them to ``checkpointDir or output_dir``.

    Args:
      train_dir: the run's folder.
      train_dir_given: ``--train_dir`` or ``--checkpointDir`` was given.
      output_dir: FastNN's ``--output_dir`` (None when not given).
    """
    return train_dir if train_dir_given or not _given(output_dir) else output_dir


def translate(values, present: Set[str], num_workers=1) -> Tuple[Dict, List[str]]:
    """Turns FastNN's flags into ours.

    Args:
      values: ``{flag name: value}`` of every trainer flag.
      present: names of the flags given on the command line or in a flag file.
      num_workers: workers in the job (horovodrun's -np).

    Returns:
      ``(updates, warnings)``: values to set on our flags, and one line per FastNN flag that has
      no effect here.

    Raises:
      ValueError: a refused value, or a FastNN flag that contradicts its namesake of ours.
    """
    for name in FLAGS_HERE:
        message = refusal(name, values.get(name))
        if message:
            raise ValueError(message)
    updates, warnings = {}, []

    _same_or_refuse("train_dir", "checkpointDir", values, present)
    _same_or_refuse("num_inter_threads", "inter_op_parallelism_threads", values, present)
    _same_or_refuse("num_intra_threads", "intra_op_parallelism_threads", values, present)
    if "train_dir" not in present and _given(values.get("checkpointDir")):
        updates["train_dir"] = values["checkpointDir"]
    for ours, theirs in (("num_inter_threads", "inter_op_parallelism_threads"),
                         ("num_intra_threads", "intra_op_parallelism_threads")):
        if values.get(theirs) is not None and ours not in present:
            if values[theirs] < 0:
                raise ValueError("--%s must be >= 0, got %d" % (theirs, values[theirs]))
            updates[ours] = values[theirs]

    pattern = values.get("file_pattern")
    if _given(pattern):
        if _given(values.get("train_files")):
            raise ValueError("--train_files and FastNN's --file_pattern both name the training "
                             "files; give one of them")
        updates["train_files"] = (pattern % values.get("dataset_split_name", "train")
                                  if "%s" in pattern else pattern)

    count = values.get("worker_count")
    if count is not None and count != num_workers:
        raise ValueError("--worker_count=%d but this job has %d worker(s): horovodrun -np sets "
                         "the number of workers; drop --worker_count or %s"
                         % (count, num_workers, _HOROVODRUN))

    for name, spec in FLAGS_HERE.items():
        value = values.get(name)
        if not _given(value) or name not in present:
            continue
        if spec.kind in ("unread", "horovod"):
            warnings.append("--%s=%s has no effect here: %s" % (name, value, spec.why))
    return updates, warnings

