#!/usr/bin/env python
"""Shuffles base64 training files globally and writes one file per worker, all the same length.

    python tools/process_base64_files.py --data_dir=DIR --file_list=file_list.txt --nranks=8
    python tools/process_base64_files.py --data_dir=DIR --file_list=file_list.txt --nranks=8 \\
        --in_place                    # PLSC's way: DIR/base64_rank_<r>, DIR/file_list.txt

Input: ``DIR/file_list.txt`` names the data files (relative to DIR), each line
``<base64 image>\\t<integer label>``.  Output (``--output_dir``, default
``DIR/shuffled_<nranks>``): ``part-00000-of-00008.txt``... and a ``file_list.txt`` naming them.
The shuffle is global over all lines and seeded (``--seed``), so it is reproducible.  When the
line count is not a multiple of ``nranks``, the first lines of the shuffled order are repeated to
fill the last files and the tool says how many.  Labels are checked to be integers and written
back in the second column; lines with the label first (``<label>\\t<base64>``, what PLSC's tool
read) are accepted and written in the reader's order.  The input files are never modified.

``--in_place`` works as PLSC's tool did, for PLSC's base64 reader and programs: the outputs are
``DIR/base64_rank_<r>`` and ``DIR/<file_list>`` is rewritten to name exactly them (``nranks``
entries, one file per trainer); the previous list is kept as ``<file_list>.before_shuffle``.
PLSC's tool also deleted the inputs; here only ``--delete_inputs`` does, after every output is
written.  Outputs are written under temporary names and renamed, so running it again in place
(the inputs are then the previous outputs) is safe.

Memory: one file offset per line (8 bytes), not the data, so large sets can be shuffled.
"""
import argparse
import os
import shutil
import sys

import numpy as np


def index_lines(paths):
    """``(file_index, offset, label_first)`` arrays of every non-empty line, checking each label
    (``label_first``: the line is ``<label>\\t<base64>``).

    Raises:
      ValueError: a line without a tab-separated integer label, naming file and line number.
    """
    file_ids, offsets, swapped = [], [], []
    for i, path in enumerate(paths):
        with open(path, "rb") as f:
            pos, lineno = 0, 0
            for line in f:
                lineno += 1
                start = pos
                pos += len(line)
                text = line.strip()
                if not text:
                    continue
                parts = text.split(b"\t")
                if len(parts) != 2 or not parts[0]:
                    raise ValueError("%s:%d: expected '<base64 image>\\t<label>', got %d "
                                     "tab-separated column(s)" % (path, lineno, len(parts)))
                flip = not _is_int(parts[1]) and _is_int(parts[0])
                if not flip and not _is_int(parts[1]):
                    raise ValueError("%s:%d: label %r is not an integer"
                                     % (path, lineno, parts[1][:20]))
                file_ids.append(i)
                offsets.append(start)
                swapped.append(flip)
    return (np.asarray(file_ids, np.int32), np.asarray(offsets, np.int64),
            np.asarray(swapped, bool))


def _is_int(text):
    try:
        int(text)
        return True
    except ValueError:
        return False


