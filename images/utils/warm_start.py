"""Finetuning: warm-start the model's variables from a checkpoint through an assignment map.

Unlike FastNN (trainable variables only, no shape checks), every model variable is restored,
batch-norm moving statistics included.  The map can rename a scope prefix
(``--checkpoint_scope_map``), leave scopes out (``--checkpoint_exclude_scopes``) and tolerate
variables the checkpoint lacks (``--ignore_missing_vars``).  A classifier whose class count
differs from the checkpoint's is left out automatically; any other shape mismatch is an error
that lists the variables with both shapes.  A checkpoint already in train_dir wins: the run
resumes instead of warm-starting.

Scope filters match as TF-slim's do: a variable is in scope ``s`` when its name starts with ``s``.
"""
import dataclasses
import logging
import os
from typing import Dict, List, Sequence, Tuple

import tensorflow.compat.v1 as tf

log = logging.getLogger("fastnn")


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the model in a way that cannot be finetuned as asked."""


def _checkpoint_exists(prefix):
    # A V2 checkpoint is '<prefix>.index' plus data shards; a V1 checkpoint is the file itself.
    return tf.gfile.Exists(prefix + ".index") or (
        tf.gfile.Exists(prefix) and not tf.gfile.IsDirectory(prefix))


def resolve_checkpoint(model_dir, ckpt_file_name=None):
    """The checkpoint path in ``model_dir``: ``ckpt_file_name`` or the folder's latest.

    Raises:
      FileNotFoundError: no such checkpoint; says what was looked for.
    """
    if ckpt_file_name:
        path = ckpt_file_name if os.path.isabs(ckpt_file_name) else os.path.join(
            model_dir, ckpt_file_name)
        if not _checkpoint_exists(path):
            raise FileNotFoundError("no checkpoint %s (looked for %s.index or %s)"
                                    % (path, path, path))
        return path
    if tf.gfile.IsDirectory(model_dir):
        latest = tf.train.latest_checkpoint(model_dir)
        if latest:
            return latest
    elif _checkpoint_exists(model_dir):
        return model_dir
    raise FileNotFoundError("no checkpoint in %s; give --ckpt_file_name or a folder with a "
                            "'checkpoint' file" % model_dir)


# ----------------------------------------------------------------------------- flag parsing
def parse_scopes(spec):
    """``'a/b, c'`` -> ``['a/b', 'c']`` (empty or None -> ``[]``)."""
    if not spec:
        return []
    if not isinstance(spec, str):
        spec = ",".join(spec)
    return [s.strip() for s in spec.split(",") if s.strip()]


def parse_scope_map(spec):
    """``'old:new[,old2:new2]'`` -> ``[('old', 'new'), ...]``.

    ``old`` is a scope prefix in the checkpoint, ``new`` the model's prefix that replaces it.

    Raises:
      ValueError: an entry is not ``old:new``.
    """
    pairs = []
    for item in parse_scopes(spec):
        parts = item.split(":")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ValueError("--checkpoint_scope_map entry %r is not old:new (the checkpoint's "
                             "scope prefix, a colon, the model's), e.g. "
                             "--checkpoint_scope_map=resnet_v1_50:my_net" % item)
        pairs.append((parts[0].strip().rstrip("/"), parts[1].strip().rstrip("/")))
    return pairs


# ----------------------------------------------------------------------------- scopes
def in_scopes(name, scopes):
    """True when ``name`` starts with one of ``scopes`` (TF-slim's rule)."""
    return any(name.startswith(s) for s in scopes)


def _top_scopes(names, limit=8):
    tops = sorted({n.split("/", 1)[0] for n in names})
    return ", ".join(tops[:limit]) + (", ..." if len(tops) > limit else "")


def check_scopes_match(scopes, variables, flag):
    """Every scope must select at least one variable: a scope that selects none is a typo.

    Raises:
      ValueError: naming the scopes that matched nothing and the model's top-level scopes.
    """
    names = [v.op.name for v in variables]
    unused = [s for s in scopes if not any(n.startswith(s) for n in names)]
    if unused:
        raise ValueError("%s: %s match(es) no model variable; the model's variables live under: "
                         "%s" % (flag, ", ".join(unused), _top_scopes(names)))


def variables_to_train(variables, trainable_scopes):
    """The variables ``--trainable_scopes`` leaves trainable (all when no scope is given).

    Raises:
      ValueError: a scope selects no variable.
    """
    scopes = parse_scopes(trainable_scopes)
    if not scopes:
        return list(variables)
    check_scopes_match(scopes, variables, "--trainable_scopes")
    return [v for v in variables if in_scopes(v.op.name, scopes)]


def checkpoint_name(model_name, scope_map):
    """The checkpoint's name for model variable ``model_name`` under ``scope_map``.

    The longest matching model prefix wins; a prefix matches whole scope components only
    (``net`` maps ``net/conv1/weights`` but not ``net2/conv1/weights``).
    """
    best = None
    for old, new in scope_map:
        if model_name == new or model_name.startswith(new + "/"):
            if best is None or len(new) > len(best[1]):
                best = (old, new)
    if best is None:
        return model_name
    return best[0] + model_name[len(best[1]):]


# ----------------------------------------------------------------------------- the map
@dataclasses.dataclass
class AssignmentPlan:
    """What a warm start restores and what it leaves at its initial value.

    Attributes:
      assignment: ``{checkpoint name: variable}`` to restore.
      classifier: lines ``'name [ckpt shape] -> [model shape]'`` left out because the class
        count differs.
      excluded: model variable names left out by ``--checkpoint_exclude_scopes``.
      missing: model variable names the checkpoint lacks (allowed by ``ignore_missing_vars``).
    """
    assignment: Dict[str, tf.Variable]
    classifier: List[str]
    excluded: List[str]
    missing: List[str]


def _is_classifier_mismatch(model_shape, ckpt_shape, num_classes):
    return (len(model_shape) == len(ckpt_shape) and model_shape[:-1] == ckpt_shape[:-1]
            and model_shape[-1] == num_classes and ckpt_shape[-1] != num_classes)


def _parent_scope(name):
    return name.rsplit("/", 1)[0] if "/" in name else name


def build_assignment_map(checkpoint_path, variables, num_classes=None,
                         scope_map: Sequence[Tuple[str, str]] = (),
                         exclude_scopes: Sequence[str] = (), ignore_missing_vars=False):
    """Maps checkpoint names to model variables, checking every shape.

    Args:
      checkpoint_path: the checkpoint to read.
      variables: model variables to restore (weights and batch-norm statistics).
      num_classes: the model's class count; a variable whose shape differs from the checkpoint's
        only in a last dimension equal to it is a classifier and is left out.
      scope_map: ``[(checkpoint prefix, model prefix)]`` renames (see :func:`parse_scope_map`).
      exclude_scopes: model scopes not restored (they keep their initial values).
      ignore_missing_vars: leave out variables the checkpoint lacks instead of failing.

    Returns:
      An :class:`AssignmentPlan`.

    Raises:
      CheckpointMismatchError: shapes differ (each variable listed with both shapes and the
        ``--checkpoint_exclude_scopes`` value that leaves them out), or the checkpoint lacks
        variables and ``ignore_missing_vars`` is off.
      ValueError: a scope in ``scope_map`` or ``exclude_scopes`` selects no variable.
    """
    variables = list(variables)
    exclude_scopes = list(exclude_scopes)
    if exclude_scopes:
        check_scopes_match(exclude_scopes, variables, "--checkpoint_exclude_scopes")
    if scope_map:
        unused = [new for _, new in scope_map
                  if not any(v.op.name == new or v.op.name.startswith(new + "/")
                             for v in variables)]
        if unused:
            raise ValueError("--checkpoint_scope_map: model scope(s) %s match no model variable; "
                             "the model's variables live under: %s"
                             % (", ".join(unused), _top_scopes(v.op.name for v in variables)))
    reader = tf.train.load_checkpoint(checkpoint_path)
    ckpt_shapes = reader.get_variable_to_shape_map()
    plan = AssignmentPlan({}, [], [], [])
    bad = []
    for var in variables:
        name = var.op.name
        if in_scopes(name, exclude_scopes):
            plan.excluded.append(name)
            continue
        ckpt_name = checkpoint_name(name, scope_map)
        if ckpt_name not in ckpt_shapes:
            plan.missing.append(name if ckpt_name == name else "%s (as %s)" % (name, ckpt_name))
            continue
        model_shape = var.shape.as_list()
        ckpt_shape = list(ckpt_shapes[ckpt_name])
        if model_shape == ckpt_shape:
            if ckpt_name in plan.assignment:
                raise ValueError("--checkpoint_scope_map loads checkpoint variable %s into both %s "
                                 "and %s; map each checkpoint scope to one model scope"
                                 % (ckpt_name, plan.assignment[ckpt_name].op.name, name))
            plan.assignment[ckpt_name] = var
        elif num_classes and _is_classifier_mismatch(model_shape, ckpt_shape, num_classes):
            plan.classifier.append("%s %s -> %s" % (name, ckpt_shape, model_shape))
        else:
            bad.append((name, ckpt_name, ckpt_shape, model_shape))
    if bad:
        lines = ["  %s%s: checkpoint %s, model %s"
                 % (name, "" if ckpt_name == name else " (checkpoint %s)" % ckpt_name,
                    ckpt_shape, model_shape)
                 for name, ckpt_name, ckpt_shape, model_shape in bad]
        parents = {_parent_scope(b[0]) for b in bad}
        # A scope inside another listed scope adds nothing: keep the outer one.
        scopes = sorted(p for p in parents
                        if not any(p.startswith(q + "/") for q in parents))
        raise CheckpointMismatchError(
            "checkpoint %s does not fit the model: %d variable(s) differ in shape:\n%s\n"
            "leave them out (they keep their initial values) with "
            "--checkpoint_exclude_scopes=%s, or check --model_name and --train_image_size"
            % (checkpoint_path, len(bad), "\n".join(lines), ",".join(scopes)))
    if plan.missing and not ignore_missing_vars:
        ckpt_names = [n for n in ckpt_shapes if n != "global_step"]
        raise CheckpointMismatchError(
            "checkpoint %s lacks %d of the model's %d variable(s), e.g.:\n  %s\n"
            "the checkpoint's variables live under: %s; the model's under: %s.\n"
            "Rename a prefix with --checkpoint_scope_map=<checkpoint scope>:<model scope>, or "
            "start those variables from scratch with --ignore_missing_vars"
            % (checkpoint_path, len(plan.missing), len(variables),
               "\n  ".join(plan.missing[:8]), _top_scopes(ckpt_names),
               _top_scopes(v.op.name for v in variables)))
    return plan


def warm_start_init_fn(model_dir, ckpt_file_name, train_dir, num_classes=None, variables=None,
                       scope_map=(), exclude_scopes=(), ignore_missing_vars=False,
                       averages=None):
    """Returns a ``Scaffold`` ``init_fn`` that restores the model from a checkpoint, or None.

    None when ``train_dir`` already holds a checkpoint: the session resumes from it instead, and
    the log says so.  The checkpoint is checked here, before the session starts, so a mismatch
    fails at once.

    Args:
      model_dir: folder (or file prefix) of the checkpoint to start from.
      ckpt_file_name: checkpoint name inside ``model_dir``; None takes the folder's latest.
      train_dir: the run's own checkpoint folder.
      num_classes: the model's class count (a classifier of another width is left out).
      variables: what to restore; defaults to ``tf.model_variables()`` (weights and batch-norm
        statistics).
      scope_map: ``[(checkpoint prefix, model prefix)]``.
      exclude_scopes: model scopes left at their initial values.
      ignore_missing_vars: variables the checkpoint lacks keep their initial values.
      averages: ``{variable: its moving-average shadow}``; after the restore every shadow is
        set to its variable, so the averages start from the finetuned-from weights.
    """
    latest = tf.train.latest_checkpoint(train_dir)
    if latest:
        log.info("train_dir %s already holds checkpoint %s: resuming from it, not warm-starting "
                 "from %s", train_dir, latest, model_dir)
        return None
    path = resolve_checkpoint(model_dir, ckpt_file_name)
    if variables is None:
        variables = tf.model_variables()
    plan = build_assignment_map(path, variables, num_classes, scope_map=scope_map,
                                exclude_scopes=exclude_scopes,
                                ignore_missing_vars=ignore_missing_vars)
    if plan.classifier:
        log.info("class count %s differs from the checkpoint's: not restoring the classifier "
                 "variable(s) %s", num_classes, "; ".join(plan.classifier))
    if plan.excluded:
        log.info("--checkpoint_exclude_scopes leaves %d variable(s) at their initial values: %s",
                 len(plan.excluded), ", ".join(plan.excluded))
    if plan.missing:
        log.warning("--ignore_missing_vars: %d variable(s) missing from %s keep their initial "
                    "values: %s", len(plan.missing), path, ", ".join(plan.missing))
    if not plan.assignment:
        raise CheckpointMismatchError("nothing to restore from %s: every model variable was left "
                                      "out" % path)
    log.info("warm-starting %d of %d model variable(s) from %s", len(plan.assignment),
             len(variables), path)
    saver = tf.train.Saver(plan.assignment, name="warm_start_saver")
    sync_averages = None
    if averages:
        sync_averages = tf.group(*[tf.assign(shadow, var) for var, shadow in averages.items()],
                                 name="warm_start_averages")

    def init_fn(scaffold, session):
        del scaffold
        saver.restore(session, path)
        if sync_averages is not None:
            session.run(sync_averages)

    return init_fn
