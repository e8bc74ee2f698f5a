"""bench/compare: DLVP-CLIP run four ways on the same weights and inputs, one table.

  a  torch eager   the PyTorch reference (reference/dlvp_reference), fp32, --threads threads
  b  torch.onnx    the reference exported by torch.onnx.export — classic (TorchScript) and dynamo —
                   run by ONNX Runtime CPU; the faster of the two is the row "b" that counts
  b' torch.onnx on OpenVINO  the same two exports run by OpenVINO CPU at f32 (the strongest
                   alternative a CPU user has; Python `openvino`, reading the ONNX file directly)
  c  dlvp ort      `dlvp export`'s graph through `dlvp bench --backend ort-cpu`
  d  dlvp tract    the same graph through `dlvp bench --backend tract`
  e  dlvp openvino the same graph through `dlvp bench --backend openvino` (f32), and
  f                at `--ov-precision bf16` (errors then within 1e-2, not 1e-4)
  g, h, i dlvp int8 `dlvp export --int8` (calibrated on 32 synthetic defect-free surfaces from
                   `dlvp demo-data --size S --seed 5`) on ONNX Runtime, OpenVINO and tract

Every subject runs in its own process (so peak RSS is its own), loads its model (timed), runs
--warmup untimed and --iters timed calls per batch size, and saves its outputs of the last call;
errors are the largest absolute differences from (a) on the same input, Top-K compared exactly.
Two FLOP counts, both of contractions (MatMul/Gemm/Conv, 2 per multiply-add): the spec's — the
reference's work as PyTorch's FlopCounterMode counts it — and the dlvp graph's (`dlvp inspect
--flops`; less, as the graph skips work whose results are never used). A floor is FLOPs ÷ this
machine's fp32 matmul peak (best of numpy/OpenBLAS and torch, 2048³, measured with --threads
threads); "floor %" is floor time ÷ measured time: "spec" for the model's cost as specified,
"work" for how close to peak the dlvp graph's own work runs.

    bench/compare --spec vit-b16-224 --batch 1,4        (bench/compare --help for all options)

Writes RESULTS/<spec>.json (every number) and prints the table. Run from the repository root
with reference/.venv's Python (the bench/compare wrapper does that)."""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPECS = {
    "tiny": REPO / "model-spec/tiny.yaml",
    "demo": REPO / "model-spec/dlvp-clip-demo.yaml",
    "vit-b16-224": REPO / "model-spec/dlvp-clip-vit-b16-224.yaml",
    "vit-l14-518": REPO / "model-spec/dlvp-clip-vit-l14-518.yaml",
}
OUTPUTS = ("anomaly_score", "anomaly_map", "topk_indices")


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM, as `dlvp bench`). Not getrusage's ru_maxrss: Linux carries
    it across exec, so a worker would report its parent's (torch-laden) high-water mark."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed_calls(call, warmup: int, iters: int) -> tuple[list[float], object]:
    out = None
    for _ in range(warmup):
        call()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t)
    return times, out


# --- workers: each runs in its own process and prints one JSON line -----------------------------


def worker_torch(a) -> dict:
    import torch
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(a.threads)
    from dlvp_reference.model import from_checkpoint

    t = time.perf_counter()
    model = from_checkpoint(a.weights).eval()
    load_s = time.perf_counter() - t
    image = load_file(a.input)["image"]
    with torch.inference_mode():
        times, out = timed_calls(lambda: model(image), a.warmup, a.iters)
    save_file({k: out[k].contiguous() for k in OUTPUTS}, a.save)
    flops = None
    if a.count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        # The MHA fast path is one fused kernel the counter cannot see into.
        torch.backends.mha.set_fastpath_enabled(False)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(image)
        flops = counter.get_total_flops()
    return {"load_s": load_s, "times_s": times, "peak_rss_mib": peak_rss_mib(), "reference_flops": flops}


def contract_module(model):
    """The reference with only the graph contract's three outputs (for torch.onnx.export)."""
    import torch

    class Contract(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, image):
            out = self.inner(image)
            return tuple(out[k] for k in OUTPUTS)

    return Contract(model).eval()


