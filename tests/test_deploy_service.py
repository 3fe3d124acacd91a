"""course_utils.deploy.service: the FastAPI app through TestClient (answers equal the model's own, every bad
request is a 4xx with a message, 413 and 503), and one real round trip through LocalServer on 127.0.0.1."""

from __future__ import annotations

import json
import threading

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

from course_utils.deploy import Batcher, Busy, LocalServer, create_app

META = {"mean": 0.286, "std": 0.353, "classes": [f"class {i}" for i in range(10)], "arch": "tiny_cnn"}


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.Flatten(), nn.Linear(4 * 13 * 13, 10))


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 28, 28, generator=torch.Generator().manual_seed(seed))


def reference(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """What the service must answer: the eval-mode model on normalised images."""
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(((x - META["mean"]) / META["std"]).unsqueeze(1)), dim=1)
    best, index = probs.max(dim=1)
    return [{"class": i, "label": META["classes"][i], "probability": p} for i, p in zip(index.tolist(), best.tolist())]


def assert_matches(predictions: list[dict], expected: list[dict]) -> None:
    assert [p["class"] for p in predictions] == [e["class"] for e in expected]
    assert [p["label"] for p in predictions] == [e["label"] for e in expected]
    for p, e in zip(predictions, expected):
        assert set(p) == {"class", "label", "probability"}
        assert p["probability"] == round(p["probability"], 4) and abs(p["probability"] - e["probability"]) <= 5e-5


@pytest.fixture(scope="module")
def model():
    return small_cnn()


@pytest.fixture(scope="module")
def client(model):
    model.train()  # create_app must switch it to eval mode
    return TestClient(create_app(model, META, max_images=8, max_body_bytes=200_000))


def test_health(client, model):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "classes": 10, "model": "tiny_cnn"}
    assert not model.training


def test_predict_one_image_and_a_batch_equal_the_model(client, model):
    x = images(5)
    one = client.post("/predict", json={"pixels": x[0].tolist()})
    assert one.status_code == 200
    assert_matches(one.json()["predictions"], reference(model, x[:1]))
    batch = client.post("/predict", json={"pixels": x.tolist()})
    assert batch.status_code == 200 and len(batch.json()["predictions"]) == 5
    assert_matches(batch.json()["predictions"], reference(model, x))
    again = client.post("/predict", json={"pixels": x.tolist()})
    assert again.json() == batch.json()  # eval mode: no dropout, no batch statistics


def test_predict_raw_equals_predict(client, model):
    x = images(3, seed=1)
    body = x.numpy().astype("<f4").tobytes()
    raw = client.post("/predict_raw", content=body, headers={"X-Shape": "3,28,28", "X-Dtype": "float32"})
    assert raw.status_code == 200
    assert raw.json() == client.post("/predict", json={"pixels": x.tolist()}).json()
    assert_matches(raw.json()["predictions"], reference(model, x))
    single = client.post("/predict_raw", content=x[0].numpy().astype("<f4").tobytes(), headers={"X-Shape": "28,28"})
    assert single.json()["predictions"] == raw.json()["predictions"][:1]


def json_body(value) -> dict:
    return {"content": json.dumps(value), "headers": {"content-type": "application/json"}}


GOOD = images(1)[0].tolist()
RAW = images(2).numpy().astype("<f4").tobytes()


