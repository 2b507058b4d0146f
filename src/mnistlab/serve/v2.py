"""The Open Inference Protocol (KServe v2 REST), so Triton/KServe clients work unchanged.

    curl -s localhost:8000/v2/models/simple/infer -d '{"inputs": [{"name": "images",
         "shape": [1, 784], "datatype": "UINT8", "data": [0, 0, ...]}]}'

The model name is the run directory's name. Input ``images``: ``[N, 28, 28]``, ``[N, 1, 28, 28]``
or ``[N, 784]``, UINT8 0–255 or FP32 0–1, the data set's own form (light object on black, as
``/v1/predict?include_input=true`` shows); ``data`` flat row-major or nested, or raw
little-endian bytes after the JSON header (the binary tensor extension:
``Inference-Header-Content-Length`` and ``parameters.binary_data_size``). Outputs
``probabilities`` (FP32 ``[N, 10]``), ``digit`` (INT64 ``[N]``, the class index, named so for
older clients) and ``label`` (BYTES ``[N]``, the class name: ``"7"``, ``"Ankle boot"``), as JSON
or, when asked with ``parameters.binary_data`` (or ``binary_data_output`` on the request), as raw
bytes (BYTES: each element a 4-byte little-endian length, then its UTF-8). Every client mistake
is HTTP 400 ``{"error": "..."}``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from mnistlab.serve import compute
from mnistlab.serve.model import check_pixels_fit, dataset_facts
from mnistlab.serve.parsing import PIXELS, SIDE, ApiError, check_batch, has_bool_token, header_int, numbers, parse_json
from mnistlab.version import __version__

INPUT = "images"
OUTPUTS = {"probabilities": "FP32", "digit": "INT64", "label": "BYTES"}
DTYPES = {"UINT8": (np.uint8, 255), "FP32": (np.dtype("<f4"), 1)}
HEADER_LENGTH = "inference-header-content-length"

router = APIRouter(prefix="/v2")


class InferInput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    shape: list[StrictInt] = Field(min_length=1, max_length=4)
    datatype: str
    data: Any = None
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None
    parameters: dict[str, Any] | None = None


_TENSOR = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"},
                                                                  "parameters": {"type": "object"}}}
INFER_SCHEMA = {  # written out (no $refs) so the OpenAPI document stands alone
    "type": "object", "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "shape", "datatype", "data"],
            "properties": {"name": {"type": "string", "enum": [INPUT]},
                           "shape": {"type": "array", "items": {"type": "integer"}},
                           "datatype": {"type": "string", "enum": list(DTYPES)},
                           "data": {"type": "array", "items": {}},
                           "parameters": {"type": "object"}}}},
        "outputs": {"type": "array", "items": _TENSOR},
        "parameters": {"type": "object"},
    },
}


def _holder(request: Request, name: str, version: str | None = None):
    holder = request.app.state.holder
    if name != holder.name or version not in (None, "1"):
        raise ApiError(404, f"unknown model {name!r} (version {version or 'any'}); this server has {holder.name!r} version 1")
    return holder


def _parse(body: bytes, header_length: str | None) -> tuple[InferRequest, bytes, bool]:
    """(the request, the binary part, whether its JSON may hold booleans)."""
    binary = b""
    if header_length is not None:
        length = header_int(header_length)
        if length is None or length > len(body):
            raise ApiError(400, f"{HEADER_LENGTH}: {header_length[:40]!r} is not a length within the body")
        body, binary = body[:length], body[length:]
    obj = parse_json(body)
    # The tensors' data skip pydantic (a copy of every element); _images checks them.
    data = [inp.pop("data", None) if isinstance(inp, dict) else None
            for inp in (obj.get("inputs") if isinstance(obj, dict) and isinstance(obj.get("inputs"), list) else [])]
    try:
        req = InferRequest.model_validate(obj)
        for inp, values in zip(req.inputs, data):
            inp.data = values
        return req, binary, has_bool_token(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        raise ApiError(400, f"{where or 'body'}: {err['msg']}") from None


def _images(inp: InferInput, binary: bytes, max_batch: int, may_hold_bools: bool = True) -> np.ndarray:
    if inp.name != INPUT:
        raise ApiError(400, f"inputs[0].name: unknown input {inp.name!r}; this model's input is {INPUT!r}")
    if inp.datatype not in DTYPES:
        raise ApiError(400, f"inputs[0].datatype: {inp.datatype!r}; send UINT8 (0-255) or FP32 (0-1)")
    shape = inp.shape
    if not (len(shape) >= 2 and shape[1:] in ([SIDE, SIDE], [1, SIDE, SIDE], [PIXELS]) and shape[0] >= 1):
        raise ApiError(400, f"inputs[0].shape: {shape}; send [N, 28, 28], [N, 1, 28, 28] or [N, 784]")
    n = shape[0]
    check_batch(n, "inputs[0].shape", max_batch, status=400)
    dtype, hi = DTYPES[inp.datatype]
    size = (inp.parameters or {}).get("binary_data_size")
    if size is not None:
        expected = n * PIXELS * np.dtype(dtype).itemsize
        if size != expected or len(binary) < expected:
            raise ApiError(400, f"inputs[0].parameters.binary_data_size: {size!r}; {shape} {inp.datatype} is {expected} bytes")
        x = np.frombuffer(binary[:expected], dtype=dtype).astype(np.float32)
        if not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= hi):
            raise ApiError(400, f"inputs[0]: values must lie in 0-{hi} for {inp.datatype}")
    else:
        try:
            x = numbers(inp.data, "inputs[0].data", hi=hi, integers=inp.datatype == "UINT8",
                        may_hold_bools=may_hold_bools)
        except ApiError as exc:
            raise ApiError(400, exc.message) from None
        if x.size != n * PIXELS or (x.ndim > 1 and list(x.shape) != shape):
            raise ApiError(400, f"inputs[0].data: {x.size} values in shape {list(x.shape)} do not fill shape {shape}")
    x = x.reshape(n, SIDE, SIDE)
    return (x if hi == 255 else np.rint(x * 255)).astype(np.uint8)


def _bytes_tensor(values: list[str]) -> bytes:
    """The protocol's binary form of a BYTES tensor: per element, a uint32 LE length, then the bytes."""
    encoded = [v.encode("utf-8") for v in values]
    return b"".join(len(e).to_bytes(4, "little") + e for e in encoded)


