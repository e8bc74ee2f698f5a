"""int8 graphs give the same answers on every x86 CPU family (docs/int8.md, "Every CPU").

ONNX Runtime's and OpenVINO's x86 int8 kernels multiply u8 × s8 (a signed activation is shifted
by +128) and, on CPUs without VNNI (AVX2-only: Haswell to Zen 3), add each pair of adjacent
products in 16 bits with saturation (`vpmaddubsw`). A weight pair whose same-signed magnitudes sum
past 32767 / 255 can then clip. dlvp's default int8 weights stay within ±64, where no pair can.

Two kinds of check:
- a static one, independent of the CPU that runs it: every int8 weight feeding a MatMul, pair by
  adjacent pair along K, for the worst activation the quantizer can produce;
- the real kernels of an AVX2-only CPU, emulated: `qemu-x86_64 -cpu EPYC-Milan` (AMD Zen 3: AVX2
  and FMA, no AVX-512, no VNNI) runs ONNX Runtime and dlvp itself on this machine, whatever its CPU.
  scripts/test installs qemu-user (Debian) and sets DLVP_REQUIRE_QEMU=1; without it these skip.
"""
import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import REPO

TINY = REPO / "fixtures/tiny/weights.safetensors"
SAMPLES = REPO / "fixtures/samples"
ZEN3 = "EPYC-Milan"
I16_MAX = 32767