def chunks(n_bytes: int):
    for _ in range(n_bytes // 10_000):
        yield b"0" * 10_000


BAD_REQUESTS = [
    # (name, method, path, request kwargs, status, words the detail must hold)
    ("not JSON", "post", "/predict", {"content": b"{pixels", "headers": {"content-type": "application/json"}},
     422, ["not valid JSON", "expected"]),
    ("no body", "post", "/predict", {}, 422, ["Field required", "expected"]),
    ("nested too deep", "post", "/predict", {"content": b'{"pixels": ' + b"[" * 5000 + b"]" * 5000 + b"}",
     "headers": {"content-type": "application/json"}}, 400, ["could not be parsed", "expected"]),
    ("pixels a string", "post", "/predict", json_body({"pixels": "abc"}), 422, ["pixels", "valid list", "expected"]),
    ("a bool pixel", "post", "/predict", json_body({"pixels": [[True] * 28] * 28}), 422, ["pixels[0][0]", "expected"]),
    ("a typo in the field", "post", "/predict", json_body({"pixel": GOOD}), 422, ["pixels: Field required", "pixel"]),
    ("a list, not an object", "post", "/predict", json_body([GOOD]), 422, ["dictionary", "expected"]),
    ("plain text", "post", "/predict", {"content": b"hello", "headers": {"content-type": "text/plain"}}, 422,
     ["'text/plain'", "Content-Type: application/json", "expected"]),
    ("JSON without a Content-Type", "post", "/predict", {"content": json.dumps({"pixels": GOOD})}, 422,
     ["no Content-Type header", "Content-Type: application/json"]),
    ("27 rows", "post", "/predict", json_body({"pixels": GOOD[:27]}), 400, ["(27, 28)", "expected (28, 28)"]),
    ("a batch of 3x3", "post", "/predict", json_body({"pixels": [[[0.5] * 3] * 3]}), 400, ["(1, 3, 3)", "expected"]),
    ("ragged rows", "post", "/predict", json_body({"pixels": GOOD[:27] + [[0.5] * 27]}), 400, ["ragged", "expected"]),
    ("no images", "post", "/predict", json_body({"pixels": []}), 400, ["(0,)", "expected"]),
    ("NaN", "post", "/predict", json_body({"pixels": [[float("nan")] * 28] * 28}), 400, ["not finite", "expected"]),
    ("Infinity", "post", "/predict", json_body({"pixels": [[float("inf")] * 28] * 28}), 400, ["not finite"]),
    ("0..255 pixels", "post", "/predict", json_body({"pixels": [[255.0] * 28] * 28}), 400,
     ["out of range", "[0, 1]", "255"]),
    ("negative pixels", "post", "/predict", json_body({"pixels": [[-0.1] * 28] * 28}), 400, ["out of range"]),
    ("too many images", "post", "/predict", json_body({"pixels": [GOOD] * 9}), 413, ["9", "at most 8"]),
    ("body over the limit", "post", "/predict", {"content": b"0" * 200_001, "headers": {"content-type":
     "application/json"}}, 413, ["200001 bytes", "limit of 200000"]),
    ("chunked body over the limit", "post", "/predict", {"content": chunks(300_000)}, 413, ["limit of 200000"]),
    ("raw: no X-Shape", "post", "/predict_raw", {"content": RAW}, 400, ["X-Shape", "missing", "expected"]),
    ("raw: X-Shape not numbers", "post", "/predict_raw", {"content": RAW, "headers": {"X-Shape": "two,28,28"}}, 400,
     ["not a list of integers", "expected"]),
    ("raw: wrong image size", "post", "/predict_raw", {"content": RAW, "headers": {"X-Shape": "2,32,32"}}, 400,
     ["not an image shape", "N,28,28"]),
    ("raw: float64", "post", "/predict_raw", {"content": RAW, "headers": {"X-Shape": "2,28,28", "X-Dtype": "float64"}},
     400, ["float64", "float32"]),
    ("raw: bytes short", "post", "/predict_raw", {"content": RAW[:-4], "headers": {"X-Shape": "2,28,28"}}, 400,
     ["6268 bytes", "needs 6272"]),
    ("raw: N = 0", "post", "/predict_raw", {"content": b"", "headers": {"X-Shape": "0,28,28"}}, 400, ["N = 0"]),
    ("raw: too many", "post", "/predict_raw", {"content": RAW, "headers": {"X-Shape": "100,28,28"}}, 413,
     ["at most 8"]),
    ("raw: NaN", "post", "/predict_raw", {"content": np.full((28, 28), np.nan, "<f4").tobytes(),
     "headers": {"X-Shape": "28,28"}}, 400, ["not finite"]),
    ("raw: over the limit", "post", "/predict_raw", {"content": chunks(300_000), "headers": {"X-Shape": "28,28"}},
     413, ["limit of 200000"]),
    ("unknown path", "get", "/predictions", {}, 404, ["/predictions", "POST /predict"]),
    ("wrong method", "get", "/predict", {}, 405, ["GET", "POST /predict"]),
]


@pytest.mark.parametrize("name, method, path, kwargs, status, words", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_a_bad_request_gets_a_4xx_with_a_message(client, name, method, path, kwargs, status, words):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str) and len(response.json()) == 1
    missing = [w for w in words if w not in detail]
    assert not missing, f"{missing} not in {detail!r}"


def test_the_service_still_answers_after_bad_requests(client, model):
    for _, method, path, kwargs, _, _ in BAD_REQUESTS[:5]:
        getattr(client, method)(path, **{k: v for k, v in kwargs.items()})
    assert_matches(client.post("/predict", json={"pixels": GOOD}).json()["predictions"],
                   reference(model, torch.tensor([GOOD])))


def test_predict_batch_replaces_the_model_and_sees_normalised_input():
    seen = []

    def predict_batch(x):
        seen.append(x.clone())
        return np.tile(np.arange(10, dtype=np.float32), (len(x), 1))  # an ONNX-style numpy answer

    client = TestClient(create_app(nn.Identity(), META, predict_batch=predict_batch))
    answer = client.post("/predict", json={"pixels": [[0.0] * 28] * 28}).json()["predictions"]
    assert answer[0]["class"] == 9 and answer[0]["label"] == "class 9"
    assert answer[0]["probability"] == round(float(torch.softmax(torch.arange(10.0), 0)[9]), 4)
    assert seen[0].shape == (1, 1, 28, 28) and torch.allclose(seen[0], torch.full((1, 1, 28, 28), -0.286 / 0.353))


def test_a_failing_model_is_a_500_with_json_and_the_service_survives():
    calls = []

    def fragile(x):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("shapes do not match")
        return torch.zeros(len(x), 10)

    client = TestClient(create_app(nn.Identity(), META, predict_batch=fragile))
    failed = client.post("/predict", json={"pixels": GOOD})
    assert failed.status_code == 500 and "RuntimeError: shapes do not match" in failed.json()["detail"]
    assert client.post("/predict", json={"pixels": GOOD}).status_code == 200
    wrong = TestClient(create_app(nn.Identity(), META, predict_batch=lambda x: torch.zeros(len(x), 3)))
    response = wrong.post("/predict", json={"pixels": GOOD})
    assert response.status_code == 500 and "expected (1, 10)" in response.json()["detail"]


def test_a_busy_batcher_is_a_503(model):
    entered, released = threading.Event(), threading.Event()

    def gated(x):
        entered.set()
        assert released.wait(10)
        return model(x)

    with Batcher(gated, max_queue=1) as batcher:
        client = TestClient(create_app(model, META, predict_batch=batcher))
        held = batcher.submit(torch.zeros(1, 28, 28))
        assert entered.wait(10)
        queued = batcher.submit(torch.zeros(1, 28, 28))  # the queue is full now
        response = client.post("/predict", json={"pixels": GOOD})
        assert response.status_code == 503 and response.json()["detail"].startswith("busy")
        assert response.headers["retry-after"] == "1"
        released.set()
        held.result(timeout=10), queued.result(timeout=10)
        assert client.post("/predict", json={"pixels": GOOD}).status_code == 200

    def refuse(x):
        raise Busy("busy: try later")

    other = TestClient(create_app(model, META, predict_batch=refuse))
    assert other.post("/predict", json={"pixels": GOOD}).json() == {"detail": "busy: try later"}


def test_meta_must_hold_the_normalisation_and_classes():
    with pytest.raises(ValueError, match="mean"):
        create_app(nn.Identity(), {"classes": ["a"]})


def test_local_server_round_trip_with_a_batcher_is_silent_and_leaves_no_thread(model, capfd):
    x = images(16, seed=2)
    expected = reference(model, x)
    answers: dict[int, list] = {}
    threads_before = set(threading.enumerate())
    with Batcher(model, max_batch=16, max_wait=0.01) as batcher:
        app = create_app(model, META, predict_batch=batcher)
        http = httpx.Client(timeout=10)  # its keep-alive connection is still open when the server stops
        with LocalServer(app) as server:
            http.base_url = server.url
            assert server.url.startswith("http://127.0.0.1:") and not server.url.endswith(":0")
            assert server.thread.is_alive()
            assert http.get("/health").json()["status"] == "ok"

            def ask(k: int) -> None:
                with httpx.Client(base_url=server.url, timeout=10) as own:  # a client per thread
                    answers[k] = own.post("/predict", json={"pixels": x[k].tolist()}).json()["predictions"]

            threads = [threading.Thread(target=ask, args=(k,)) for k in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            raw = http.post("/predict_raw", content=x.numpy().tobytes(), headers={"X-Shape": "16,28,28"})
            bad = http.post("/predict", json={"pixels": [[2.0] * 28] * 28})
        assert not server.thread.is_alive()
        http.close()
    assert set(threading.enumerate()) == threads_before
    assert_matches([answers[k][0] for k in range(16)], expected)
    assert_matches(raw.json()["predictions"], expected)
    assert bad.status_code == 400 and "out of range" in bad.json()["detail"]
    assert sum(batcher.batch_sizes) == 32 and batcher.calls <= 32
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_local_server_start_stop_and_loopback_only(model):
    server = LocalServer(create_app(model, META))
    with pytest.raises(RuntimeError, match="not running"):
        server.url
    server.start()
    try:
        assert httpx.get(server.url + "/health", timeout=10).status_code == 200
    finally:
        server.stop()
    server.stop()  # idempotent
    assert not server.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=2)
    for host in ("0.0.0.0", "192.168.1.10", "localhost"):
        with pytest.raises(ValueError, match="loopback"):
            LocalServer(create_app(model, META), host=host)