def _output_value(name: str, probs: np.ndarray, class_names: list[str]) -> tuple[list[int], Any, bytes]:
    """(shape, JSON data, raw bytes) of the output ``name``."""
    if name == "label":
        labels = [class_names[k] for k in probs.argmax(1)]
        return [len(labels)], labels, _bytes_tensor(labels)
    value = probs.astype("<f4") if name == "probabilities" else probs.argmax(1).astype("<i8")
    return list(value.shape), value.ravel().tolist(), value.tobytes()


def _outputs(req: InferRequest, probs: np.ndarray, class_names: list[str]) -> tuple[list[dict[str, Any]], bytes]:
    wanted = req.outputs or [RequestedOutput(name=name) for name in OUTPUTS]
    binary_default = bool((req.parameters or {}).get("binary_data_output", False))
    outs, chunks = [], []
    for i, out in enumerate(wanted):
        if out.name not in OUTPUTS:
            raise ApiError(400, f"outputs[{i}].name: unknown output {out.name!r}; choose from {', '.join(OUTPUTS)}")
        shape, data, raw = _output_value(out.name, probs, class_names)
        entry: dict[str, Any] = {"name": out.name, "datatype": OUTPUTS[out.name], "shape": shape}
        if (out.parameters or {}).get("binary_data", binary_default):
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = data
        outs.append(entry)
    return outs, b"".join(chunks)


NAME_PARAMETER = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


# The route reads its path parameters itself: FastAPI's per-request parameter solving costs more
# than classifying one image, and this route is the hot path.
@router.post("/models/{name}/infer", summary="classify a tensor of images",
             openapi_extra={"parameters": [NAME_PARAMETER],
                            "requestBody": {"required": True, "content": {"application/json": {"schema": INFER_SCHEMA}}}})
@router.post("/models/{name}/versions/{version}/infer", include_in_schema=False)
async def infer(request: Request):
    params = request.path_params
    holder, settings = _holder(request, params["name"], params.get("version")), request.app.state.settings
    req, binary, may_hold_bools = _parse(await request.body(), request.headers.get(HEADER_LENGTH))
    if len(req.inputs) != 1:
        raise ApiError(400, f"inputs: {len(req.inputs)} inputs; this model takes one, {INPUT!r}")
    check_pixels_fit(request.app.state.holder, "inputs[0]")
    images = _images(req.inputs[0], binary, settings.max_batch, may_hold_bools)
    probs = await compute.probabilities(request.app.state, images, settings.timeout_s)
    request.app.state.metrics.count_images(len(images))
    outputs, raw = _outputs(req, probs, holder.class_names)
    answer = {"model_name": holder.name, "model_version": "1", "outputs": outputs}
    if req.id is not None:
        answer["id"] = req.id
    if not raw:
        return JSONResponse(answer)
    header = json.dumps(answer).encode()
    return Response(header + raw, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})


@router.get("", summary="server metadata")
async def server_metadata():
    return {"name": "mnistlab", "version": __version__, "extensions": ["binary_tensor_data"]}


@router.get("/health/live", summary="liveness probe")
async def live():
    return {"live": True}


@router.get("/health/ready", summary="readiness probe: the model is loaded")
async def ready(request: Request):
    return {"ready": request.app.state.holder is not None}


def _preprocessing(dataset: str) -> dict[str, Any]:
    """What an ``images`` tensor must already have been through: the run's pipeline, by name."""
    facts = dataset_facts(dataset)
    return {"preprocessing": facts["preprocessing"],
            "form": f"light {facts['subject']} on black, 0-255 (UINT8) or 0-1 (FP32), "
                    "as /v1/predict?include_input=true shows",
            "preprocess_script": "export/preprocess.py in the run (written by mnistlab export --format onnx): "
                                 "to_input(picture) gives FP32 [N, 1, 28, 28]"}


@router.get("/models/{name}", summary="model metadata")
@router.get("/models/{name}/versions/{version}", include_in_schema=False)
async def model_metadata(request: Request, name: str, version: str | None = None):
    holder = _holder(request, name, version)
    return {"name": holder.name, "versions": ["1"],
            "platform": "onnxruntime_onnx" if holder.backend == "onnx" else f"mnistlab_{holder.info['framework']}",
            "inputs": [{"name": INPUT, "datatype": "UINT8", "shape": [-1, SIDE, SIDE],
                        "parameters": _preprocessing(holder.dataset)}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, len(holder.class_names)]},
                        {"name": "digit", "datatype": "INT64", "shape": [-1]},
                        {"name": "label", "datatype": "BYTES", "shape": [-1]}]}


@router.get("/models/{name}/ready", summary="model readiness")
@router.get("/models/{name}/versions/{version}/ready", include_in_schema=False)
async def model_ready(request: Request, name: str, version: str | None = None):
    return {"name": _holder(request, name, version).name, "ready": True}
