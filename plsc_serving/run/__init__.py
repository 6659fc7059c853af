"""PLSC's server: ``from plsc_serving.run import PLSCServer``.

    fs = PLSCServer()
    fs.with_model(model_path='/abs/path/inference_model')
    fs.run(gpu_index=0, port=8010)          # serves until Ctrl-C / SIGTERM

Each ``run`` starts the model server of :mod:`images.serving` (``python -m images.serving``) in
a process of its own.  PLSC's ``port`` is its HTTP port (``--rest_api_port``): PLSC's route
``/FaceClassifyService/inference`` (what ``face_service.FaceService`` sends) beside TF Serving's
REST API, with the model named ``face``.  The server's gRPC API listens on a UNIX socket in a
private directory (``show_conf`` says where) instead of TCP port 8500, so several PLSC servers,
or one beside a TF Serving-style server, never share a gRPC port.  PLSC's server downloaded Paddle
Serving binaries; this one serves the SavedModel that ``Entry.convert_for_prediction`` exports.
``with_gpu=True`` (PLSC's default) uses GPU ``gpu_index`` when TensorFlow sees one and says so
when it serves on the CPU instead.
"""
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

log = logging.getLogger("fastnn.serving")

MODEL_NAME = "face"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _is_saved_model(path):
    return any(os.path.isfile(os.path.join(path, n)) for n in ("saved_model.pb",
                                                                "saved_model.pbtxt"))


def _is_base(path):
    return os.path.isdir(path) and any(
        n.isdigit() and _is_saved_model(os.path.join(path, n)) for n in os.listdir(path))


def resolve_model_path(model_path):
    """The TF-Serving base path (numbered versions) to serve for ``model_path``: a SavedModel
    version folder, a base path, or a model save dir holding ``serving/`` (where
    ``Entry.convert_for_prediction`` exports).  A single version folder is served through a
    private base path that links it as version 1.

    Raises:
      FileNotFoundError: no SavedModel there (the message says how to make one).
    """
    if not model_path:
        raise FileNotFoundError("with_model needs model_path: the folder "
                                "Entry.convert_for_prediction exported to")
    path = os.path.abspath(model_path)
    if _is_saved_model(path):
        base = tempfile.mkdtemp(prefix="plsc_serving_")
        os.symlink(path, os.path.join(base, "1"))
        return base
    for candidate in (path, os.path.join(path, "serving")):
        if _is_base(candidate):
            return candidate
    raise FileNotFoundError(
        "%s holds no SavedModel (saved_model.pb), no numbered versions of one and no serving/ "
        "folder: export the model with Entry.convert_for_prediction() and pass its folder"
        % path)


