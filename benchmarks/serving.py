#!/usr/bin/env python
"""Model server throughput and latency, REST and gRPC, batching on and off; prints tables.

    python benchmarks/serving.py            # lenet and resnet_v1_50, concurrency 1, 8, 32
    python benchmarks/serving.py --quick    # shorter runs

Each model is exported by the project's exporter (images/export.py) from a randomly initialised
checkpoint (the weights do not change the cost) and served by two ``python -m images.serving``
subprocesses at once, one with ``--enable_batching`` (every batching parameter at its default)
and one without.  Closed-loop clients (driven by asyncio in one thread) send one encoded image
per request for a fixed time: over REST, one keep-alive connection each posting ``:predict``;
over gRPC, one channel each calling ``PredictionService/Predict`` with TF Serving's protos.
Requests/s counts the requests completed in that window, latencies are per request as the client
sees them.  The windows alternate between the two servers (on, off, then off, on, ...), so a
change in the machine's load hits both alike; the second table divides batching on by off.
"mean batch" is the examples per model call, from the server's counters.  Client and servers
share the machine's cores.
"""
import argparse
import asyncio
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.common import print_table  # noqa: E402  (sets TF_CPP_MIN_LOG_LEVEL)

import grpc  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402

# model name -> (classes, side of the request image, image format)
MODELS = {"lenet": (10, 28, "PNG"), "resnet_v1_50": (1000, 224, "JPEG")}
CONCURRENCY = (1, 8, 32)
PROTOCOLS = ("REST", "gRPC")
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"


def export_model(model_name, num_classes, workdir):
    """Exports a random-weight checkpoint of ``model_name``; returns the model base path."""
    import tensorflow.compat.v1 as tf
    from images import export
    from images.models import model_factory
    ckpt = os.path.join(workdir, model_name + "-ckpt", "model.ckpt")
    os.makedirs(os.path.dirname(ckpt), exist_ok=True)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        network_fn = model_factory.get_network_fn(model_name, num_classes)
        size = network_fn.default_image_size
        network_fn(tf.placeholder(tf.float32, [1, size, size, 3]))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver().save(sess, ckpt)
    base = os.path.join(workdir, model_name)
    export.export(model_name, ckpt, base, num_classes=num_classes)
    return base


