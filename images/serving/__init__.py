"""Model serving: a drop-in for TensorFlow Serving's model server (gRPC and REST), and clients.

    python -m images.serving --model_base_path=DIR --model_name=NAME --rest_api_port=8501

The server (:mod:`images.serving.core`, :mod:`images.serving.manager`, the REST API in
:mod:`images.serving.app`, gRPC in :mod:`images.serving.grpc_server`, PLSC's
``/FaceClassifyService/inference`` in :mod:`images.serving.plsc_route`) loads SavedModels from TF
Serving's numbered layout ``DIR/<version>/saved_model.pb``; the clients
(:mod:`images.serving.client`) speak HTTP and never call TensorFlow.  See docs/serving.md.
"""