def plan(num_lines, nranks, seed):
    """``(order, per_rank, padding)``: the shuffled line order (with padding appended), lines per
    output file, and how many lines were repeated."""
    if num_lines == 0:
        raise ValueError("no lines to shuffle")
    order = np.random.RandomState(seed).permutation(num_lines)
    per_rank = -(-num_lines // nranks)
    padding = per_rank * nranks - num_lines
    if padding:
        order = np.resize(order, per_rank * nranks)  # repeats the order cyclically
    return order, per_rank, padding


def _read_line(handle, offset, label_first=False):
    handle.seek(offset)
    text = handle.readline().strip()
    b64, label = text.split(b"\t")
    if label_first:
        b64, label = label, b64
    return b64 + b"\t" + str(int(label)).encode() + b"\n"


def process(data_dir, file_list, nranks, output_dir=None, seed=0, log=print, in_place=False,
            delete_inputs=False):
    """Runs the tool; returns the list of written files.

    Args:
      in_place: PLSC's layout (see the module docstring); ``output_dir`` must then be None.
      delete_inputs: with ``in_place``, remove the input files that are not outputs afterwards.
    """
    if nranks < 1:
        raise ValueError("--nranks must be >= 1, got %d" % nranks)
    list_path = file_list if os.path.isabs(file_list) else os.path.join(data_dir, file_list)
    if not os.path.exists(list_path):
        raise FileNotFoundError("file list %s does not exist" % list_path)
    with open(list_path, encoding="utf-8") as f:
        names = [n.strip() for n in f if n.strip()]
    base = os.path.dirname(list_path)
    inputs = [n if os.path.isabs(n) else os.path.join(base, n) for n in names]
    missing = [p for p in inputs if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError("%s names missing file(s): %s" % (list_path, ", ".join(missing)))
    if delete_inputs and not in_place:
        raise ValueError("--delete_inputs goes with --in_place")
    if in_place:
        if output_dir is not None:
            raise ValueError("--in_place writes into --data_dir; leave out --output_dir")
        output_dir = base
        outputs = [os.path.join(base, "base64_rank_%d" % r) for r in range(nranks)]
        list_out = list_path
    else:
        output_dir = output_dir or os.path.join(data_dir, "shuffled_%d" % nranks)
        outputs = [os.path.join(output_dir, "part-%05d-of-%05d.txt" % (r, nranks))
                   for r in range(nranks)]
        list_out = os.path.join(output_dir, "file_list.txt")
        protected = {os.path.realpath(p) for p in inputs + [list_path]}
        clash = [p for p in outputs + [list_out] if os.path.realpath(p) in protected]
        if clash:
            raise ValueError("output %s would overwrite an input; choose another --output_dir "
                             "(or --in_place for PLSC's layout)" % clash[0])
    os.makedirs(output_dir, exist_ok=True)

    file_ids, offsets, swapped = index_lines(inputs)
    order, per_rank, padding = plan(len(offsets), nranks, seed)
    log("%d lines in %d file(s); %d per worker file; %d padding line(s) repeated%s"
        % (len(offsets), len(inputs), per_rank, padding,
           "; %d line(s) had the label first" % swapped.sum() if swapped.any() else ""))
    handles = [open(p, "rb") for p in inputs]
    try:
        # Every output is complete under its temporary name before any is renamed: in place,
        # an output may replace a file still being read.
        for r, out in enumerate(outputs):
            with open(out + ".tmp", "wb") as f:
                for k in order[r * per_rank:(r + 1) * per_rank]:
                    f.write(_read_line(handles[file_ids[k]], offsets[k], swapped[k]))
    finally:
        for h in handles:
            h.close()
    for out in outputs:
        os.replace(out + ".tmp", out)
    if in_place:
        kept = list_path + ".before_shuffle"
        if not os.path.exists(kept):
            shutil.copyfile(list_path, kept)
    with open(list_out + ".tmp", "w", encoding="utf-8") as f:
        f.write("".join(os.path.basename(p) + "\n" for p in outputs))
    os.replace(list_out + ".tmp", list_out)
    log("wrote %s and %s" % (", ".join(os.path.basename(p) for p in outputs), list_out))
    if delete_inputs:
        keep = {os.path.realpath(p) for p in outputs}
        gone = [p for p in inputs if os.path.realpath(p) not in keep and os.path.exists(p)]
        for path in gone:
            os.remove(path)
        log("deleted %d input file(s)" % len(gone))
    return outputs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="folder of the input files")
    parser.add_argument("--file_list", default="file_list.txt",
                        help="list of input files, relative to --data_dir")
    parser.add_argument("--nranks", type=int, required=True, help="number of workers")
    parser.add_argument("--output_dir", default=None,
                        help="where to write (default DATA_DIR/shuffled_NRANKS)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed")
    parser.add_argument("--in_place", action="store_true",
                        help="PLSC's layout: DATA_DIR/base64_rank_<r> and FILE_LIST naming "
                             "exactly them (the old list kept as FILE_LIST.before_shuffle)")
    parser.add_argument("--delete_inputs", action="store_true",
                        help="with --in_place: delete the input files afterwards, as PLSC did")
    args = parser.parse_args(argv)
    try:
        process(args.data_dir, args.file_list, args.nranks, args.output_dir, args.seed,
                in_place=args.in_place, delete_inputs=args.delete_inputs)
    except (ValueError, FileNotFoundError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
