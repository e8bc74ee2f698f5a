"""`dlvp serve` driven by the real Triton clients (tritonclient.http and tritonclient.grpc, pinned
in requirements.txt) and plain HTTP: results equal `dlvp bench --save-outputs` / `dlvp detect` on
the same input and backend, concurrent clients get their own results back, every bad request gets
the protocol's error (always `application/json` `{"error": ...}` over HTTP) and leaves the server
answering, SIGTERM under load loses no accepted request, and a draining server answers 503 on
`/v2/health/ready` while it finishes what it accepted. Servers listen on 127.0.0.1 only, on ports
the system picks; every wait is bounded.

Run by scripts/test with serve/.venv's Python and DLVP_BIN set to the dlvp binary.
"""

import base64
import concurrent.futures
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from PIL import Image
from safetensors.numpy import load_file, save_file

REPO = Path(__file__).resolve().parents[2]
DLVP = os.environ.get("DLVP_BIN", str(REPO / "target/debug/dlvp"))
TINY_WEIGHTS = REPO / "fixtures/tiny/weights.safetensors"
SAMPLES = sorted((REPO / "fixtures/samples").glob("*.png"))
OUTPUTS = ("anomaly_score", "anomaly_map", "topk_indices")


def dlvp(*args, check=True):
    run = subprocess.run([DLVP, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert run.returncode == 0, run.stderr
    return run


class Server:
    """`dlvp serve` on free loopback ports; stopped with SIGTERM by `stop`."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [DLVP, "serve", "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines = []
        # stderr read on a thread: the server logs as it goes, and must never block on a full pipe.
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stderr.readline, "")),
                                       daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 120
        while "ready (" not in self.log:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.reader.join(timeout=5)
                raise AssertionError(f"dlvp serve did not start:\n{self.log}")
            time.sleep(0.05)
        self.http = re.search(r"HTTP +http://([0-9.]+:\d+)", self.log).group(1)
        self.grpc = re.search(r"gRPC +([0-9.]+:\d+)", self.log).group(1)
        self.metrics = re.search(r"metrics +http://([0-9.]+:\d+)", self.log).group(1)
        self.name = re.search(r"serving model `([^`]+)`", self.log).group(1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("dlvp serve did not stop within 30 s of SIGTERM")
        self.reader.join(timeout=10)
        return code

    @property
    def log(self):
        return "".join(self.lines)

    def url(self, path):
        return f"http://{self.http}{path}"

    def metric(self, name):
        text = urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=10).read().decode()
        return text


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    tiny, tiny_u8 = d / "tiny.onnx", d / "tiny_u8.onnx"
    dlvp("export", "--weights", TINY_WEIGHTS, "--out", tiny)
    dlvp("export", "--weights", TINY_WEIGHTS, "--out", tiny_u8, "--embed-preprocess")
    return {"tiny": tiny, "tiny_u8": tiny_u8, "dir": d}


def bench_outputs(model, backend, batch, tmp):
    """What `dlvp bench --input --save-outputs` computes for `batch` on `backend`."""
    name = "image_u8" if batch.dtype == np.uint8 else "image"
    src, out = tmp / f"in-{backend}-{name}.safetensors", tmp / f"out-{backend}-{name}.safetensors"
    save_file({name: batch}, str(src))
    model_args = ["--model", model] if model else []  # None: the embedded demo model
    dlvp("bench", *model_args, "--backend", backend, "--input", src, "--save-outputs", out,
         "--iters", "1", "--warmup", "0")
    return load_file(str(out))


def http_infer(server, batch, binary=True, outputs=OUTPUTS):
    client = httpclient.InferenceServerClient(server.http)
    name = "image_u8" if batch.dtype == np.uint8 else "image"
    inp = httpclient.InferInput(name, list(batch.shape), "UINT8" if batch.dtype == np.uint8 else "FP32")
    inp.set_data_from_numpy(batch, binary_data=binary)
    result = client.infer(server.name, [inp], outputs=[
        httpclient.InferRequestedOutput(o, binary_data=binary) for o in outputs])
    return {o: result.as_numpy(o) for o in outputs}


def grpc_infer(server, batch, outputs=OUTPUTS):
    client = grpcclient.InferenceServerClient(server.grpc)
    name = "image_u8" if batch.dtype == np.uint8 else "image"
    inp = grpcclient.InferInput(name, list(batch.shape), "UINT8" if batch.dtype == np.uint8 else "FP32")
    inp.set_data_from_numpy(batch)
    result = client.infer(server.name, [inp], outputs=[grpcclient.InferRequestedOutput(o) for o in outputs])
    return {o: result.as_numpy(o) for o in outputs}


def assert_same(got, want, exact=True):
    b = want["anomaly_score"].shape[0]
    assert got["anomaly_score"].shape == (b, 1)
    assert got["anomaly_map"].shape == want["anomaly_map"].shape
    if exact:
        assert np.array_equal(got["anomaly_score"][:, 0], want["anomaly_score"])
        assert np.array_equal(got["anomaly_map"], want["anomaly_map"])
    else:
        assert np.abs(got["anomaly_score"][:, 0] - want["anomaly_score"]).max() <= 1e-5
        assert np.abs(got["anomaly_map"] - want["anomaly_map"]).max() <= 1e-5
    assert np.array_equal(got["topk_indices"], want["topk_indices"])


@pytest.mark.parametrize("backend", ["ort-cpu", "tract", "openvino"])
def test_triton_clients_get_what_dlvp_bench_computes(models, backend, tmp_path):
    rng = np.random.default_rng(7)
    batch = rng.standard_normal((3, 3, 56, 56)).astype(np.float32)
    pixels = rng.integers(0, 256, (2, 56, 56, 3), dtype=np.uint8)
    want = bench_outputs(models["tiny"], backend, batch, tmp_path)
    want_u8 = bench_outputs(models["tiny_u8"], backend, pixels, tmp_path)
    for model, data, expected in [(models["tiny"], batch, want), (models["tiny_u8"], pixels, want_u8)]:
        server = Server("--model", model, "--backend", backend)
        try:
            # tritonclient's defaults (binary tensors), JSON tensors, and gRPC: bit for bit.
            assert_same(http_infer(server, data), expected)
            assert_same(http_infer(server, data, binary=False), expected)
            assert_same(grpc_infer(server, data), expected)
            # One output asked for, one returned.
            only = http_infer(server, data, outputs=("topk_indices",))
            assert list(only) == ["topk_indices"]
            assert np.array_equal(only["topk_indices"], expected["topk_indices"])
            # Metadata and config agree between the protocols and with the export's Triton config.
            http = httpclient.InferenceServerClient(server.http)
            grpc = grpcclient.InferenceServerClient(server.grpc)
            assert http.is_server_live() and http.is_server_ready() and http.is_model_ready(server.name)
            assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready(server.name)
            meta = http.get_model_metadata(server.name)
            gmeta = grpc.get_model_metadata(server.name, as_json=True)
            assert [i["name"] for i in meta["inputs"]] == [gmeta["inputs"][0]["name"]]
            config = http.get_model_config(server.name)
            gconfig = grpc.get_model_config(server.name, as_json=True)["config"]
            assert gconfig["max_batch_size"] == config["max_batch_size"] == 8
            assert [o["name"] for o in gconfig["output"]] == [o["name"] for o in config["output"]] == list(OUTPUTS)
            assert gconfig["output"][0]["reshape"] == {} or gconfig["output"][0].get("reshape") is not None
        finally:
            assert server.stop() == 0


def test_the_served_config_is_the_triton_exports(models, tmp_path):
    """The gRPC ModelConfig (parsed by tritonclient's generated class) states the same I/O,
    batch and reshape as the config.pbtxt `dlvp export --triton-repo` writes."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    repo = tmp_path / "repo"
    dlvp("export", "--weights", TINY_WEIGHTS, "--triton-repo", repo, "--triton-kind", "cpu", "--triton-name", "tiny")
    exported = text_format.Parse((repo / "tiny/config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    server = Server("--model", models["tiny"], "--backend", "tract", "--model-name", "tiny")
    try:
        served = grpcclient.InferenceServerClient(server.grpc).get_model_config("tiny").config
    finally:
        assert server.stop() == 0
    for field in ("name", "max_batch_size", "input", "output"):
        assert getattr(served, field) == getattr(exported, field), field
    assert json_format.MessageToDict(served)["platform"] == "onnxruntime_onnx"


def test_v1_detect_answers_what_dlvp_detect_prints(tmp_path):
    samples = SAMPLES[:3]
    out = tmp_path / "detect"
    run = dlvp("detect", *samples, "--backend", "ort-cpu", "--json", "--batch", "1", "--out", out)
    want = {Path(j["image"]).name: j for j in map(json.loads, run.stdout.splitlines())}
    demo_batch = np.random.default_rng(13).standard_normal((2, 3, 224, 224)).astype(np.float32)
    demo_want = bench_outputs(None, "ort-cpu", demo_batch, tmp_path)
    server = Server("--backend", "ort-cpu")  # the embedded demo model
    try:
        # tritonclient on the demo model, as on the tiny one: what `dlvp bench` computes, bit for bit
        assert_same(http_infer(server, demo_batch), demo_want)
        assert_same(grpc_infer(server, demo_batch), demo_want)
        for sample in samples:
            body = sample.read_bytes()
            req = urllib.request.Request(server.url(f"/v1/detect?map=png&name={sample.name}&threshold=0.5"),
                                         data=body, method="POST")
            got = json.load(urllib.request.urlopen(req, timeout=60))
            assert got["image"] == sample.name
            assert got["score"] == pytest.approx(want[sample.name]["score"], abs=0)
            assert got["topk"] == want[sample.name]["topk"]
            assert got["label"] == ("anomalous" if got["score"] > 0.5 else "normal")
            assert got["decision"] == ("NG" if got["score"] > 0.5 else "OK") and got["threshold"] == 0.5
            served_map = np.asarray(Image.open(io.BytesIO(base64.b64decode(got["map_png"]))))
            written = np.asarray(Image.open(out / f"{sample.stem}.map.png"))
            assert served_map.dtype == written.dtype and np.array_equal(served_map, written)
        # multipart/form-data, as `curl -F image=@part.png` sends it
        boundary = "dlvpboundary"
        sample = samples[0]
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{sample.name}\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + sample.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(server.url("/v1/detect"), data=form, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        got = json.load(urllib.request.urlopen(req, timeout=60))
        assert got["image"] == sample.name and got["score"] == want[sample.name]["score"]
    finally:
        assert server.stop() == 0


def test_a_calibrated_model_decides_and_states_its_thresholds(models, tmp_path):
    """A graph `dlvp threshold` calibrated: /v1/detect decides with its stored thresholds (as
    `dlvp detect` does) and returns the mask above the pixel threshold; the KServe metadata and
    the Triton config (HTTP JSON, and gRPC parsed by tritonclient) carry the thresholds."""
    data, line = tmp_path / "good", tmp_path / "line.onnx"
    dlvp("demo-data", "--out", data, "--count", "0", "--train-count", "4", "--size", "64", "--seed", "3")
    dlvp("threshold", "--model", models["tiny"], "--good", data, "--false-alarm", "0.1", "--out", line,
         "--backend", "tract")
    sample = SAMPLES[0]
    want = json.loads(dlvp("detect", sample, "--model", line, "--backend", "tract", "--json").stdout)
    stored = float(want["threshold"])
    server = Server("--model", line, "--backend", "tract", "--model-name", "line")
    try:
        req = urllib.request.Request(server.url("/v1/detect?mask=png"), data=sample.read_bytes(), method="POST")
        got = json.load(urllib.request.urlopen(req, timeout=60))
        assert (got["decision"], got["threshold"], got["score"]) == (want["decision"], want["threshold"], want["score"])
        mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(got["mask_png"]))))
        assert mask.shape == Image.open(sample).size[::-1] and set(np.unique(mask)) <= {0, 255}
        # The request's threshold overrides the stored one (0, the lowest that can decide: every
        # score above it is NG).
        req = urllib.request.Request(server.url("/v1/detect?threshold=0"), data=sample.read_bytes(), method="POST")
        got = json.load(urllib.request.urlopen(req, timeout=60))
        assert (got["decision"], got["threshold"]) == ("NG", 0)

        metadata = httpclient.InferenceServerClient(server.http).get_model_metadata("line")
        assert metadata["parameters"]["dlvp.threshold.image"] == pytest.approx(stored, abs=0)
        assert metadata["parameters"]["dlvp.threshold.images"] == 20
        config = httpclient.InferenceServerClient(server.http).get_model_config("line")
        # The config states the f32 as the graph's metadata does (shortest decimal); JSON numbers
        # carry it widened to f64: equal as f32.
        assert np.float32(config["parameters"]["dlvp.threshold.image"]["string_value"]) == np.float32(stored)
        gconfig = grpcclient.InferenceServerClient(server.grpc).get_model_config("line").config
        assert np.float32(gconfig.parameters["dlvp.threshold.image"].string_value) == np.float32(stored)
        assert gconfig.parameters["dlvp.threshold.false_alarm"].string_value == "0.1"
        assert set(gconfig.parameters) == {"dlvp.threshold.image", "dlvp.threshold.pixel",
                                           "dlvp.threshold.false_alarm", "dlvp.threshold.images",
                                           "dlvp.threshold.tiling"}
        assert gconfig.parameters["dlvp.threshold.tiling"].string_value == "none"
    finally:
        assert server.stop() == 0
    # Without a threshold anywhere, a mask cannot be drawn: the request is refused, by name.
    server = Server("--model", models["tiny"], "--backend", "tract")
    try:
        req = urllib.request.Request(server.url("/v1/detect?mask=png"), data=sample.read_bytes(), method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=60)
        assert refused.value.code == 400 and "mask=png needs a threshold" in refused.value.read().decode()
    finally:
        assert server.stop() == 0
    # `dlvp threshold --triton-repo`: Triton's own ModelConfig parses the config it rewrote, and
    # states there what the served model states.
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    repo = tmp_path / "repo"
    dlvp("export", "--weights", TINY_WEIGHTS, "--triton-repo", repo, "--triton-kind", "gpu", "--triton-name", "line")
    dlvp("threshold", "--triton-repo", repo, "--good", data, "--false-alarm", "0.1", "--backend", "tract")
    parsed = text_format.Parse((repo / "line/config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert dict((k, v.string_value) for k, v in parsed.parameters.items()) == \
        dict((k, v.string_value) for k, v in gconfig.parameters.items())


def test_v1_detect_tiles_as_dlvp_detect_tile(models, tmp_path):
    """`/v1/detect?tile=1` scores an image in tiles through the batcher, as `dlvp detect --tile`
    does: the same score, tiles and map; bad tile parameters are refused by name."""
    frame = tmp_path / "frame.png"
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 255, (130, 200, 3), dtype=np.uint8)).save(frame)
    out = tmp_path / "out"
    want = json.loads(dlvp("detect", frame, "--model", models["tiny"], "--backend", "tract", "--tile",
                           "--json", "--out", out).stdout)
    server = Server("--model", models["tiny"], "--backend", "tract", "--max-batch", "8")
    try:
        req = urllib.request.Request(server.url("/v1/detect?tile=1&map=png"), data=frame.read_bytes(), method="POST")
        got = json.load(urllib.request.urlopen(req, timeout=60))
        assert got["score"] == pytest.approx(want["score"], abs=1e-6)
        assert len(got["tiles"]) == len(want["tiles"]) == 15
        assert [t["x"] for t in got["tiles"]] == [t["x"] for t in want["tiles"]]
        served = np.asarray(Image.open(io.BytesIO(base64.b64decode(got["map_png"])))).astype(np.int32)
        written = np.asarray(Image.open(out / "frame.map.png")).astype(np.int32)
        assert served.shape == written.shape == (130, 200)
        assert np.abs(served - written).max() <= 1  # 16-bit levels: the same map within 1.5e-5
        for query, message in [("tile=maybe", "tile=maybe"), ("tile=1&tile_overlap=0.95", "overlap"),
                               ("tile_scale=0.5", "need tile=1")]:
            req = urllib.request.Request(server.url(f"/v1/detect?{query}"), data=frame.read_bytes(), method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(req, timeout=60)
            assert refused.value.code == 400 and message in refused.value.read().decode(), query
    finally:
        assert server.stop() == 0


def test_concurrent_clients_get_their_own_results_and_are_batched(models, tmp_path):
    rng = np.random.default_rng(11)
    batches = [rng.standard_normal((1 + i % 2, 3, 56, 56)).astype(np.float32) for i in range(16)]
    want = []
    for i, b in enumerate(batches):
        (tmp_path / str(i)).mkdir()
        want.append(bench_outputs(models["tiny"], "ort-cpu", b, tmp_path / str(i)))
    server = Server("--model", models["tiny"], "--backend", "ort-cpu", "--max-queue-delay-us", "20000")
    try:
        def call(i):
            infer = (http_infer, grpc_infer)[i % 2]
            return infer(server, batches[i])

        for _ in range(3):
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                results = list(pool.map(call, range(16)))
            for got, expected in zip(results, want):
                assert_same(got, expected, exact=False)
        metrics = server.metric("dlvp_batch_size")
        count = float(re.search(r'^dlvp_batch_size_count\{[^}]*\} (\S+)', metrics, re.M).group(1))
        images = float(re.search(r'^dlvp_batch_size_sum\{[^}]*\} (\S+)', metrics, re.M).group(1))
        assert images == 3 * sum(b.shape[0] for b in batches)
        assert count < 3 * 16, f"no request was batched with another ({count} runs for {images} images)"
        assert re.search(r'^nv_inference_request_success\{[^}]*\} 48$', metrics, re.M), metrics
    finally:
        assert server.stop() == 0


def raw_request(url, body=None, headers=None, method="POST"):
    """status, headers, body of one request; an HTTP error is an answer like any other."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def raw_post(server, path, body, headers=None):
    code, _, answer = raw_request(server.url(path), body, headers)
    return code, answer


def json_error(headers, answer):
    """The message of an error answer, which must be `application/json` `{"error": "..."}`."""
    assert headers.get("Content-Type", "").startswith("application/json"), (headers.get("Content-Type"), answer)
    parsed = json.loads(answer)
    assert list(parsed) == ["error"] and isinstance(parsed["error"], str), parsed
    return parsed["error"]


def test_bad_requests_get_the_protocols_errors_and_the_server_keeps_answering(models, tmp_path):
    server = Server("--model", models["tiny"], "--backend", "ort-cpu", "--max-body-mib", "1",
                    "--max-pixels", "5000", "--max-batch", "4")
    good = np.random.default_rng(3).standard_normal((1, 3, 56, 56)).astype(np.float32)
    want = bench_outputs(models["tiny"], "ort-cpu", good, tmp_path)
    name = server.name
    raw = good.tobytes()

    def binary_request(header, binary):
        head = json.dumps(header).encode()
        return head + binary, {"Inference-Header-Content-Length": str(len(head)),
                               "Content-Type": "application/octet-stream"}

    def tensor(shape=(1, 3, 56, 56), name="image", datatype="FP32", size=len(raw)):
        return {"name": name, "shape": list(shape), "datatype": datatype, "parameters": {"binary_data_size": size}}

    png = io.BytesIO()
    Image.new("RGB", (100, 100)).save(png, "PNG")
    # Within --max-pixels: refused only for what its query says.
    small = io.BytesIO()
    Image.new("RGB", (50, 50), (90, 120, 60)).save(small, "PNG")
    small = small.getvalue()
    cases = [
        (f"/v2/models/{name}/infer", b"{not json", {}, 400, "not valid JSON"),
        (f"/v2/models/{name}/infer", *binary_request({"inputs": [tensor(name="pixels")]}, raw), 400, "unexpected inference input 'pixels'"),
        (f"/v2/models/{name}/infer", *binary_request({"inputs": [tensor(datatype="FP16")]}, raw), 400, "datatype FP16"),
        (f"/v2/models/{name}/infer", *binary_request({"inputs": [tensor(shape=(1, 3, 55, 56))]}, raw), 400, "shape [1, 3, 55, 56]"),
        (f"/v2/models/{name}/infer", *binary_request({"inputs": [tensor(shape=(5, 3, 56, 56), size=5 * len(raw))]}, raw * 5), 400, "batch size 5"),
        (f"/v2/models/{name}/infer", *binary_request({"inputs": [tensor()]}, raw[:-4]), 400, "only 37628 bytes of binary data"),
        (f"/v2/models/{name}/infer", *binary_request({"inputs": [tensor()]}, raw + b"xxxx"), 400, "4 bytes of binary data are left over"),
        (f"/v2/models/{name}/infer", *binary_request({"inputs": [tensor(size=len(raw) - 4)]}, raw[:-4]), 400, "37628 bytes for shape"),
        (f"/v2/models/{name}/infer", b"{}", {"Inference-Header-Content-Length": "99"}, 400, "Inference-Header-Content-Length is 99"),
        (f"/v2/models/{name}/infer", *binary_request({"inputs": [tensor()], "outputs": [{"name": "heatmap"}]}, raw), 400, "unexpected inference output 'heatmap'"),
        (f"/v2/models/{name}/infer", b"x" * (2 << 20), {}, 413, "larger than the server's limit"),
        ("/v2/models/nosuch/infer", *binary_request({"inputs": [tensor()]}, raw), 404, "unknown model: 'nosuch'"),
        (f"/v2/models/{name}/versions/7/infer", *binary_request({"inputs": [tensor()]}, raw), 404, "version 7"),
        ("/v1/detect", b"not an image at all", {}, 400, "cannot read image"),
        ("/v1/detect", png.getvalue(), {}, 413, "more than the limit of 5000"),
        ("/v1/detect", b"", {}, 400, "no image"),
        # A threshold that cannot decide: NaN and 1 or more would pass every part, below 0 fail
        # every one. Refused by the parameter's name, with the reason.
        ("/v1/detect?threshold=nan", small, {}, 400, "query parameter `threshold`=nan: the image threshold NaN is not a number"),
        ("/v1/detect?threshold=inf", small, {}, 400, "`threshold`=inf: the image threshold inf would pass every part"),
        ("/v1/detect?threshold=1.5", small, {}, 400, "`threshold`=1.5: the image threshold 1.5 would pass every part"),
        ("/v1/detect?threshold=-1", small, {}, 400, "`threshold`=-1: the image threshold -1 would make every part NG"),
        ("/v1/detect?threshold=abc", small, {}, 400, "`threshold`=\"abc\" is not a number"),
        ("/v1/detect?threshold=0.1&threshold=0.2", small, {}, 400, "`threshold` is given more than once"),
        # A misspelt parameter is refused, not ignored: named, with the nearest and the known ones.
        ("/v1/detect?treshold=0.1", small, {}, 400,
         "unknown query parameter `treshold` (did you mean `threshold`?): /v1/detect takes threshold, map, mask"),
        ("/v1/detect?format=png", small, {}, 400, "unknown query parameter `format`: /v1/detect takes threshold"),
        ("/v1/detect?map=jpg", small, {}, 400, "the only map format is `png`"),
    ]
    try:
        for path, body, headers, status, message in cases:
            code, answer_headers, answer = raw_request(server.url(path), body, headers)
            assert code == status, (path, message, code, answer)
            assert message in json_error(answer_headers, answer), (message, answer)
            assert_same(http_infer(server, good), want)  # still answering, correctly
        # The same image with a threshold that decides: answered.
        code, _, answer = raw_request(server.url("/v1/detect?threshold=0.5"), small)
        assert code == 200 and json.loads(answer)["decision"] in ("OK", "NG"), answer
        # A wrong method: 405 with Allow and a JSON error; an unknown route: 404, JSON too (on the
        # metrics port as well).
        for method, path, allow in [("GET", "/v1/detect", "POST"), ("PUT", "/v1/detect", "POST"),
                                    ("GET", f"/v2/models/{name}/infer", "POST"),
                                    ("POST", "/v2/health/ready", "GET,HEAD"), ("DELETE", "/v2", "GET,HEAD")]:
            code, answer_headers, answer = raw_request(server.url(path), b"" if method != "GET" else None,
                                                       method=method)
            assert (code, answer_headers.get("Allow")) == (405, allow), (method, path, code, answer)
            message = json_error(answer_headers, answer)
            assert f"{method} is not allowed on {path}" in message, message
        for url, path in [(server.url("/v3/nothing"), "/v3/nothing"), (f"http://{server.metrics}/nothing", "/nothing")]:
            code, answer_headers, answer = raw_request(url, method="GET")
            assert code == 404 and f"no such endpoint: {path}" in json_error(answer_headers, answer), answer
        # A client that breaks off mid-body.
        with socket.create_connection(tuple(server.http.rsplit(":", 1)), timeout=10) as s:
            s.sendall(f"POST /v2/models/{name}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode() + b"{" * 100)
        assert_same(http_infer(server, good), want)
        # gRPC's codes
        grpc = grpcclient.InferenceServerClient(server.grpc)
        bad = grpcclient.InferInput("image", [1, 3, 56, 55], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 3, 56, 55), np.float32))
        with pytest.raises(Exception, match="INVALID_ARGUMENT.*shape"):
            grpc.infer(name, [bad])
        ok = grpcclient.InferInput("image", [1, 3, 56, 56], "FP32")
        ok.set_data_from_numpy(good)
        with pytest.raises(Exception, match="NOT_FOUND.*unknown model"):
            grpc.infer("nosuch", [ok])
        with pytest.raises(Exception, match="OUT_OF_RANGE.*too large"):
            grpc.infer(name, [ok], request_id="x" * (2 << 20))
        assert_same(grpc_infer(server, good), want)
        # Every refused request was counted.
        assert re.search(r'^dlvp_requests_total\{[^}]*outcome="invalid"[^}]*\} (\d+)', server.metric(""), re.M)
    finally:
        assert server.stop() == 0


def test_a_full_queue_refuses_at_once_and_a_late_request_times_out(tmp_path):
    sample = SAMPLES[0].read_bytes()
    # tract on the demo model takes tens of milliseconds a run: 16 requests at once overflow a
    # queue of 1 behind a batch of 1.
    server = Server("--backend", "tract", "--max-batch", "1", "--max-queue", "1")
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: raw_post(server, "/v1/detect", sample), range(16)))
        codes = [c for c, _ in answers]
        assert codes.count(503) >= 1 and codes.count(200) >= 1, codes
        assert all(c in (200, 503) for c in codes), codes
        scores = {json.loads(a)["score"] for c, a in answers if c == 200}
        assert len(scores) == 1  # every accepted one answered, the same
        assert all("queue is full" in json.loads(a)["error"] for c, a in answers if c == 503)
    finally:
        assert server.stop() == 0
    server = Server("--backend", "tract", "--request-timeout-ms", "1")
    try:
        code, answer = raw_post(server, "/v1/detect", sample)
        assert code == 504 and "timed out" in json.loads(answer)["error"], answer
    finally:
        assert server.stop() == 0


def test_sigterm_under_load_loses_no_accepted_request(models, tmp_path):
    good = np.random.default_rng(5).standard_normal((2, 3, 56, 56)).astype(np.float32)
    want = bench_outputs(models["tiny"], "ort-cpu", good, tmp_path)
    server = Server("--model", models["tiny"], "--backend", "ort-cpu", "--max-queue-delay-us", "5000")
    stop_at = time.monotonic() + 1.0

    def client(i):
        answered, refused = 0, 0
        while time.monotonic() < stop_at + 3:
            try:
                got = (http_infer, grpc_infer)[i % 2](server, good)
            except Exception as e:  # after SIGTERM: connection refused or closed, never a wrong answer
                status = str(e.status()) if hasattr(e, "status") else ""
                assert status not in ("500", "504", "StatusCode.INTERNAL", "StatusCode.DEADLINE_EXCEEDED"), str(e)
                refused += 1
                if time.monotonic() > stop_at:
                    break
                continue
            assert_same(got, want, exact=False)
            answered += 1
        return answered, refused

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(client, i) for i in range(6)]
        time.sleep(max(0.0, stop_at - time.monotonic()))
        code = server.stop()
        results = [f.result(timeout=60) for f in futures]
    assert code == 0, server.log
    assert sum(a for a, _ in results) > 0
    assert "every accepted request answered" in server.log


def read_head(sock):
    """The bytes up to and including the blank line that ends a response head (read a byte at a
    time: what follows belongs to the next response)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, f"the connection closed after {head!r}"
        head += byte
    return head


def wait_for(what, check, seconds=60):
    """Polls `check` until it returns something true; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.02)


def test_sigterm_drains_ready_turns_503_and_the_request_in_flight_is_answered(models):
    """After SIGTERM the server keeps accepting connections while it drains: /v2/health/ready
    answers 503 (a load balancer's signal to stop sending), /v2/health/live 200, a new inference
    request 503 with a JSON error (gRPC: not ready); the request it had accepted is answered with
    200; then it exits 0. The request in flight is one whose body is half sent, so it is still in
    flight for as long as the test wants, on any machine: no timing to tune."""
    server = Server("--model", models["tiny"], "--backend", "tract", "--request-timeout-ms", "120000")
    image = SAMPLES[0].read_bytes()
    host, port = server.http.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=60)
    try:
        sock.sendall((f"POST /v1/detect?name=in-flight HTTP/1.1\r\nHost: {server.http}\r\n"
                      f"Content-Type: image/png\r\nContent-Length: {len(image)}\r\n"
                      f"Expect: 100-continue\r\n\r\n").encode())
        # The server asks for the body once the handler reads it: from then on the request is
        # accepted, and in flight until its answer.
        assert read_head(sock).startswith(b"HTTP/1.1 100"), "no 100 Continue"
        sock.sendall(image[: len(image) // 2])
        server.proc.send_signal(signal.SIGTERM)

        def ready_status():
            code, _, _ = raw_request(server.url("/v2/health/ready"), method="GET")
            assert code in (200, 503), code
            return code == 503

        wait_for("503 from /v2/health/ready", ready_status)
        assert raw_request(server.url("/v2/health/live"), method="GET")[0] == 200
        for path, body in [("/v1/detect", image), (f"/v2/models/{server.name}/infer", b"{}")]:
            code, headers, answer = raw_request(server.url(path), body)
            assert code == 503 and "server is stopping" in json_error(headers, answer), (path, code, answer)
        assert not grpcclient.InferenceServerClient(server.grpc).is_server_ready()
        assert server.proc.poll() is None, "the server exited with a request in flight"

        sock.sendall(image[len(image) // 2:])
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = response.read()
        assert response.status == 200, answer
        got = json.loads(answer)
        assert got["image"] == "in-flight" and 0 <= got["score"] <= 1, got
    finally:
        sock.close()
    try:
        code = server.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        raise AssertionError(f"dlvp serve did not exit after its last request:\n{server.log}")
    server.reader.join(timeout=10)
    assert code == 0, server.log
    assert "every accepted request answered" in server.log