class PLSCServer:
    """PLSC's ``PLSCServer`` (serving/server/plsc_serving/run).

    Args:
      with_gpu: serve on a GPU when TensorFlow sees one (PLSC's default True); False keeps the
        server on the CPU.
    """

    def __init__(self, with_gpu=True):
        self.with_gpu_flag = bool(with_gpu)
        self.p_list = []
        self.ports = []
        self.run_m = False
        self.model_path = None
        self.base_path = None
        self.host = "0.0.0.0"
        self.socket_dir = None
        # stop() may come from another thread while run_multi is still starting servers: it
        # must end those too, and the start-up wait must not take their exit for a crash.
        self._lock = threading.Lock()
        self._stopped = False

    def with_model(self, model_path=None):
        """Sets the model to serve (see :func:`resolve_model_path`)."""
        self.base_path = resolve_model_path(model_path)
        self.model_path = os.path.abspath(model_path)
        return 0

    def get_path(self):
        """The base path the server serves (numbered SavedModel versions)."""
        return self.base_path

    def get_model(self, model_name):
        """PLSC downloaded Paddle inference models by name; there are none for this server."""
        raise ValueError("get_model(%r): PLSC's downloadable Paddle models do not run here; "
                         "export your model with Entry.convert_for_prediction() and pass its "
                         "folder to with_model" % (model_name,))

    def show_conf(self):
        """Prints and returns the configuration."""
        conf = {"model_path": self.model_path, "base_path": self.base_path,
                "model_name": MODEL_NAME, "with_gpu": self.with_gpu_flag,
                "gpu_visible": self._gpu_visible(), "ports": list(self.ports),
                "grpc": ["unix:" + self.grpc_socket(port) for port in self.ports],
                "routes": ["/FaceClassifyService/inference", "/v1/models/%s:predict"
                           % MODEL_NAME]}
        for key, value in conf.items():
            print("%s: %s" % (key, value))
        return conf

    @staticmethod
    def _gpu_visible():
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=10)
            return out.returncode == 0 and "GPU" in out.stdout
        except (OSError, subprocess.SubprocessError):
            return False

    def grpc_socket(self, port):
        """The UNIX socket of the gRPC API of the server on HTTP ``port``."""
        if self.socket_dir is None:
            # Short (a socket path has at most 107 bytes) and private to this object.
            self.socket_dir = tempfile.mkdtemp(prefix="plsc_grpc_")
        return os.path.join(self.socket_dir, "%d.sock" % int(port))

    def command(self, port):
        """The model server's command line for HTTP ``port``."""
        if self.base_path is None:
            raise ValueError("no model: call with_model(model_path=...) before run")
        return [sys.executable, "-m", "images.serving", "--model_base_path=" + self.base_path,
                "--model_name=" + MODEL_NAME, "--plsc_model_name=" + MODEL_NAME,
                "--rest_api_port=%d" % int(port), "--port=0",
                "--grpc_socket_path=" + self.grpc_socket(port), "--host=" + self.host]

    def _start(self, gpu_index, port):
        cmd = self.command(port)
        if int(port) in self.ports:
            raise ValueError("this PLSCServer already serves on port %d; pick another port"
                             % int(port))
        _check_port_free(self.host, int(port))
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if self.with_gpu_flag and self._gpu_visible():
            env["CUDA_VISIBLE_DEVICES"] = str(int(gpu_index))
            where = "GPU %d" % int(gpu_index)
        else:
            env["CUDA_VISIBLE_DEVICES"] = ""
            where = "the CPU" + (" (no GPU visible)" if self.with_gpu_flag else "")
        with self._lock:
            if self._stopped:
                return None
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
            self.p_list.append(proc)
            self.ports.append(int(port))
        print("Start serving on %s port = %d" % (where, int(port)), flush=True)
        self._wait_ready(proc, int(port))
        return proc

    def _wait_ready(self, proc, port, timeout=300.0):
        import httpx
        deadline = time.time() + timeout
        url = "http://127.0.0.1:%d/v1/models/%s" % (port, MODEL_NAME)
        while time.time() < deadline:
            if proc.poll() is not None:
                if self._stopped:  # ended by stop(), not crashed
                    return
                raise RuntimeError("the model server on port %d exited with %d (see its log "
                                   "above)" % (port, proc.returncode))
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the model server on port %d did not answer in %.0f s"
                           % (port, timeout))

    def run(self, gpu_index=0, port=8866):
        """Starts a server on ``port`` and, unless called by :meth:`run_multi`, serves until
        Ctrl-C or SIGTERM, then stops it."""
        if self.run_m:
            self._start(gpu_index, port)
            return 0
        self._stopped = False
        try:
            self._start(gpu_index, port)
        except BaseException:
            self.stop()
            raise
        self.hold()
        return 0

    def run_multi(self, gpu_index_list=[], port_list=[]):  # noqa: B006  (PLSC's signature)
        """Starts one server per port (on the GPU of the same position with ``with_gpu``), then
        serves until Ctrl-C or SIGTERM."""
        if len(port_list) < 1:
            raise ValueError("run_multi needs at least one port in port_list")
        if self.with_gpu_flag and len(gpu_index_list) != len(port_list):
            raise ValueError("run_multi with with_gpu=True takes as many gpu_index_list entries "
                             "as ports (%d != %d)" % (len(gpu_index_list), len(port_list)))
        self.run_m = True
        self._stopped = False
        try:
            for i, port in enumerate(port_list):
                if self._stopped:
                    break
                self.run(gpu_index=gpu_index_list[i] if self.with_gpu_flag else 0, port=port)
        except BaseException:
            self.stop()
            raise
        self.hold()
        return 0

    def hold(self):
        """Waits until Ctrl-C or SIGTERM (or every server has exited), then stops the servers."""
        previous = None
        try:
            previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        except ValueError:  # not the main thread: Ctrl-C only
            pass
        try:
            while any(p.poll() is None for p in self.p_list):
                time.sleep(0.5)
            if not self._stopped:
                log.warning("every model server has exited")
        except KeyboardInterrupt:
            print("Server is going to quit", flush=True)
        finally:
            self.stop()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def stop(self, timeout=30.0):
        """Stops every server this object started (SIGTERM: requests in flight finish)."""
        with self._lock:
            self._stopped = True
            procs = list(self.p_list)
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.p_list = []
        self.ports = []
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None


def _check_port_free(host, port):
    """Raises OSError when ``port`` is taken: otherwise the server that holds it could answer the
    readiness check of the one being started, which would then exit unnoticed."""
    import socket
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            sock.bind((host, port))
        except OSError as e:
            raise OSError(e.errno, "port %d on %s is in use (%s): pick another port for "
                                   "PLSCServer.run" % (port, host, e.strerror)) from None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt()
