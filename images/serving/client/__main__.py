"""Embeds or classifies image files with a running model server; prints one JSON line per file.

    python -m images.serving.client embed --server 127.0.0.1:8501 --model_name face a.jpg b.jpg
    python -m images.serving.client classify --server 127.0.0.1:8501 --model_name lenet \\
        --labels /data/mnist/labels.txt --top_k 3 *.png

``embed`` prints ``{"file": ..., "embedding": [...]}``; ``classify`` prints
``{"file": ..., "classes": [{"class_id": ..., "label": ..., "score": ...}, ...]}``.
``--server`` may be repeated: requests go round-robin over the servers.
"""
import argparse
import json
import sys

from images.serving.client import FaceService, ImageClassifier, ServingError


def _parser():
    parser = argparse.ArgumentParser(prog="python -m images.serving.client",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("embed", "print the embedding of each file (embedding models)"),
                            ("classify", "print the ranked classes of each file")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--server", action="append", required=True,
                         help="HOST:PORT of a server; repeat for round-robin over several")
        sub.add_argument("--model_name", required=True, help="the server's --model_name")
        sub.add_argument("--signature_name", default="serving_default")
        sub.add_argument("--input_name", default="image_bytes",
                         help="the signature's encoded-image input")
        sub.add_argument("--batch_size", type=int, default=32, help="images per request")
        sub.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
        if name == "embed":
            sub.add_argument("--output_name", default="embeddings")
        else:
            sub.add_argument("--labels", help="labels.txt (<id>:<name> lines) to name classes")
            sub.add_argument("--top_k", type=int, default=5, help="classes printed per file")
        sub.add_argument("files", nargs="+", help="encoded images (JPEG, PNG, GIF, BMP)")
    return parser


def _read(paths):
    data = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data.append(f.read())
        except OSError as e:
            raise SystemExit("error: cannot read %s: %s" % (path, e.strerror or e))
    return data


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.batch_size < 1:
        raise SystemExit("error: --batch_size must be at least 1")
    images = _read(args.files)
    if args.command == "embed":
        service = FaceService(args.model_name, args.signature_name, args.input_name,
                              args.output_name, args.batch_size, args.timeout)
    else:
        if args.top_k < 1:
            raise SystemExit("error: --top_k must be at least 1")
        service = ImageClassifier(args.model_name, args.labels, args.signature_name,
                                  args.input_name, args.batch_size, args.timeout)
    for server in args.server:
        service.connect(server)
    try:
        if args.command == "embed":
            rows = [{"file": path, "embedding": [float(x) for x in vector]}
                    for path, vector in zip(args.files, service.encode(images))]
        else:
            rows = [{"file": path, "classes": [p._asdict() for p in ranked]}
                    for path, ranked in zip(args.files,
                                            service.classify(images, top_k=args.top_k))]
    except ServingError as e:
        raise SystemExit("error: %s" % e)
    finally:
        service.close()
    for row in rows:
        sys.stdout.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
