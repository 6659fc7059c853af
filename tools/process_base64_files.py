#!/usr/bin/env python
"""Shuffles base64 training files globally and writes one file per worker, all the same length.

    python tools/process_base64_files.py --data_dir=DIR --file_list=file_list.txt --nranks=8

Input: ``DIR/file_list.txt`` names the data files (relative to DIR), each line
``<base64 image>\\t<integer label>``.  Output (``--output_dir``, default
``DIR/shuffled_<nranks>``): ``part-00000-of-00008.txt``... and a ``file_list.txt`` naming them.
The shuffle is global over all lines and seeded (``--seed``), so it is reproducible.  When the
line count is not a multiple of ``nranks``, the first lines of the shuffled order are repeated to
fill the last files and the tool says how many.  Labels are checked to be integers and written
back in the second column; the input files are never modified or deleted.

Memory: one file offset per line (8 bytes), not the data, so large sets can be shuffled.
"""
import argparse
import os
import sys

import numpy as np


def index_lines(paths):
    """``(file_index array, offset array)`` of every non-empty line, checking each label.

    Raises:
      ValueError: a line without a tab-separated integer label, naming file and line number.
    """
    file_ids, offsets = [], []
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
                try:
                    int(parts[1])
                except ValueError:
                    raise ValueError("%s:%d: label %r is not an integer"
                                     % (path, lineno, parts[1][:20])) from None
                file_ids.append(i)
                offsets.append(start)
    return np.asarray(file_ids, np.int32), np.asarray(offsets, np.int64)


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


def _read_line(handle, offset):
    handle.seek(offset)
    text = handle.readline().strip()
    b64, label = text.split(b"\t")
    return b64 + b"\t" + str(int(label)).encode() + b"\n"


def process(data_dir, file_list, nranks, output_dir=None, seed=0, log=print):
    """Runs the tool; returns the list of written files."""
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
    output_dir = output_dir or os.path.join(data_dir, "shuffled_%d" % nranks)
    os.makedirs(output_dir, exist_ok=True)
    outputs = [os.path.join(output_dir, "part-%05d-of-%05d.txt" % (r, nranks))
               for r in range(nranks)]
    protected = {os.path.realpath(p) for p in inputs + [list_path]}
    clash = [p for p in outputs + [os.path.join(output_dir, "file_list.txt")]
             if os.path.realpath(p) in protected]
    if clash:
        raise ValueError("output %s would overwrite an input; choose another --output_dir"
                         % clash[0])

    file_ids, offsets = index_lines(inputs)
    order, per_rank, padding = plan(len(offsets), nranks, seed)
    log("%d lines in %d file(s); %d per worker file; %d padding line(s) repeated"
        % (len(offsets), len(inputs), per_rank, padding))
    handles = [open(p, "rb") for p in inputs]
    try:
        for r, out in enumerate(outputs):
            with open(out + ".tmp", "wb") as f:
                for k in order[r * per_rank:(r + 1) * per_rank]:
                    f.write(_read_line(handles[file_ids[k]], offsets[k]))
            os.replace(out + ".tmp", out)
    finally:
        for h in handles:
            h.close()
    list_out = os.path.join(output_dir, "file_list.txt")
    with open(list_out + ".tmp", "w", encoding="utf-8") as f:
        f.write("".join(os.path.basename(p) + "\n" for p in outputs))
    os.replace(list_out + ".tmp", list_out)
    log("wrote %s and %s" % (", ".join(os.path.basename(p) for p in outputs), list_out))
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
    args = parser.parse_args(argv)
    try:
        process(args.data_dir, args.file_list, args.nranks, args.output_dir, args.seed)
    except (ValueError, FileNotFoundError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
