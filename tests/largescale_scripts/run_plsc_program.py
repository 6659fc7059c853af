"""Runs a PLSC program (tests/largescale_scripts/plsc_programs) as ``__main__``.

    python run_plsc_program.py '{"model_name": "lenet", ...}' PROGRAM.py [ARGS...]

The JSON updates ``plsc.config.config`` first (PLSC's module of defaults), so the programs run
as written on a network small enough for the tests.  ARGS become the program's ``sys.argv[1:]``.
"""
import json
import os
import runpy
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    if settings:
        import plsc.config
        plsc.config.config.update(settings)
    program = sys.argv[2]
    sys.argv = [program] + sys.argv[3:]
    runpy.run_path(program, run_name="__main__")