def encoded_image(side, fmt):
    """A random ``side`` x ``side`` RGB image in format ``fmt`` (PNG, JPEG)."""
    from PIL import Image
    pixels = np.random.RandomState(0).randint(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def request_body(side, fmt):
    """The REST ``:predict`` body: one image in the row format."""
    data = base64.b64encode(encoded_image(side, fmt)).decode()
    return json.dumps({"instances": [{"b64": data}]}).encode()


def grpc_request(model_name, side, fmt):
    """A serialized ``PredictRequest`` with one image as its ``image_bytes`` input."""
    from tensorflow_serving.apis import predict_pb2
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    tensor = request.inputs["image_bytes"]
    tensor.dtype = 7  # DT_STRING
    tensor.tensor_shape.dim.add().size = 1
    tensor.string_val.append(encoded_image(side, fmt))
    return request.SerializeToString()


def start_server(base, model_name, port, grpc_port, batching, log_path):
    monitoring = os.path.join(os.path.dirname(log_path), "monitoring.config")
    with open(monitoring, "w") as f:
        f.write("prometheus_config { enable: true }\n")
    cmd = [sys.executable, "-m", "images.serving", "--model_base_path=" + base,
           "--model_name=" + model_name, "--host=127.0.0.1", "--rest_api_port=%d" % port,
           "--port=%d" % grpc_port, "--monitoring_config_file=" + monitoring,
           "--file_system_poll_wait_seconds=0", "--enable_batching=%s" % str(batching).lower()]
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=log,
                            stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited:\n" + open(log_path).read()[-3000:])
        try:
            if httpx.get("%s/v1/models/%s" % (url, model_name), timeout=2).status_code == 200:
                return proc, url, "127.0.0.1:%d" % grpc_port
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start:\n" + open(log_path).read()[-3000:])


def counters(url):
    """Model calls and examples run so far, from the server's Prometheus metrics."""
    values = {"batches": 0.0, "rows": 0.0}
    name = ":tensorflow:serving:batching_session:processed_batch_size"
    for line in httpx.get(url + "/monitoring/prometheus/metrics").text.splitlines():
        for key, suffix in (("batches", "_count{"), ("rows", "_sum{")):
            if line.startswith(name + suffix):
                values[key] = float(line.rsplit(" ", 1)[1])
    return values


async def _connection(host, port, request, start, stop, latencies, errors):
    """One keep-alive connection sending ``request`` back to back until ``stop``.

    A minimal HTTP/1.1 client: the benchmark should measure the server, and a full client
    library in Python costs about as much CPU per request as the server does.  Requests that
    complete inside ``[start, stop]`` are counted, with their latencies.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            t0 = time.monotonic()
            if t0 >= stop:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(int(line.split(":", 1)[1]) for line in lines
                          if line.lower().startswith("content-length:"))
            await reader.readexactly(length)
            t1 = time.monotonic()
            if lines[0].split()[1] != "200":
                errors.append(lines[0])
            elif start <= t1 <= stop:
                latencies.append(t1 - t0)
    finally:
        writer.close()


async def _channel(target, request, start, stop, latencies, errors):
    """One gRPC channel calling Predict with ``request`` back to back until ``stop``.

    Requests and replies travel as bytes (no serializer): the client spends no CPU on protos.
    """
    async with grpc.aio.insecure_channel(target) as channel:
        predict = channel.unary_unary(PREDICT_METHOD)
        while True:
            t0 = time.monotonic()
            if t0 >= stop:
                return
            try:
                await predict(request, timeout=600)
            except grpc.aio.AioRpcError as e:
                errors.append(e.code().name)
                continue
            t1 = time.monotonic()
            if start <= t1 <= stop:
                latencies.append(t1 - t0)


class Cell:
    """Completed requests, latencies and batching counters, summed over measuring windows."""

    def __init__(self):
        self.seconds, self.latencies, self.errors, self.batches, self.rows = 0.0, [], 0, 0, 0

    def row(self):
        ms = np.array(self.latencies) * 1000.0
        return [len(ms) / self.seconds, float(np.percentile(ms, 50)),
                float(np.percentile(ms, 99)),
                self.rows / self.batches if self.batches else float("nan"), self.errors]


def drive(url, model_name, body, concurrency, duration, warmup, cell, grpc_target=None):
    """Closed-loop load for ``warmup + duration`` seconds; adds the measured window to ``cell``.

    Over REST ``body`` is the ``:predict`` JSON; with ``grpc_target`` it is a serialized
    ``PredictRequest`` sent there.  ``url`` (REST) is where the server's counters are read.
    """
    host, port = url.split("://", 1)[1].split(":")
    request = ("POST /v1/models/%s:predict HTTP/1.1\r\nHost: %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (model_name, host, len(body))).encode() + body
    errors, before = [], {}

    async def run():
        start = time.monotonic() + warmup
        stop = start + duration
        if grpc_target:
            clients = [_channel(grpc_target, body, start, stop, cell.latencies, errors)
                       for _ in range(concurrency)]
        else:
            clients = [_connection(host, int(port), request, start, stop, cell.latencies,
                                   errors) for _ in range(concurrency)]
        tasks = [asyncio.ensure_future(client) for client in clients]
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        before.update(await asyncio.get_running_loop().run_in_executor(None, counters, url))
        await asyncio.sleep(max(0.0, stop - time.monotonic()))
        after = await asyncio.get_running_loop().run_in_executor(None, counters, url)
        cell.batches += after["batches"] - before["batches"]
        cell.rows += after["rows"] - before["rows"]
        await asyncio.gather(*tasks)

    asyncio.run(run())
    cell.seconds += duration
    cell.errors += len(errors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated, from: %s" % ", ".join(MODELS))
    parser.add_argument("--protocols", default=",".join(PROTOCOLS),
                        help="comma-separated, from: %s" % ", ".join(PROTOCOLS))
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)),
                        help="comma-separated client counts")
    parser.add_argument("--duration", type=float, default=6.0,
                        help="seconds measured per window")
    parser.add_argument("--repeats", type=int, default=3,
                        help="windows per cell, alternating batching on and off")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds of load before each window, not counted")
    parser.add_argument("--quick", action="store_true", help="one 2 s window per cell")
    parser.add_argument("--port", type=int, default=18777, help="first of four ports")
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error("unknown model(s) %s; choose from %s" % (unknown, ", ".join(MODELS)))
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if not protocols or set(protocols) - set(PROTOCOLS):
        parser.error("--protocols takes %s; got %r" % (", ".join(PROTOCOLS), args.protocols))
    try:
        concurrencies = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        parser.error("--concurrency takes comma-separated integers; got %r" % args.concurrency)
    if args.quick:
        args.duration, args.repeats, args.warmup = 2.0, 1, 1.0
    workdir = tempfile.mkdtemp(prefix="fastnn-serving-bench-")
    load_before = os.getloadavg()[0]
    rows, ratios = [], []
    try:
        for name in names:
            num_classes, side, fmt = MODELS[name]
            base = export_model(name, num_classes, workdir)
            payloads = {"REST": request_body(side, fmt), "gRPC": grpc_request(name, side, fmt)}
            # Both servers run at once and the windows alternate between them, so a change in
            # the machine's load hits both alike.
            servers = {}
            try:
                for i, batching in enumerate((True, False)):
                    servers[batching] = start_server(
                        base, name, args.port + 2 * i, args.port + 2 * i + 1, batching,
                        os.path.join(workdir, "%s-%s.log" % (name, batching)))
                for concurrency in concurrencies:
                    for protocol in protocols:
                        cells = {batching: Cell() for batching in servers}
                        for repeat in range(args.repeats):
                            # on, off; then off, on: neither always follows the other
                            order = list(servers.items())[::1 if repeat % 2 == 0 else -1]
                            for batching, (_, url, target) in order:
                                drive(url, name, payloads[protocol], concurrency, args.duration,
                                      args.warmup, cells[batching],
                                      target if protocol == "gRPC" else None)
                        for batching, cell in cells.items():
                            row = [name, protocol, "on" if batching else "off",
                                   concurrency] + cell.row()
                            rows.append(row)
                            print("%s %s batching=%s c=%d: %.1f req/s p50 %.1f ms p99 %.1f ms "
                                  "batch %.2f errors %d" % tuple(row), flush=True)
                        on, off = cells[True].row(), cells[False].row()
                        ratios.append([name, protocol, concurrency, on[0] / off[0],
                                       off[1] / on[1]])
            finally:
                for proc, _, _ in servers.values():
                    proc.terminate()
                    proc.wait(60)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table("Serving: one %s image per request (%d x %g s per cell, %d cores)"
                % ("/".join("%s %dx%d" % (MODELS[n][2], MODELS[n][1], MODELS[n][1])
                            for n in names), args.repeats, args.duration, os.cpu_count() or 0),
                ["model", "protocol", "batching", "clients", "requests/s", "p50 ms", "p99 ms",
                 "mean batch", "errors"], rows)
    print_table("Batching on / off (goal: >= 0.95 at 1 client, >= 1.3 at 32)",
                ["model", "protocol", "clients", "requests/s ratio", "p50 latency ratio (off/on)"],
                ratios)
    print("\nmean batch: examples per model call (server counters). Machine load average "
          "(1 min): %.1f at the start, %.1f at the end; other work on the machine shows as noise."
          % (load_before, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
