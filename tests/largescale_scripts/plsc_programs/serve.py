# The serving program: PLSCServer on the exported model.  argv: model path, port.
import sys

from plsc_serving.run import PLSCServer

fs = PLSCServer()
fs.with_model(model_path=sys.argv[1])
fs.run(gpu_index=0, port=int(sys.argv[2]))
