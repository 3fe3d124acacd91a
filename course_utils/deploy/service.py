"""The Fashion-MNIST classifier as an HTTP service: FastAPI routes, validation, and a local uvicorn server.

After *Deep Learning with PyTorch* ch. 15 (a Flask server answering JSON), with FastAPI: pydantic models
validate the requests and give the OpenAPI page at `/docs` for free. The routes:

    GET  /health        {"status": "ok", "classes": 10, "model": meta["arch"]}
    POST /predict       JSON {"pixels": one 28x28 image (28 lists of 28 numbers in [0, 1]) or a list of them}
    POST /predict_raw   the same images as raw little-endian float32 bytes, header `X-Shape: N,28,28` (or `28,28`)

both answered with {"predictions": [{"class": int, "label": str, "probability": float}, ...]}. A bad request is
never a crash: it gets a 4xx with {"detail": "what was wrong; what is expected"} (422 when the JSON does not
parse or does not fit the schema, 400 for a wrong shape, dtype or value, 413 when too large, 404/405 for a
wrong route or method); a full request queue gives 503 "busy". `LocalServer` runs the app for real on
127.0.0.1 in a background thread, silently, and stops it cleanly.
"""

from __future__ import annotations

import ipaddress
import math
import queue
import threading
import time
from collections.abc import Callable

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from torch import nn

from course_utils.models import preprocess

__all__ = ["IMAGE_SIDE", "LocalServer", "Prediction", "PredictRequest", "Predictions", "create_app"]

IMAGE_SIDE = 28
_EXPECTED_JSON = ('{"pixels": one image as 28 lists of 28 numbers in [0, 1], or a list of such images, '
                  'e.g. an (N, 28, 28) array of uint8 pixels / 255 sent as .tolist()}')
_EXPECTED_SHAPE = f"({IMAGE_SIDE}, {IMAGE_SIDE}) for one image or (N, {IMAGE_SIDE}, {IMAGE_SIDE}) for N images"
_ROUTES = "GET /health, POST /predict (JSON) and POST /predict_raw (float32 bytes); the API is described at /docs"


class PredictRequest(BaseModel):
    """The JSON body of POST /predict: `pixels`, one 28x28 image or a list of N of them. Used in 09_deploy."""

    model_config = ConfigDict(extra="forbid")
    pixels: list[list[StrictFloat]] | list[list[list[StrictFloat]]] = Field(
        description="one 28x28 image as 28 lists of 28 numbers in [0, 1], or a list of such images")


class Prediction(BaseModel):
    """One image's answer: the class index, its label and its softmax probability (4 decimals). Used in 09_deploy."""

    class_: int = Field(alias="class")  # `class` is a Python keyword; the JSON says "class"
    label: str
    probability: float


class Predictions(BaseModel):
    """The answer of /predict and /predict_raw: one `Prediction` per image, in order. Used in 09_deploy."""

    predictions: list[Prediction]


def _bad(status: int, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail=detail)


def _where(loc: tuple) -> str:
    """('body', 'pixels', 'list[list[float]]', 3, 1) -> 'pixels[3][1]' (pydantic's union tags dropped)."""
    text = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "[" not in str(part):
            text += f".{part}" if text else str(part)
    return text or "body"


def _describe_validation(errors: list[dict]) -> str:
    """A one-line account of pydantic's errors: up to three distinct places, each with its first message."""
    seen: dict[str, str] = {}
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            return f"the body is not valid JSON ({reason} at character {error['loc'][-1]}); expected {_EXPECTED_JSON}"
        seen.setdefault(_where(tuple(error.get("loc", ()))), error.get("msg", "invalid"))
    parts = [f"{where}: {message}" for where, message in list(seen.items())[:3]]
    more = f" (and {len(seen) - 3} more)" if len(seen) > 3 else ""
    return f"invalid request: {'; '.join(parts)}{more}; expected {_EXPECTED_JSON}"


def _check_count(n: int, max_images: int) -> None:
    if n < 1:
        raise _bad(400, f"no images: got N = {n}; expected {_EXPECTED_SHAPE} with N >= 1")
    if n > max_images:
        raise _bad(413, f"too many images: got {n}; this service takes at most {max_images} per request")


def _images_from_json(pixels: list, max_images: int) -> torch.Tensor:
    """The request's nested lists as an (N, 28, 28) float64 tensor, or a 400/413 saying what is wrong."""
    try:
        x = torch.tensor(pixels, dtype=torch.float64)
    except (ValueError, TypeError) as exc:
        raise _bad(400, f"pixels is ragged (rows of different lengths: {exc}); expected {_EXPECTED_SHAPE}") from None
    got = tuple(x.shape)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3 or tuple(x.shape[1:]) != (IMAGE_SIDE, IMAGE_SIDE):
        raise _bad(400, f"pixels has shape {got}; expected {_EXPECTED_SHAPE}")
    _check_count(x.shape[0], max_images)
    return x


