"""Model serving: a TensorFlow-Serving-compatible REST server and its clients.

    python -m images.serving --model_base_path=DIR --model_name=NAME --port=8501

The server (:mod:`images.serving.app`, :mod:`images.serving.manager`) loads SavedModels from TF
Serving's numbered layout ``DIR/<version>/saved_model.pb``; the clients
(:mod:`images.serving.client`) do not need TensorFlow.  Importing this package imports nothing
heavy: the server modules import TensorFlow, the client modules do not.
"""
