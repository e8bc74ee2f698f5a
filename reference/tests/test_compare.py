"""bench/compare end to end on the tiny spec (one timed run each: the numbers are not the point,
the plumbing is): both torch.onnx exporters work on the reference, every subject's outputs match
the PyTorch reference within 1e-4 with exact Top-K (OpenVINO bf16 within 2e-2), and the JSON
holds what the table shows. And
`dlvp inspect --flops` against PyTorch's own FLOP counter on the demo model."""
import json
import os
import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import REPO
from dlvp_reference.model import from_checkpoint


def test_compare_runs_every_subject_on_the_tiny_spec(dlvp_bin, tmp_path):
    env = dict(os.environ, DLVP_BIN=str(dlvp_bin))
    run = subprocess.run(
        [sys.executable, REPO / "bench/compare.py", "--spec", "tiny", "--batch", "1,2", "--iters", "1",
         "--warmup", "0", "--work", tmp_path / "work", "--results", tmp_path / "results"],
        capture_output=True, text=True, env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    result = json.loads((tmp_path / "results" / "tiny.json").read_text())
    assert [r["batch"] for r in result["rows"]] == [1, 2]
    for row in result["rows"]:
        subjects = row["subjects"]
        assert set(subjects) == {
            "a torch eager", "b torch.onnx classic", "b torch.onnx dynamo",
            "b' torch.onnx classic openvino", "b' torch.onnx dynamo openvino",
            "c dlvp ort-cpu", "d dlvp tract", "e dlvp openvino f32", "f dlvp openvino bf16",
            "g dlvp int8 ort-cpu", "h dlvp int8 openvino", "i dlvp int8 tract",
        }
        for name, r in subjects.items():
            assert "error" not in r, (name, r)
            if "unavailable" in r:
                # Only a precision this CPU lacks may be missing, and it says why.
                assert name == "f dlvp openvino bf16" and not cpu_has_bf16(), (name, r)
                assert "cannot compute in bf16" in r["unavailable"], r
                continue
            assert r["median_s"] > 0 and r["peak_rss_mib"] > 10 and r["bytes"] > 0, name
            # bf16 keeps 8 mantissa bits: within 2e-2 on this tiny random model (conformance suite).
            # int8 on random weights and random-normal inputs measured up to 5.7e-2 (maps); a
            # broken quantization is off by far more.
            tolerance = 2e-2 if "bf16" in name else 0.1 if "int8" in name else 1e-4
            if r["err"] is not None:
                assert r["err"]["score"] <= tolerance and r["err"]["map"] <= tolerance, (name, r["err"])
                assert r["err"]["topk_exact"] or "bf16" in name or "int8" in name, (name, r["err"])
        assert row["flops"] > 0 and row["reference_flops"] > row["flops"]
    assert "c is" in run.stdout and "floor % spec" in run.stdout and "| 2 | d dlvp tract |" in run.stdout
    assert "dlvp's best f32" in run.stdout
    bf16 = result["rows"][0]["subjects"]["f dlvp openvino bf16"]
    assert ("OpenVINO bf16 is" in run.stdout) == ("unavailable" not in bf16), bf16
    assert ("not available on this CPU" in run.stdout) == ("unavailable" in bf16)
    assert "g dlvp int8 ort-cpu is" in run.stdout


def cpu_has_bf16() -> bool:
    """Whether this CPU has the bf16 arithmetic OpenVINO's CPU plugin computes in."""
    flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "").split()
    return bool({"avx512_bf16", "amx_bf16", "avx_ne_convert"} & set(flags))


def test_a_precision_the_cpu_lacks_is_unavailable_not_a_failure():
    """bench/compare's reading of a failed dlvp run: dlvp's own words for a precision or an
    instruction set the CPU lacks make the row unavailable, with the reason; anything else stays
    a failure."""
    sys.path.insert(0, str(REPO / "bench"))
    from compare import unavailable_reason

    bf16 = "dlvp bench ... failed:\nerror: OpenVINO: device `CPU` cannot compute in bf16 (it offers: FP32 INT8 BIN EXPORT_IMPORT)\n"
    assert unavailable_reason(bf16) == "OpenVINO: device `CPU` cannot compute in bf16 (it offers: FP32 INT8 BIN EXPORT_IMPORT)"
    int8 = "error: ort-cpu would compute this int8 graph wrongly on this CPU: its weights use the full int8 range"
    assert unavailable_reason(int8).startswith("ort-cpu would compute")
    assert unavailable_reason("error: model.onnx: not an ONNX model") is None


def test_graph_flops_agree_with_pytorch_flop_counter(dlvp_bin):
    """The demo graph's contractions against torch's count of the reference: the graph may do less
    (its text tower stops at the last EOT; pass 1's last block runs for the class row and the K
    selected rows only: 1/12 of this 6-layer model's visual work) but never more, and the rest is
    the same work, so the graph's count is 80–100% of the reference's (measured: 90%). And FLOPs
    scale with the batch."""
    model = REPO / "models/demo/dlvp-clip-demo.onnx"
    counted = {}
    for batch in (1, 3):
        out = subprocess.run([dlvp_bin, "inspect", model, "--flops", "--batch", str(batch), "--json"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        counted[batch] = json.loads(out.stdout)["flops"]["flops"]
    assert counted[3] == 3 * counted[1]
    reference = from_checkpoint(REPO / "models/demo/checkpoint.safetensors").eval()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused fast path hides its matmuls from the counter
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            reference(torch.randn(1, 3, 224, 224))
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    ratio = counted[1] / counter.get_total_flops()
    assert 0.8 <= ratio <= 1.0, ratio
