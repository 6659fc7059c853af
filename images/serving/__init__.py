"""Model serving: a TensorFlow-Serving-compatible REST server and its clients.

    python -m images.serving --model_base_path=DIR --model_name=NAME --port=8501

The server (:mod:`images.serving.app`, :mod:`images.serving.manager`) loads SavedModels from TF
Serving's numbered layout ``DIR/<version>/saved_model.pb``; the clients
(:mod:`images.serving.client`) speak HTTP and never call TensorFlow.  See docs/serving.md.
"""