def _parse_shape(x_shape: str | None, max_images: int) -> tuple[int, int, int]:
    expected = f"X-Shape: N,{IMAGE_SIDE},{IMAGE_SIDE} (or {IMAGE_SIDE},{IMAGE_SIDE} for one image)"
    if not x_shape:
        raise _bad(400, f"the X-Shape header is missing; expected {expected}")
    try:
        shape = tuple(int(part) for part in x_shape.split(","))
    except ValueError:
        raise _bad(400, f"X-Shape {x_shape!r} is not a list of integers; expected {expected}") from None
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise _bad(400, f"X-Shape {x_shape!r} is not an image shape; expected {expected}")
    _check_count(shape[0], max_images)
    return shape


def _images_from_bytes(body: bytes, shape: tuple[int, int, int]) -> torch.Tensor:
    expected_bytes = math.prod(shape) * 4
    if len(body) != expected_bytes:
        raise _bad(400, f"the body has {len(body)} bytes, but X-Shape {','.join(map(str, shape))} needs "
                        f"{expected_bytes} (4 bytes per float32 pixel, little-endian)")
    array = np.frombuffer(body, dtype="<f4").reshape(shape)
    return torch.from_numpy(array.astype(np.float64))


def _check_values(x: torch.Tensor) -> None:
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = (~finite).nonzero()[0].tolist()
        raise _bad(400, f"pixels are not finite: image {bad[0]}, row {bad[1]}, column {bad[2]} is "
                        f"{x[tuple(bad)].item()}; expected numbers in [0, 1]")
    low, high = x.min().item(), x.max().item()
    if low < 0 or high > 1:
        raise _bad(400, f"pixels out of range: they span [{low:g}, {high:g}]; expected numbers in [0, 1] "
                        "(divide 0..255 pixels by 255)")


def _too_large(length: str | None, max_body_bytes: int, max_images: int) -> str:
    size = f"{length} bytes, over" if length else "over"
    return f"request body too large: {size} the limit of {max_body_bytes} bytes; send at most {max_images} images"


