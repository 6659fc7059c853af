#!/usr/bin/env python
"""Training throughput benchmarks; each ``--suite`` prints one Markdown table.

    python benchmarks/train_throughput.py                 # every suite
    python benchmarks/train_throughput.py --suite=keras   # one suite

Suites live in ``benchmarks/suite_<name>.py`` and expose ``run(args)``.
"""
import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SUITES = ("keras", "zoo", "precision", "onednn", "horovod", "xla")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", choices=SUITES,
                        help="suite(s) to run (default: all present)")
    parser.add_argument("--quick", action="store_true", help="fewer steps (smoke run)")
    args = parser.parse_args()
    for name in args.suite or SUITES:
        try:
            module = importlib.import_module("benchmarks.suite_" + name)
        except ModuleNotFoundError as e:
            if args.suite:
                raise
            print("(suite %s not available: %s)" % (name, e))
            continue
        module.run(args)


if __name__ == "__main__":
    main()
