"""Load test of `dlvp serve` with load generators nobody here wrote: ApacheBench (`ab`, Debian's
apache2-utils) on the JSON infer and the /v1/detect endpoints, and tritonclient's own clients
(HTTP with binary tensors, gRPC) from N threads, at each concurrency; the server's batch sizes
from its metrics; and `dlvp bench` on the same backend for the graph alone.

    serve/.venv/bin/python bench/serve_load.py --out bench/results/serve-demo.json \
        [--backends ort-cpu tract] [--concurrency 1 2 4 8] [--seconds 10] [--model M.onnx]

Needs serve/.venv (scripts/test makes it), `ab` (apt-get install apache2-utils) and DLVP_BIN
(default target/release/dlvp, else target/debug/dlvp). The load generator shares the machine's
cores with the server: on a 2-core box that understates the server, and the report says so.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from safetensors.numpy import save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "serve/tests"))
from test_serve import Server  # noqa: E402  (the tests' server fixture: free ports, SIGTERM)

SAMPLE = REPO / "fixtures/samples/fabric_hole.png"


def dlvp_bin():
    for p in (os.environ.get("DLVP_BIN"), REPO / "target/release/dlvp", REPO / "target/debug/dlvp"):
        if p and Path(p).is_file():
            return str(p)
    sys.exit("no dlvp binary: build it (cargo build --release) or set DLVP_BIN")


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else None


def batch_stats(server):
    """(model runs, images, server-side request seconds and count by protocol, compute seconds)."""
    text = server.metric("")

    def value(pattern):  # summed over label sets (the request histogram has one per protocol)
        return sum(float(v) for v in re.findall(pattern, text, re.M))

    return {
        "runs": value(r"^dlvp_batch_size_count\{[^}]*\} (\S+)"),
        "images": value(r"^dlvp_batch_size_sum\{[^}]*\} (\S+)"),
        "compute_s": value(r"^dlvp_compute_duration_seconds_sum\{[^}]*\} (\S+)"),
        "request_s": value(r'^dlvp_request_duration_seconds_sum\{[^}]*\} (\S+)'),
        "requests": value(r'^dlvp_request_duration_seconds_count\{[^}]*\} (\S+)'),
    }


def run_ab(url, body, content_type, concurrency, seconds):
    run = subprocess.run(
        ["ab", "-q", "-t", str(seconds), "-n", "1000000", "-c", str(concurrency), "-p", body, "-T", content_type, url],
        capture_output=True, text=True, timeout=seconds + 120)
    out = run.stdout
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    # ab counts a response whose length differs from the first one as failed: JSON numbers print
    # with varying digits, so those are not errors (non-2xx answers are counted apart).
    length = re.search(r"\(Connect: \d+, Receive: \d+, Length: (\d+), Exceptions: \d+\)", out)
    failed -= int(length.group(1)) if length else 0
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    p50 = float(re.search(r"^\s+50%\s+(\d+)", out, re.M).group(1))
    p99 = float(re.search(r"^\s+99%\s+(\d+)", out, re.M).group(1))
    done = int(re.search(r"Complete requests:\s+(\d+)", out).group(1))
    return {"requests": done, "throughput_rps": rps, "p50_ms": p50, "p99_ms": p99, "failed": failed,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "note": "ab reports whole milliseconds"}


def run_clients(make_call, concurrency, seconds):
    latencies, errors = [], []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker():
        call = make_call()
        mine = []
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                call()
            except Exception as e:  # counted, reported
                with lock:
                    errors.append(str(e)[:200])
                continue
            mine.append((time.perf_counter() - t) * 1000)
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {"requests": len(latencies), "throughput_rps": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "failed": len(errors), "errors": sorted(set(errors))[:3]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--backends", nargs="+", default=["ort-cpu", "tract"])
    ap.add_argument("--concurrency", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--model", help="an exported graph (default: the embedded demo model)")
    args = ap.parse_args()
    os.environ["DLVP_BIN"] = dlvp = dlvp_bin()
    import test_serve
    test_serve.DLVP = dlvp
    tmp = Path(tempfile.mkdtemp(prefix="dlvp-serve-load-"))
    model_args = ["--model", args.model] if args.model else []

    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
              "dlvp": dlvp, "seconds_per_point": args.seconds, "backends": {}}
    for backend in args.backends:
        server = Server(*model_args, "--backend", backend)
        try:
            http = httpclient.InferenceServerClient(server.http)
            meta = http.get_model_metadata(server.name)
            shape = meta["inputs"][0]["shape"][1:]
            image = np.random.default_rng(0).standard_normal([1, *shape]).astype(np.float32)
            # The graph alone on the same input, as the server's baseline.
            src = tmp / "input.safetensors"
            save_file({"image": image}, str(src))
            bench = json.loads(subprocess.run(
                [dlvp, "bench", *model_args, "--backend", backend, "--input", str(src),
                 "--iters", "50", "--json"], capture_output=True, text=True, check=True).stdout)
            body = tmp / "infer.json"
            body.write_text(json.dumps({"inputs": [{"name": "image", "shape": [1, *shape], "datatype": "FP32",
                                                    "data": image.ravel().tolist()}]}))
            infer_url = server.url(f"/v2/models/{server.name}/infer")

            def http_call():
                client = httpclient.InferenceServerClient(server.http)
                inp = httpclient.InferInput("image", list(image.shape), "FP32")
                inp.set_data_from_numpy(image, binary_data=True)
                return lambda: client.infer(server.name, [inp])

            def grpc_call():
                client = grpcclient.InferenceServerClient(server.grpc)
                inp = grpcclient.InferInput("image", list(image.shape), "FP32")
                inp.set_data_from_numpy(image)
                return lambda: client.infer(server.name, [inp])

            points = {}
            for c in args.concurrency:
                for name, run in [
                    ("ab_json_infer", lambda: run_ab(infer_url, str(body), "application/json", c, args.seconds)),
                    ("ab_v1_detect_png", lambda: run_ab(server.url("/v1/detect"), str(SAMPLE), "image/png", c, args.seconds)),
                    ("tritonclient_http_binary", lambda: run_clients(http_call, c, args.seconds)),
                    ("tritonclient_grpc", lambda: run_clients(grpc_call, c, args.seconds)),
                ]:
                    before = batch_stats(server)
                    point = run()
                    after = batch_stats(server)
                    d = {k: after[k] - before[k] for k in after}
                    point["mean_batch"] = d["images"] / d["runs"] if d["runs"] else None
                    # Inside the server: arrival to answer, less the model's share of it (each
                    # request waits for its whole batch's compute).
                    if d["requests"] and d["runs"]:
                        point["server_ms_per_request"] = 1000 * d["request_s"] / d["requests"]
                        point["compute_ms_per_run"] = 1000 * d["compute_s"] / d["runs"]
                    points.setdefault(name, {})[str(c)] = point
                    print(f"{backend} {name} c={c}: {point['throughput_rps']:.1f} req/s, "
                          f"p50 {point['p50_ms']:.1f} ms, p99 {point['p99_ms']:.1f} ms, "
                          f"mean batch {point['mean_batch'] or 0:.2f}, failed {point['failed']}", flush=True)
            summary = {
                "graph_alone_p50_ms": bench["latency_ms"]["p50"],
                "server_overhead_ms_at_c1": {
                    k: v["1"]["server_ms_per_request"] - v["1"]["compute_ms_per_run"]
                    for k, v in points.items() if "1" in v and "server_ms_per_request" in v["1"]},
                "overhead_p50_ms_at_c1": {k: v["1"]["p50_ms"] - bench["latency_ms"]["p50"]
                                          for k, v in points.items() if "1" in v},
            }
            top = str(max(args.concurrency))
            if "1" in points["tritonclient_grpc"] and top in points["tritonclient_grpc"]:
                summary[f"batching_gain_c{top}_over_c1"] = {
                    k: v[top]["throughput_rps"] / v["1"]["throughput_rps"] for k, v in points.items()}
            report["backends"][backend] = {"bench": bench, "points": points, "summary": summary}
            print(json.dumps(summary, indent=1), flush=True)
        finally:
            server.stop()
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