def worker_torch_export(a) -> dict:
    import torch

    torch.set_num_threads(a.threads)
    from dlvp_reference.model import from_checkpoint

    model = contract_module(from_checkpoint(a.weights))
    size = model.inner.spec.image_size
    # A batch-2 example keeps the batch dimension symbolic for the dynamo exporter.
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    t = time.perf_counter()
    if a.exporter == "classic":
        # The classic exporter traces through nn.MultiheadAttention only without its fast path.
        torch.backends.mha.set_fastpath_enabled(False)
        torch.onnx.export(
            model, (example,), a.out, dynamo=False, opset_version=17,
            input_names=["image"], output_names=list(OUTPUTS),
            dynamic_axes={"image": {0: "batch"}, **{k: {0: "batch"} for k in OUTPUTS}},
        )
    else:
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.onnx.export(
            model, (example,), dynamo=True, dynamic_shapes={"image": {0: batch}}, optimize=True,
        )
        program.save(a.out)
    return {"export_s": time.perf_counter() - t, "peak_rss_mib": peak_rss_mib()}


def worker_ort(a) -> dict:
    import numpy as np
    import onnxruntime as ort
    from safetensors.numpy import load_file, save_file

    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    t = time.perf_counter()
    session = ort.InferenceSession(a.model, options, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t
    image = load_file(a.input)["image"]
    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    times, out = timed_calls(lambda: session.run(None, {name: image}), a.warmup, a.iters)
    by_position = dict(zip(OUTPUTS, out))  # dynamo names outputs after the module's fields
    by_name = dict(zip(names, out))
    chosen = {k: by_name.get(k, by_position[k]) for k in OUTPUTS}
    save_file({k: np.ascontiguousarray(v) for k, v in chosen.items()}, a.save)
    return {"load_s": load_s, "times_s": times, "peak_rss_mib": peak_rss_mib()}


def worker_ov(a) -> dict:
    import numpy as np
    import openvino as ov
    from safetensors.numpy import load_file, save_file

    core = ov.Core()
    core.set_property("CPU", {"INFERENCE_NUM_THREADS": a.threads, "INFERENCE_PRECISION_HINT": "f32"})
    t = time.perf_counter()
    compiled = core.compile_model(a.model, "CPU")
    load_s = time.perf_counter() - t
    image = load_file(a.input)["image"]
    request = compiled.create_infer_request()
    names = [o.get_any_name() if o.get_names() else "" for o in compiled.outputs]

    def call():
        result = request.infer({0: image})
        return [np.asarray(result[o]) for o in compiled.outputs]

    times, out = timed_calls(call, a.warmup, a.iters)
    by_position = dict(zip(OUTPUTS, out))
    by_name = dict(zip(names, out))
    chosen = {k: by_name.get(k, by_position[k]) for k in OUTPUTS}
    save_file({k: np.ascontiguousarray(v) for k, v in chosen.items()}, a.save)
    return {"load_s": load_s, "times_s": times, "peak_rss_mib": peak_rss_mib()}


def worker_peak(a) -> dict:
    """fp32 matmul peak, GFLOP/s: best of numpy (OpenBLAS) and torch, 2048³ products."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    n, best = 2048, {}
    x = np.random.default_rng(0).random((n, n), dtype=np.float32)
    y = np.random.default_rng(1).random((n, n), dtype=np.float32)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for name, f in [("numpy", lambda: x @ y), ("torch", lambda: tx @ ty)]:
        times, _ = timed_calls(f, 3, 10)
        best[name] = 2 * n**3 / min(times) / 1e9
    return {"gflops": best}


WORKERS = {
    "torch": worker_torch,
    "torch-export": worker_torch_export,
    "ort": worker_ort,
    "ov": worker_ov,
    "peak": worker_peak,
}


# --- driver ------------------------------------------------------------------------------------


def run_worker(kind: str, threads: int, **kw) -> dict:
    args = [sys.executable, __file__, "--worker", kind, "--threads", str(threads)]
    for k, v in kw.items():
        if v is True:
            args.append("--" + k.replace("_", "-"))
        elif v not in (None, False):
            args += ["--" + k.replace("_", "-"), str(v)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    run = subprocess.run(args, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{run.stderr[-4000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def dlvp(binary: Path, *args: str) -> str:
    run = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"dlvp {' '.join(map(str, args))} failed:\n{run.stderr[-4000:]}")
    return run.stdout


# What dlvp says when this machine cannot do what a subject asks (a precision or an instruction set
# the CPU lacks): such a subject is reported as unavailable here, with dlvp's reason, not as a failure.
UNAVAILABLE_MARKERS = ("cannot compute in", "wrongly on this CPU")


def unavailable_reason(message: str) -> str | None:
    """dlvp's reason, when `message` (a failed dlvp run's error) says this machine cannot run the
    subject at all; None for any other failure."""
    for line in message.splitlines():
        if any(m in line for m in UNAVAILABLE_MARKERS):
            return line.removeprefix("error: ").strip()
    return None


def errors(reference: Path, other: Path) -> dict:
    import numpy as np
    from safetensors.numpy import load_file

    r, o = load_file(str(reference)), load_file(str(other))
    return {
        "score": float(np.abs(r["anomaly_score"].reshape(-1) - o["anomaly_score"].reshape(-1)).max()),
        "map": float(np.abs(r["anomaly_map"] - o["anomaly_map"].reshape(r["anomaly_map"].shape)).max()),
        "topk_exact": bool(np.array_equal(r["topk_indices"], o["topk_indices"].reshape(r["topk_indices"].shape))),
    }


def prepare(spec_name: str, work: Path, seed: int) -> tuple[Path, object]:
    from dlvp_reference import checkpoint, spec as spec_mod
    from dlvp_reference.golden import random_tiny_model

    spec = spec_mod.load(SPECS[spec_name])
    if spec_name == "demo":
        return REPO / "models/demo/checkpoint.safetensors", spec
    weights = work / "weights.safetensors"
    if not weights.exists():
        checkpoint.save(weights, random_tiny_model(spec, seed).state_dict(), spec)
    return weights, spec


def compare(a) -> dict:
    import torch
    from safetensors.torch import save_file

    work = Path(a.work) / a.spec
    work.mkdir(parents=True, exist_ok=True)
    weights, spec = prepare(a.spec, work, a.seed)
    size = spec.image_size
    log = lambda *x: print(*x, file=sys.stderr, flush=True)  # noqa: E731

    log(f"== {a.spec}: {weights}")
    peak = run_worker("peak", a.threads)["gflops"]
    log(f"matmul peak: {peak}")
    dlvp_graph = work / "dlvp.onnx"
    t = time.perf_counter()
    dlvp(a.dlvp, "export", "--weights", weights, "--out", dlvp_graph)
    dlvp_export_s = time.perf_counter() - t
    exported = {"dlvp": {"path": dlvp_graph, "export_s": dlvp_export_s}}
    # int8: calibrated on 32 defect-free synthetic surfaces at the spec's size (demo-data, seed 5).
    calib = work / "calibration"
    if not calib.exists():
        dlvp(a.dlvp, "demo-data", "--out", calib, "--size", size, "--count", 1, "--train-count", 8, "--seed", 5)
    int8_graph = work / "dlvp-int8.onnx"
    t = time.perf_counter()
    dlvp(a.dlvp, "export", "--weights", weights, "--out", int8_graph, "--int8", "--calibrate", calib, "--calib-count", 32)
    exported["dlvp-int8"] = {"path": int8_graph, "export_s": time.perf_counter() - t}
    log(f"dlvp export --int8: {exported['dlvp-int8']['export_s']:.1f} s")
    for exporter in ("classic", "dynamo"):
        path = work / f"torch-{exporter}.onnx"
        try:
            r = run_worker("torch-export", a.threads, weights=weights, out=path, exporter=exporter)
            exported[exporter] = {"path": path, "export_s": r["export_s"]}
            log(f"torch.onnx.export {exporter}: {r['export_s']:.1f} s")
        except RuntimeError as e:
            exported[exporter] = {"path": None, "error": str(e).splitlines()[-1]}
            log(f"torch.onnx.export {exporter} FAILED: {exported[exporter]['error']}")

    def graph_bytes(path: Path) -> int:
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.suffix != ".json")

    rows = []
    for batch in a.batch:
        image = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(a.seed + batch))
        inp = work / f"input-b{batch}.safetensors"
        save_file({"image": image}, str(inp))
        flops = json.loads(dlvp(a.dlvp, "inspect", dlvp_graph, "--flops", "--batch", batch, "--json"))["flops"]["flops"]
        common = dict(threads=a.threads, input=inp, warmup=a.warmup, iters=a.iters)
        ref_out = work / f"out-b{batch}-torch.safetensors"
        ref = run_worker("torch", weights=weights, save=ref_out, count_flops=True, **common)
        results = {"a torch eager": dict(ref, bytes=weights.stat().st_size, err=None)}
        log(f"batch {batch}: torch eager {statistics.median(ref['times_s']) * 1e3:.1f} ms")
        for exporter in ("classic", "dynamo"):
            path = exported[exporter]["path"]
            if path is None:
                results[f"b torch.onnx {exporter}"] = {"error": exported[exporter]["error"]}
                continue
            for worker, label in (("ort", f"b torch.onnx {exporter}"), ("ov", f"b' torch.onnx {exporter} openvino")):
                out = work / f"out-b{batch}-{exporter}-{worker}.safetensors"
                try:
                    r = run_worker(worker, model=path, save=out, **common)
                    results[label] = dict(r, bytes=graph_bytes(path), err=errors(ref_out, out))
                except RuntimeError as e:
                    results[label] = {"error": str(e).splitlines()[-1]}
        dlvp_subjects = (
            (dlvp_graph, "ort-cpu", "c dlvp ort-cpu", ()),
            (dlvp_graph, "tract", "d dlvp tract", ()),
            (dlvp_graph, "openvino", "e dlvp openvino f32", ()),
            (dlvp_graph, "openvino", "f dlvp openvino bf16", ("--ov-precision", "bf16")),
            (int8_graph, "ort-cpu", "g dlvp int8 ort-cpu", ()),
            (int8_graph, "openvino", "h dlvp int8 openvino", ()),
            (int8_graph, "tract", "i dlvp int8 tract", ()),
        )
        for graph, backend, label, extra in dlvp_subjects:
            out = work / f"out-b{batch}-{label.split()[0]}.safetensors"
            try:
                r = json.loads(dlvp(
                    a.dlvp, "bench", "--model", graph, "--backend", backend, "--input", inp,
                    "--save-outputs", out, "--iters", a.iters, "--warmup", a.warmup, "--json", *extra,
                ))
            except RuntimeError as e:
                reason = unavailable_reason(str(e))
                if reason is None:
                    raise
                results[label] = {"unavailable": reason}
                log(f"batch {batch}: {label} not available on this CPU: {reason}")
                continue
            results[label] = {
                "load_s": r["load_s"], "median_s": r["latency_ms"]["p50"] / 1e3, "times_s": None,
                "peak_rss_mib": r["peak_rss_bytes"] / 2**20, "bytes": graph_bytes(graph),
                "err": errors(ref_out, out), "first_run_s": r["first_run_s"],
            }
        for r in results.values():
            if "times_s" in r and r["times_s"]:
                r["median_s"] = statistics.median(r["times_s"])
        rows.append({"batch": batch, "flops": flops, "reference_flops": ref["reference_flops"], "subjects": results})

    return {
        "spec": a.spec, "weights": str(weights), "threads": a.threads, "iters": a.iters, "warmup": a.warmup,
        "machine": machine(), "matmul_peak_gflops": peak,
        "exports": {k: {kk: (str(vv) if isinstance(vv, Path) else vv) for kk, vv in v.items()} for k, v in exported.items()},
        "rows": rows,
    }


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs"


def table(result: dict) -> str:
    peak = max(result["matmul_peak_gflops"].values())
    lines = [
        f"{result['spec']}: {result['machine']}; {result['threads']} threads; fp32 matmul peak "
        + ", ".join(f"{k} {v:.0f}" for k, v in result["matmul_peak_gflops"].items()) + " GFLOP/s; "
        + f"median of {result['iters']} runs after {result['warmup']} warm-up",
        "| batch | subject | ms/batch | ms/image | floor % spec | floor % work | load s | peak RSS MiB | graph MB | max err score / map | Top-K |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in result["rows"]:
        floor_s = row["flops"] / (peak * 1e9)
        spec_floor_s = (row["reference_flops"] or row["flops"]) / (peak * 1e9)
        for name, r in row["subjects"].items():
            if "error" in r:
                lines.append(f"| {row['batch']} | {name} | failed: {r['error'][:60]} ||||||||")
                continue
            if "unavailable" in r:
                lines.append(f"| {row['batch']} | {name} | not available on this CPU: {r['unavailable'][:90]} ||||||||")
                continue
            err = r["err"]
            e = "reference" if err is None else f"{err['score']:.1e} / {err['map']:.1e}"
            topk = "" if err is None else ("exact" if err["topk_exact"] else "DIFFERENT")
            lines.append(
                f"| {row['batch']} | {name} | {r['median_s'] * 1e3:.1f} | {r['median_s'] * 1e3 / row['batch']:.1f} "
                f"| {100 * spec_floor_s / r['median_s']:.0f} | {100 * floor_s / r['median_s']:.0f} "
                f"| {r['load_s']:.2f} | {r['peak_rss_mib']:.0f} "
                f"| {r['bytes'] / 1e6:.1f} | {e} | {topk} |"
            )
        ref = row["reference_flops"]
        lines.append(
            f"| {row['batch']} | FLOPs | spec {ref / 1e9:.2f} G, dlvp graph {row['flops'] / 1e9:.2f} G; "
            f"floors {spec_floor_s * 1e3:.1f} / {floor_s * 1e3:.1f} ms ||||||||"
        )
    for row in result["rows"]:
        s = row["subjects"]
        b = [s[k]["median_s"] for k in s if k.startswith("b ") and "median_s" in s[k]]
        alternatives = {k: s[k]["median_s"] for k in s if k.startswith("b") and "median_s" in s[k]}
        c, d = s["c dlvp ort-cpu"]["median_s"], s["d dlvp tract"]["median_s"]
        rss_b = [s[k]["peak_rss_mib"] for k in s if k.startswith("b ") and "peak_rss_mib" in s[k]]
        if b:
            lines.append(
                f"batch {row['batch']}: c is {min(b) / c:.2f}× as fast as the best b; d takes {d / c:.2f}× c's time; "
                f"c's peak RSS is {s['c dlvp ort-cpu']['peak_rss_mib'] / min(rss_b):.2f}× the smallest b's"
            )
        ours = {k: s[k]["median_s"] for k in ("c dlvp ort-cpu", "e dlvp openvino f32") if "median_s" in s.get(k, {})}
        if alternatives and ours:
            best_ours = min(ours, key=ours.get)
            best_alt = min(alternatives, key=alternatives.get)
            lines.append(
                f"batch {row['batch']}: dlvp's best f32 ({best_ours}) is {alternatives[best_alt] / ours[best_ours]:.2f}× "
                f"as fast as the best alternative ({best_alt})"
            )
        for k in ("g dlvp int8 ort-cpu", "h dlvp int8 openvino", "i dlvp int8 tract"):
            if "median_s" in s.get(k, {}):
                lines.append(f"batch {row['batch']}: {k} is {c / s[k]['median_s']:.2f}× as fast as c (ORT f32)")
        if "median_s" in s.get("f dlvp openvino bf16", {}):
            lines.append(
                f"batch {row['batch']}: OpenVINO bf16 is {c / s['f dlvp openvino bf16']['median_s']:.2f}× as fast as c (ORT f32)"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", choices=sorted(SPECS), default="vit-b16-224")
    p.add_argument("--batch", default="1,4", help="comma-separated batch sizes (default 1,4)")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", default=os.environ.get("WORK", "/tmp/dlvp-compare"))
    p.add_argument("--results", default=str(REPO / "bench/results"))
    p.add_argument("--dlvp", default=os.environ.get("DLVP_BIN", str(REPO / "target/release/dlvp")))
    # worker-only
    p.add_argument("--worker", choices=sorted(WORKERS))
    for name in ("weights", "input", "save", "model", "out", "exporter"):
        p.add_argument("--" + name)
    p.add_argument("--count-flops", action="store_true")
    a = p.parse_args()
    if a.worker:
        print(json.dumps(WORKERS[a.worker](a)))
        return
    a.batch = [int(b) for b in a.batch.split(",")]
    a.dlvp = Path(a.dlvp)
    result = compare(a)
    out = Path(a.results) / f"{a.spec}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    text = table(result)
    print(text)
    print(f"(all numbers: {out})")


if __name__ == "__main__":
    main()
