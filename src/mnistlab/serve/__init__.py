"""The HTTP prediction service (``mnistlab serve``): a drawing page, a JSON API and the Open
Inference Protocol (KServe v2 REST), on FastAPI and uvicorn.

    >>> from fastapi.testclient import TestClient
    >>> from mnistlab.serve.app import create_app
    >>> from mnistlab.serve.settings import ServeSettings
    >>> client = TestClient(create_app(ServeSettings("runs/simple")))     # in-process, no port
    >>> answer = client.post("/v1/predict", json={"pixels": [0] * 784}).json()    # 28 × 28 values 0-255
    >>> sorted(answer)
    ['digit', 'label', 'latency_ms', 'probabilities', 'top_k']

One module per job: ``settings`` (options, the bind-address rule), ``model`` (the run loaded once,
shared read-only), ``parsing`` (request bodies → uint8 images, each mistake a 4xx naming the
field), ``v1`` and ``v2`` (routes), ``guard`` (token, body limit, metrics: one ASGI layer),
``metrics`` (Prometheus text), ``readiness`` (a worker without its model, a run changing on disk),
``app`` (the factory), ``connections`` (time limits on each connection), ``server`` (uvicorn). See docs/serve.md.
"""