def pair_overflows(model: onnx.ModelProto) -> tuple[int, int]:
    """(pairs that can leave 16 bits, largest |q|) over every int8 weight a DequantizeLinear feeds
    into a MatMul's B input: for adjacent rows k, k+1 (either alignment) of each column,
    255 · (w⁺ₖ + w⁺ₖ₊₁) ≤ 32767 and 255 · (w⁻ₖ + w⁻ₖ₊₁) ≤ 32768."""
    inits = {t.name: t for t in model.graph.initializer}
    dequantized = {n.output[0]: n.input[0] for n in model.graph.node
                   if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    over, largest, seen = 0, 0, set()
    for n in model.graph.node:
        if n.op_type != "MatMul" or n.input[1] not in dequantized or dequantized[n.input[1]] in seen:
            continue
        seen.add(dequantized[n.input[1]])
        w = numpy_helper.to_array(inits[dequantized[n.input[1]]]).astype(np.int64)
        assert w.ndim == 2
        largest = max(largest, int(np.abs(w).max()))
        pos, neg = np.maximum(w, 0), np.maximum(-w, 0)
        over += int(((pos[:-1] + pos[1:]) * 255 > I16_MAX).sum() + ((neg[:-1] + neg[1:]) * 255 > I16_MAX + 1).sum())
    assert seen, "no int8 weights found"
    return over, largest


def export_int8(dlvp_bin, out, *extra):
    run = subprocess.run([dlvp_bin, "export", "--weights", TINY, "--out", out, "--int8", "--calibrate", SAMPLES,
                          *extra], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return onnx.load(str(out))


@pytest.fixture(scope="module")
def graphs(dlvp_bin, tmp_path_factory):
    """The tiny checkpoint's int8 graph with the default (reduced) and the full weight range."""
    d = tmp_path_factory.mktemp("int8")
    return {r: (d / f"{r}.onnx", export_int8(dlvp_bin, d / f"{r}.onnx", "--int8-weights", r))
            for r in ("reduced", "full")}


def test_default_int8_weights_cannot_overflow_a_16_bit_pair_and_full_range_ones_can(dlvp_bin, tmp_path, graphs):
    """The static check: the default export passes it, the full-range one (every export before
    this check existed) fails it; the metadata and `dlvp inspect` say which is which."""
    default = export_int8(dlvp_bin, tmp_path / "default.onnx")
    over, largest = pair_overflows(default)
    assert over == 0 and largest == 64, (over, largest)
    assert {m.key: m.value for m in default.metadata_props}["dlvp.int8.weight_range"] == "reduced"
    over, largest = pair_overflows(graphs["full"][1])
    assert over > 0 and largest == 127, (over, largest)
    for r, expected in (("reduced", "exact on every CPU"), ("full", "WRONG on x86 CPUs without VNNI")):
        text = subprocess.run([dlvp_bin, "inspect", graphs[r][0]], capture_output=True, text=True, check=True).stdout
        assert expected in text and f"(range {r})" in text and "symmetric int8 with zero points 0" in text, text


def qemu() -> str:
    if platform.machine() != "x86_64":
        pytest.skip(f"the emulated CPU is an x86-64 one, and this machine is {platform.machine()}")
    path = shutil.which("qemu-x86_64")
    if path is None:
        if os.environ.get("DLVP_REQUIRE_QEMU"):
            pytest.fail("qemu-x86_64 not found, and DLVP_REQUIRE_QEMU is set (scripts/test installs qemu-user)")
        pytest.skip("qemu-x86_64 not found: the emulated AVX2-only CPU checks need Debian's qemu-user")
    return path


def on_zen3(*command, timeout=600) -> subprocess.CompletedProcess:
    """`command` on an emulated AMD Zen 3 (AVX2, FMA; no AVX-512, VNNI or bf16). qemu's warnings
    about CPUID bits it cannot emulate (none of them arithmetic) are dropped."""
    run = subprocess.run([qemu(), "-cpu", ZEN3, *map(str, command)], capture_output=True, text=True, timeout=timeout)
    run.stderr = "\n".join(l for l in run.stderr.splitlines() if "TCG doesn't support" not in l)
    return run


ONE_MATMUL = """
import sys, numpy as np, onnx, onnxruntime as ort
from onnx import helper, numpy_helper, TensorProto
K, N, wmax = 64, 8, int(sys.argv[1])
w = np.random.default_rng(0).integers(-wmax, wmax + 1, size=(K, N)).astype(np.int8)
w[:, 0] = wmax
x = np.full((1, K), 127, np.float32)
inits = [numpy_helper.from_array(np.array(1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
         numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.ones(N, np.float32), "sw"),
         numpy_helper.from_array(np.zeros(N, np.int8), "zw")]
nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
         helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wd"], axis=1), helper.make_node("MatMul", ["d", "wd"], ["y"])]
g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
print(int(np.abs(y.astype(np.int64) - x.astype(np.int64) @ w.astype(np.int64)).max()))
"""


@pytest.mark.parametrize("wmax,exact", [(64, True), (65, False), (127, False)])
def test_the_cause_one_qdq_matmul_saturates_on_an_avx2_only_cpu_past_64(wmax, exact):
    """The cause, shown with one QDQ MatMul (activations 127, a column of weights all `wmax`) on
    ONNX Runtime on an emulated Zen 3: exact up to ±64, wrong from ±65 (255 · 65 · 2 > 32767)."""
    run = on_zen3(sys.executable, "-c", ONE_MATMUL, wmax)
    assert run.returncode == 0, run.stderr
    error = int(run.stdout.split()[-1])
    assert (error == 0) == exact, f"weights ±{wmax}: max abs error {error}"


def test_the_default_int8_graph_gives_the_same_answers_on_an_avx2_only_cpu(graphs, tmp_path):
    """The tiny int8 graph on ONNX Runtime on an emulated Zen 3 vs this machine's CPU: the default
    (reduced) weights agree to float rounding (measured: identical on a Xeon; the f32 parts' kernels
    may differ by ISA, hence 1e-3, against the 0.1+ a saturated pair costs), Top-K equal.
    Closeness to the fp32 graph is test_export_parity.py's and tests/int8.rs's."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, numpy as np, onnxruntime as ort\n"
        "x = np.random.default_rng(3).uniform(-1, 1, size=(2, 3, 56, 56)).astype(np.float32)\n"
        "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
        "score, amap, topk = s.run(None, {'image': x})\n"
        "np.savez(sys.argv[2], score=score, amap=amap, topk=topk)\n")
    native, zen3 = tmp_path / "native.npz", tmp_path / "zen3.npz"
    path = graphs["reduced"][0]
    subprocess.run([sys.executable, script, path, native], check=True)
    run = on_zen3(sys.executable, script, path, zen3)
    assert run.returncode == 0, run.stderr
    a, b = np.load(native), np.load(zen3)
    e_score, e_map = np.abs(a["score"] - b["score"]).max(), np.abs(a["amap"] - b["amap"]).max()
    print(f"reduced int8, emulated Zen 3 vs this CPU: max abs difference score {e_score:.2e}, map {e_map:.2e}")
    assert e_score <= 1e-3 and e_map <= 1e-3
    assert np.array_equal(a["topk"], b["topk"])


def test_dlvp_verifies_the_default_graph_and_refuses_a_full_range_one_on_an_avx2_only_cpu(dlvp_bin, graphs, tmp_path):
    """dlvp itself on the emulated Zen 3: `export --int8 --verify` (the command that failed on a real
    Zen 3) passes with the default weights and names the CPU features; a full-range graph is
    refused by verify, by `detect --backend ort-cpu`, and left by `auto` for no backend."""
    run = on_zen3(dlvp_bin, "export", "--weights", TINY, "--out", tmp_path / "m.onnx", "--int8",
                  "--calibrate", SAMPLES, "--calib-count", 2, "--verify")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "verify int8 on CPU features: avx2 fma (no VNNI" in run.stdout, run.stdout
    assert "exact on every CPU" in run.stdout and "verify onnxruntime-cpu" in run.stdout, run.stdout
    run = on_zen3(dlvp_bin, "export", "--weights", TINY, "--out", tmp_path / "f.onnx", "--int8",
                  "--calibrate", SAMPLES, "--calib-count", 2, "--int8-weights", "full", "--verify")
    assert run.returncode != 0 and "would saturate" in run.stderr, run.stdout + run.stderr
    assert not (tmp_path / "f.onnx").exists(), "a graph that failed verify is not written"
    image = SAMPLES / "tile_chip.png"
    run = on_zen3(dlvp_bin, "detect", image, "--model", graphs["full"][0], "--backend", "ort-cpu")
    assert run.returncode != 0 and "would compute this int8 graph wrongly on this CPU" in run.stderr, run.stderr
    run = on_zen3(dlvp_bin, "detect", image, "--model", graphs["reduced"][0], "--backend", "ort-cpu", "--json")
    assert run.returncode == 0, run.stderr


def test_the_cpp_detector_refuses_a_full_range_graph_on_an_avx2_only_cpu(graphs):
    """examples/cpp's `dlvp_detect` (built by scripts/test, DLVP_CPP_EXAMPLE) on the emulated Zen 3:
    the default int8 graph runs, a full-range one is refused by name before it is loaded."""
    binary = os.environ.get("DLVP_CPP_EXAMPLE")
    if not binary:
        if os.environ.get("DLVP_REQUIRE_CPP_EXAMPLE"):
            pytest.fail("DLVP_REQUIRE_CPP_EXAMPLE is set but DLVP_CPP_EXAMPLE is not (scripts/test builds it)")
        pytest.skip("needs examples/cpp's dlvp_detect (DLVP_CPP_EXAMPLE; scripts/test builds it)")
    image = SAMPLES / "tile_chip.png"
    run = on_zen3(binary, graphs["reduced"][0], image, "--json")
    assert run.returncode == 0 and '"score"' in run.stdout, run.stdout + run.stderr
    run = on_zen3(binary, graphs["full"][0], image, "--json")
    assert run.returncode != 0, run.stdout
    assert "would compute this int8 graph wrongly on this CPU" in run.stderr, run.stderr
