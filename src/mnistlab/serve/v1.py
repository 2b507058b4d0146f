"""The service's own API: ``/healthz``, ``/v1/model``, ``/v1/predict`` and ``/metrics``.

    curl -s localhost:8000/v1/predict -H 'content-type: image/png' --data-binary @seven.png
    {"digit": 7, "label": "7", "probabilities": [...], "top_k": [...], "latency_ms": 0.9}

``digit`` is the class index (named so for the first clients, kept for them) and ``label`` the
class name from the run (``"7"`` for MNIST, ``"Ankle boot"`` for Fashion-MNIST). Uploaded pictures
go through the preprocessing of the served run's data set.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mnistlab.serve import compute
from mnistlab.serve.model import check_pixels_fit
from mnistlab.serve.parsing import ApiError, has_bool_token, image_bytes_to_images, parse_json, pixels_to_images

TOP_K = 3
# Formats that hold programs or are handed to interpreters: refused by type, never opened.
REFUSED_TYPES = ("image/svg+xml", "image/x-eps", "image/eps", "application/postscript")

router = APIRouter()

PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["pixels"],
            "properties": {"pixels": {
                "description": "one preprocessed 28×28 image (784 numbers or 28 rows of 28, 0–255, light object on black) "
                               "or a list of such images (at most --max-batch, 256 by default)",
                "type": "array", "items": {}}}}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    },
}


def answer(probs: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """One image's answer: class index (``digit``), class name (``label``), probabilities, the top ``TOP_K``."""
    order = np.argsort(-probs)[:TOP_K]
    k = int(order[0])
    return {"digit": k, "label": class_names[k], "probabilities": [round(float(p), 6) for p in probs],
            "top_k": [{"digit": int(i), "label": class_names[int(i)], "probability": round(float(probs[i]), 6)}
                      for i in order]}


async def _read_upload(request: Request) -> tuple[bytes, str]:
    try:
        form = await request.form(max_files=1, max_fields=8)
    except StarletteHTTPException as exc:  # python-multipart's complaint about a malformed body
        raise ApiError(422, f"file: malformed multipart body ({exc.detail})") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ApiError(422, "file: missing; send the image as the multipart field 'file'")
    if (upload.content_type or "").lower() in REFUSED_TYPES:
        raise ApiError(415, f"file: {upload.content_type} is not accepted; send a PNG, JPEG, WebP, BMP or GIF")
    return await upload.read(), upload.filename or "file"


async def _images(request: Request, settings) -> tuple[np.ndarray, bool, list[str]]:
    dataset = request.app.state.holder.dataset
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        data, name = await _read_upload(request)
        images, notes = await request.app.state.decodes.run(image_bytes_to_images, data, name, dataset,
                                                            timeout_s=settings.timeout_s)
        return images, True, notes
    if ctype in REFUSED_TYPES:
        raise ApiError(415, f"content-type: {ctype} is not accepted; send a PNG, JPEG, WebP, BMP or GIF")
    if ctype.startswith("image/"):
        data = await request.body()
        images, notes = await request.app.state.decodes.run(image_bytes_to_images, data, "body", dataset,
                                                            timeout_s=settings.timeout_s)
        return images, True, notes
    if ctype in ("", "application/json") or ctype.endswith("+json"):
        body = await request.body()
        obj = parse_json(body)
        if not isinstance(obj, dict) or "pixels" not in obj:
            raise ApiError(422, 'pixels: missing; send {"pixels": [784 numbers 0-255]} or an image')
        check_pixels_fit(request.app.state.holder, "pixels")
        images, single = pixels_to_images(obj["pixels"], "pixels", max_batch=settings.max_batch,
                                          may_hold_bools=has_bool_token(body))
        return images, single, []
    raise ApiError(422, f"content-type: {ctype!r} is not accepted; send application/json, image/* "
                        "or multipart/form-data with a field 'file'")


@router.get("/healthz", summary="liveness and readiness: 200 once the model is loaded")
async def healthz(request: Request):
    return {"status": "ok", "model": request.app.state.holder.name}


@router.get("/v1/model", summary="what the service classifies with")
async def model_info(request: Request):
    return request.app.state.holder.info | {"backend": request.app.state.holder.backend}


FLAGS = {"explain": "add gradcam_png, a base64 28×28 Grad-CAM PNG (one model's run, PyTorch or Keras)",
         "include_input": "add input, the 28×28 image the model saw"}
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None or value.lower() in FALSE:
        return False
    if value.lower() in TRUE:
        return True
    raise ApiError(422, f"{name}: {value[:40]!r} is not true or false")


# Query flags are read by hand rather than declared: FastAPI's per-request parameter solving
# costs more than classifying one image.
@router.post("/v1/predict", summary="classify one image or a batch", openapi_extra={
    "requestBody": PREDICT_BODY,
    "parameters": [{"name": k, "in": "query", "required": False, "description": d, "schema": {"type": "boolean"}}
                   for k, d in FLAGS.items()]})
async def predict(request: Request):
    """An image file (multipart field ``file`` or an ``image/*`` body) or JSON ``{"pixels": ...}``.

    ``explain=true`` adds ``gradcam_png`` (base64, 28×28) for one model's run; ``include_input=true``
    adds ``input``, the 28×28 image the model saw.
    """
    start = time.perf_counter()
    holder, settings = request.app.state.holder, request.app.state.settings
    explain, include_input = flag(request, "explain"), flag(request, "include_input")
    images, single, notes = await _images(request, settings)
    probs = await compute.probabilities(request.app.state, images, settings.timeout_s)
    request.app.state.metrics.count_images(len(images))
    results = [answer(p, holder.class_names) for p in probs]
    if single:
        result = results[0]
        if explain:
            result["gradcam_png"] = await compute.in_thread(holder.gradcam_png, images[0], result["digit"],
                                                            timeout_s=settings.timeout_s)
            if result["gradcam_png"] is None:
                notes.append("Grad-CAM needs one model's run, not an ensemble, and its explain extra "
                             "(pip install 'mnistlab[explain]')")
        if include_input:
            result["input"] = images[0].tolist()
        if notes:
            result["warnings"] = notes
        result["latency_ms"] = round((time.perf_counter() - start) * 1000, 3)
        return JSONResponse(result)
    ms = round((time.perf_counter() - start) * 1000, 3)
    return JSONResponse({"predictions": [r | {"latency_ms": ms} for r in results], "latency_ms": ms})


@router.get("/metrics", summary="Prometheus text format", response_class=Response)
async def metrics(request: Request):
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