class _BodyLimit:
    """ASGI middleware: at most `max_body_bytes` per request body, answered with a 413 in JSON.

    A Content-Length over the limit is refused before any byte is read; a body without one (chunked) is
    counted as it arrives. (FastAPI's own `max_body_size` does the same, but answers in plain text.)"""

    def __init__(self, app, max_body_bytes: int, max_images: int):
        self.app, self.max_body_bytes, self.max_images = app, max_body_bytes, max_images

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length")
        if length is not None and not length.strip().isdigit():
            response = JSONResponse({"detail": f"Content-Length {length!r} is not a number of bytes"}, 400)
            return await response(scope, receive, send)
        if length is not None and int(length) > self.max_body_bytes:
            response = JSONResponse({"detail": _too_large(length, self.max_body_bytes, self.max_images)}, 413)
            return await response(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:  # raised inside the route: the exception handlers answer
                    raise _bad(413, _too_large(None, self.max_body_bytes, self.max_images))
            return message

        await self.app(scope, limited_receive, send)


def create_app(model: nn.Module, meta: dict, *, max_images: int = 64, max_body_bytes: int = 1_500_000,
               predict_batch: Callable[[torch.Tensor], torch.Tensor] | None = None) -> FastAPI:
    """A FastAPI app serving `model` (or `predict_batch`) on 28x28 images in [0, 1]. Taught in 09_deploy.

    `meta` gives "mean", "std" (the training normalisation, applied here on the server), "classes" (the
    labels) and optionally "arch" (shown by /health). The model is put in eval mode and runs under
    `torch.inference_mode()` on (N, 1, 28, 28) normalised batches; `predict_batch`, a callable with the same
    contract (a `Batcher`, an ONNX Runtime session wrapped in a function), runs instead when given. At most
    `max_images` images and `max_body_bytes` bytes per request (413 beyond; 1.5 MB leaves room for 64 images of
    float32 pixels written out by `.tolist()`, up to ~23 characters each). JSON must come with `Content-Type:
    application/json` (FastAPI's strict content type, a guard against cross-site requests to a local service).
    See the module docstring for the routes and the errors."""
    missing = [key for key in ("mean", "std", "classes") if key not in meta]
    if missing:
        raise ValueError(f"meta lacks {missing}: create_app needs the normalisation (mean, std) and the class names")
    classes = [str(c) for c in meta["classes"]]
    normalisation = {"mean": float(meta["mean"]), "std": float(meta["std"])}
    model.eval()
    forward = model if predict_batch is None else predict_batch

    def predict(images: torch.Tensor) -> dict:
        """(N, 28, 28) float64 images in [0, 1] -> the response dict (runs in a worker thread)."""
        _check_values(images)
        x = preprocess(images, normalisation)
        try:
            with torch.inference_mode():
                logits = forward(x)
                probabilities = torch.softmax(torch.as_tensor(logits).float(), dim=1)
        except queue.Full as exc:  # a Batcher's Busy, or any other full queue
            text = str(exc) if str(exc).startswith("busy") else "busy: the request queue is full; try again later"
            raise HTTPException(503, detail=text, headers={"Retry-After": "1"}) from None
        except Exception as exc:  # the service stays up; the caller learns what failed
            raise _bad(500, f"prediction failed: {type(exc).__name__}: {str(exc)[:300]}") from None
        if tuple(probabilities.shape) != (len(x), len(classes)):
            raise _bad(500, f"the model returned shape {tuple(probabilities.shape)} for {len(x)} images; "
                            f"expected ({len(x)}, {len(classes)})")
        best, index = probabilities.max(dim=1)
        return {"predictions": [{"class": i, "label": classes[i], "probability": round(p, 4)}
                                for i, p in zip(index.tolist(), best.tolist())]}

    app = FastAPI(title="Fashion-MNIST classifier", version="1.0",
                  description="Course 09_deploy: a small CNN behind FastAPI. Images are 28x28, values in [0, 1].")

    app.add_middleware(_BodyLimit, max_body_bytes=max_body_bytes, max_images=max_images)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        if isinstance(exc.body, bytes) and exc.body:  # a body FastAPI did not parse as JSON
            sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type header"
            detail = (f"the body was not read as JSON ({sent}): send it with Content-Type: application/json "
                      f"(httpx: json=...); expected {_EXPECTED_JSON}")
        else:
            detail = _describe_validation(list(exc.errors()))
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; this service answers {_ROUTES}"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}; this service answers {_ROUTES}"
        elif exc.status_code == 400 and detail == "There was an error parsing the body":  # e.g. nested too deep
            detail = f"the body could not be parsed; expected {_EXPECTED_JSON}"
        return await http_exception_handler(request, HTTPException(exc.status_code, detail, exc.headers))

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "classes": len(classes), "model": meta.get("arch")}

    @app.post("/predict", response_model=Predictions)
    def predict_json(body: PredictRequest) -> dict:
        return predict(_images_from_json(body.pixels, max_images))

    @app.post("/predict_raw", response_model=Predictions,
              openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {
                  "schema": {"type": "string", "format": "binary"}}}}})
    async def predict_raw(request: Request, x_shape: str | None = Header(None),
                          x_dtype: str | None = Header(None)) -> dict:
        shape = _parse_shape(x_shape, max_images)
        if x_dtype is not None and x_dtype.strip().lower() != "float32":
            raise _bad(400, f"X-Dtype {x_dtype!r} is not supported; send little-endian float32 (X-Dtype: float32)")
        images = _images_from_bytes(await request.body(), shape)
        return await run_in_threadpool(predict, images)  # the model never blocks the event loop

    return app


class LocalServer:
    """Run an ASGI app with uvicorn on 127.0.0.1 in a background thread: `with LocalServer(app) as server: ...`.

    Port 0 (the default) lets the system pick a free port; `.url` is "http://127.0.0.1:PORT" with the port
    actually bound, `.thread` the serving thread. Silent (uvicorn's log level "warning", no access log, no
    lifespan). Leaving the block (or `stop()`) asks uvicorn to exit, joins the thread and raises
    RuntimeError if it did not stop. `start()`/`stop()` serve across notebook cells. Taught in 09_deploy."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *, timeout: float = 10.0):
        try:
            loopback = ipaddress.IPv4Address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"LocalServer binds only a loopback IPv4 address such as 127.0.0.1, not {host!r}")
        self.app, self.host, self.timeout = app, host, timeout
        self.requested_port = self.port = int(port)
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self.server is None or not self.server.started:
            raise RuntimeError("the server is not running: call start() or use `with LocalServer(app) as server`")
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalServer:
        if self.thread is not None and self.thread.is_alive():
            return self
        config = uvicorn.Config(self.app, host=self.host, port=self.requested_port, log_level="warning",
                                access_log=False, lifespan="off",
                                timeout_graceful_shutdown=max(1, int(self.timeout / 2)))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="LocalServer", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"uvicorn stopped while starting on {self.host}:{self.port} (port in use?)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"uvicorn did not start within {self.timeout} s")
            time.sleep(0.005)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self.thread is None:
            return
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(self.timeout)
        if self.thread.is_alive():
            raise RuntimeError(f"the server thread did not stop within {self.timeout} s")

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        running = self.thread is not None and self.thread.is_alive()
        return f"LocalServer({self.host}:{self.port}, {'running' if running else 'stopped'})"
