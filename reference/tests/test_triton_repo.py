"""`dlvp export --triton-repo`: the config.pbtxt parses with Triton's own ``ModelConfig`` protobuf
(from the ``tritonclient`` package, strict text-format parsing: an unknown field or a wrong enum
fails) and states what the ONNX graph in ``1/model.onnx`` really has — input/output names,
dtypes, per-request dims (batch left out, ``anomaly_score``'s scalar via ``reshape``), a dynamic
batch dimension, a TensorRT profile over the real input, warm-up samples of the real input, and
only TensorRT keys the ONNX Runtime backend parses. The model in the repository is run by ONNX
Runtime at the largest batch the config allows, from its folder (external data too).

Then a real Triton server (2.51, the ``tritonserver`` binary of the ``nvidia-pytriton`` wheel,
which has no ONNX Runtime backend) loads the repositories: its model-config validator runs before
the backend lookup, so a good config stops only at "unable to find backend library for backend
'onnxruntime'" while a broken one is refused with the validator's message."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format

from conftest import REPO

WEIGHTS = REPO / "fixtures/tiny/weights.safetensors"


@pytest.fixture(scope="module")
def model_config_pb2():
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("tritonclient is not installed; scripts/test installs reference/requirements-triton.txt")
    # Loaded by path: importing tritonclient.grpc would pull in grpcio, which the config needs not.
    path = Path(list(spec.submodule_search_locations)[0]) / "grpc" / "model_config_pb2.py"
    loader = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


def export_repo(dlvp_bin, repo, *extra):
    run = subprocess.run(
        [dlvp_bin, "export", "--weights", WEIGHTS, "--triton-repo", repo, *map(str, extra)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def parse(pb2, path):
    config = pb2.ModelConfig()
    text_format.Parse(path.read_text(), config)
    return config


ONNX_TYPE = {"TYPE_FP32": onnx.TensorProto.FLOAT, "TYPE_UINT8": onnx.TensorProto.UINT8, "TYPE_INT64": onnx.TensorProto.INT64}


def graph_shapes(values):
    return {
        v.name: (v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
        for v in values
    }


def check_against_graph(pb2, config, model):
    """Every config input/output is a graph input/output of that type whose shape, past a
    symbolic batch dimension, is the config's dims (or its reshape)."""
    inputs, outputs = graph_shapes(model.graph.input), graph_shapes(model.graph.output)
    assert [i.name for i in config.input] == list(inputs)
    assert sorted(o.name for o in config.output) == sorted(outputs)
    for tensor, graph in [(t, inputs) for t in config.input] + [(t, outputs) for t in config.output]:
        elem, shape = graph[tensor.name]
        assert elem == ONNX_TYPE[pb2.DataType.Name(tensor.data_type)], tensor.name
        assert isinstance(shape[0], str), f"{tensor.name}: batch dimension must be symbolic, got {shape[0]}"
        per_request = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
        assert per_request == shape[1:], tensor.name
        assert all(d > 0 for d in tensor.dims), f"{tensor.name}: Triton needs at least one positive dim"


# Every key triton-inference-server/onnxruntime_backend's src/onnxruntime.cc parses for the
# "tensorrt" accelerator, the same on its release branches r24.04 to r26.06; any other key fails
# the model's load with "unknown parameter '...' is provided for TensorRT Execution Accelerator".
# Before r24.04 only precision_mode, max_workspace_size_bytes, int8_* and trt_engine_cache_* were.
BACKEND_TRT_KEYS = {
    "precision_mode", "max_workspace_size_bytes", "trt_max_partition_iterations", "trt_min_subgraph_size",
    "int8_calibration_table_name", "int8_use_native_calibration_table", "trt_dla_enable", "trt_dla_core",
    "trt_engine_cache_enable", "trt_engine_cache_path", "trt_engine_cache_prefix", "trt_dump_subgraphs",
    "trt_force_sequential_engine_build", "trt_context_memory_sharing_enable", "trt_layer_norm_fp32_fallback",
    "trt_timing_cache_enable", "trt_timing_cache_path", "trt_force_timing_cache", "trt_detailed_build_log",
    "trt_build_heuristics_enable", "trt_sparsity_enable", "trt_builder_optimization_level",
    "trt_auxiliary_streams", "trt_tactic_sources", "trt_extra_plugin_lib_paths", "trt_profile_min_shapes",
    "trt_profile_max_shapes", "trt_profile_opt_shapes", "trt_cuda_graph_enable", "trt_dump_ep_context_model",
    "trt_ep_context_file_path", "trt_ep_context_embed_mode",
}


def trt_parameters(config):
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    params = dict(accelerator.parameters)
    assert set(params) <= BACKEND_TRT_KEYS, set(params) - BACKEND_TRT_KEYS
    # Several sessions (instances, GPUs) share one engine cache folder.
    assert params["trt_force_sequential_engine_build"] == "1"
    return params


def check_warmup(config):
    """GPU repositories warm every instance up at load with zeros of the real input, at batch 1
    and at max_batch_size (Triton prepends the batch: dims are per request, as the input's)."""
    (inp,) = config.input
    batches = [1, config.max_batch_size] if config.max_batch_size > 1 else [1]
    assert [w.batch_size for w in config.model_warmup] == batches
    for warmup in config.model_warmup:
        assert list(warmup.inputs) == [inp.name], warmup
        sample = warmup.inputs[inp.name]
        assert sample.data_type == inp.data_type and list(sample.dims) == list(inp.dims), warmup
        assert sample.WhichOneof("input_data_type") == "zero_data" and sample.zero_data


def run_at_max_batch(config, model_path):
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (inp,) = config.input
    shape = [config.max_batch_size, *inp.dims]
    dtype = np.uint8 if inp.data_type == 2 else np.float32  # TYPE_UINT8 == 2
    image = (np.random.default_rng(0).random(shape) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    results = dict(zip([o.name for o in session.get_outputs()], session.run(None, {inp.name: image})))
    for out in config.output:
        per_request = list(out.reshape.shape) if out.HasField("reshape") else list(out.dims)
        assert list(results[out.name].shape) == [config.max_batch_size, *per_request], out.name
    return results


def test_default_repository_is_a_gpu_tensorrt_model(dlvp_bin, model_config_pb2, tmp_path):
    export_repo(dlvp_bin, tmp_path)
    (model_dir,) = tmp_path.iterdir()
    config = parse(model_config_pb2, model_dir / "config.pbtxt")
    model = onnx.load(str(model_dir / "1" / "model.onnx"))
    assert config.name == model_dir.name == "dlvp-clip-tiny"
    assert config.backend == "onnxruntime" and config.default_model_filename == "model.onnx"
    assert config.max_batch_size == 8 and config.HasField("dynamic_batching")
    (group,) = config.instance_group
    assert group.count == 1 and group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    check_against_graph(model_config_pb2, config, model)
    params = trt_parameters(config)
    assert params["precision_mode"] == "FP32"
    assert params["trt_engine_cache_enable"] == "1"
    assert params["trt_profile_min_shapes"] == "image:1x3x56x56"
    assert params["trt_profile_opt_shapes"] == params["trt_profile_max_shapes"] == "image:8x3x56x56"
    assert "trt_layer_norm_fp32_fallback" not in params  # fp32: TensorRT has no fp16 to fall back from
    assert not config.dynamic_batching.preferred_batch_size
    check_warmup(config)
    run_at_max_batch(config, model_dir / "1" / "model.onnx")
    sidecar = json.loads((model_dir / "1" / "model.onnx.json").read_text())
    assert sidecar["model"] == "model.onnx" and sidecar["inputs"][0]["name"] == "image"


def test_options_reach_the_config(dlvp_bin, model_config_pb2, tmp_path):
    export_repo(
        dlvp_bin, tmp_path, "--embed-preprocess", "--fp16", "--max-batch", 3, "--instances", 2,
        "--triton-name", "line-7.v2", "--queue-delay-us", 500,
        "--triton-trt-cache", "/var/cache/trt", "--triton-workspace-mib", 512, "--preferred-batch", "2,3",
    )
    config = parse(model_config_pb2, tmp_path / "line-7.v2" / "config.pbtxt")
    model = onnx.load(str(tmp_path / "line-7.v2" / "1" / "model.onnx"))
    check_against_graph(model_config_pb2, config, model)
    assert config.name == "line-7.v2" and config.max_batch_size == 3
    assert config.instance_group[0].count == 2
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert [i.name for i in config.input] == ["image_u8"] and list(config.input[0].dims) == [56, 56, 3]
    params = trt_parameters(config)
    assert params["precision_mode"] == "FP16"
    assert params["trt_engine_cache_path"] == params["trt_timing_cache_path"] == "/var/cache/trt"
    assert params["max_workspace_size_bytes"] == str(512 << 20)
    assert params["trt_profile_max_shapes"] == "image_u8:3x56x56x3"
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 3]
    assert params["trt_profile_opt_shapes"] == "image_u8:3x56x56x3"  # the largest preferred batch
    assert params["trt_layer_norm_fp32_fallback"] == "1"  # fp16: Pow + ReduceMean kept in fp32
    check_warmup(config)
    assert config.model_warmup[0].inputs["image_u8"].data_type == model_config_pb2.TYPE_UINT8
    outputs = run_at_max_batch(config, tmp_path / "line-7.v2" / "1" / "model.onnx")
    assert ((outputs["anomaly_score"] >= 0) & (outputs["anomaly_score"] <= 1)).all()


def test_int8_repository_asks_tensorrt_for_int8(dlvp_bin, model_config_pb2, tmp_path):
    """An int8 (QDQ) export carries its own scales: Triton's TensorRT accelerator gets INT8."""
    export_repo(dlvp_bin, tmp_path, "--int8", "--calibrate", REPO / "fixtures/samples", "--target", "tensorrt-10")
    (model_dir,) = tmp_path.iterdir()
    config = parse(model_config_pb2, model_dir / "config.pbtxt")
    model = onnx.load(str(model_dir / "1" / "model.onnx"))
    check_against_graph(model_config_pb2, config, model)
    params = trt_parameters(config)
    assert params["precision_mode"] == "INT8" and "trt_layer_norm_fp32_fallback" not in params
    check_warmup(config)
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    run_at_max_batch(config, model_dir / "1" / "model.onnx")


def test_cpu_repository_with_external_data_beside_a_plain_export(dlvp_bin, model_config_pb2, tmp_path):
    out = tmp_path / "plain" / "tiny.onnx"
    export_repo(dlvp_bin, tmp_path / "repo", "--triton-kind", "cpu", "--external-data", "--out", out)
    model_dir = tmp_path / "repo" / "dlvp-clip-tiny"
    config = parse(model_config_pb2, model_dir / "config.pbtxt")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert not config.HasField("optimization") and not config.model_warmup
    # Each copy names its own data file, so each loads from its own folder.
    assert (model_dir / "1" / "model.onnx.data").is_file() and (out.parent / "tiny.onnx.data").is_file()
    check_against_graph(model_config_pb2, config, onnx.load(str(model_dir / "1" / "model.onnx")))
    repo_out = run_at_max_batch(config, model_dir / "1" / "model.onnx")
    plain_out = run_at_max_batch(config, out)
    for name in repo_out:
        assert np.array_equal(repo_out[name], plain_out[name]), name


def test_strict_parser_rejects_what_triton_would(model_config_pb2):
    """The check above has teeth: Triton's parser refuses unknown fields and enum values."""
    with pytest.raises(text_format.ParseError):
        text_format.Parse('name: "m"\nmax_batch: 4\n', model_config_pb2.ModelConfig())
    with pytest.raises(text_format.ParseError):
        text_format.Parse('input [ { name: "x" data_type: TYPE_FLOAT32 dims: [ 1 ] } ]', model_config_pb2.ModelConfig())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--triton-name", "../up"], "--triton-name"),
        (["--max-batch", "0"], "--max-batch"),
        (["--instances", "0"], "--instances"),
        (["--max-batch", "4", "--preferred-batch", "2,8"], "--preferred-batch: 8 is larger than --max-batch 4"),
        (["--preferred-batch", "4,2"], "--preferred-batch: sizes must be ascending"),
        (["--preferred-batch", "0"], "--preferred-batch: 0 is no batch size"),
        (["--preferred-batch", "two"], "--preferred-batch"),
    ],
)
def test_bad_options_write_nothing(dlvp_bin, tmp_path, args, message):
    run = subprocess.run(
        [dlvp_bin, "export", "--weights", WEIGHTS, "--triton-repo", tmp_path / "repo", *args],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and message in run.stderr, run.stderr
    assert not (tmp_path / "repo").exists()


def test_openvino_repository_asks_for_the_openvino_accelerator(dlvp_bin, model_config_pb2, tmp_path):
    export_repo(dlvp_bin, tmp_path / "repo", "--triton-kind", "openvino", "--max-batch", "4")
    model_dir = tmp_path / "repo" / "dlvp-clip-tiny"
    config = parse(model_config_pb2, model_dir / "config.pbtxt")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    (accelerator,) = config.optimization.execution_accelerators.cpu_execution_accelerator
    assert accelerator.name == "openvino"
    assert not config.optimization.execution_accelerators.gpu_execution_accelerator
    assert not config.model_warmup
    check_against_graph(model_config_pb2, config, onnx.load(str(model_dir / "1" / "model.onnx")))


# A real Triton server. The nvidia-pytriton wheel ships Triton 2.51's `tritonserver` (with the
# python backend only); scripts/test installs it with --target into the venv's tritonserver/ folder
# (reference/requirements-tritonserver.txt says why). DLVP_TRITONSERVER names another binary.
BACKEND_MISSING = "unable to find backend library for backend 'onnxruntime'"


@pytest.fixture(scope="module")
def tritonserver():
    default = Path(sys.prefix) / "tritonserver" / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    path = Path(os.environ.get("DLVP_TRITONSERVER", default))
    if not os.access(path, os.X_OK):
        message = (
            f"{path}: no Triton server binary; scripts/test installs it from "
            "reference/requirements-tritonserver.txt (the nvidia-pytriton wheel, x86-64 Linux only)"
        )
        if os.environ.get("DLVP_REQUIRE_TRITONSERVER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def load_in_triton(server, repo, workdir):
    """Starts `tritonserver` on the repository and returns {model: why it did not load}.

    Loopback-only by construction: HTTP, GRPC and metrics are all off, so the server opens no
    socket at all. `--disable-auto-complete-config` makes the validator check inputs and outputs
    (dims, reshape) before the backend lookup too; by default Triton leaves that until the backend
    has completed the config, which needs the ONNX Runtime backend this binary lacks. An empty
    backend directory keeps an installed Triton's backends (/opt/tritonserver/backends) out."""
    backends = workdir / "no-backends"
    backends.mkdir(exist_ok=True)
    run = subprocess.run(
        [
            server, f"--model-repository={repo}", f"--backend-directory={backends}",
            "--allow-http=false", "--allow-grpc=false", "--allow-metrics=false",
            "--disable-auto-complete-config", "--model-control-mode=none", "--exit-timeout-secs=5",
        ],
        capture_output=True, text=True, timeout=60, cwd=workdir,
    )
    log = run.stdout + run.stderr
    # It cannot serve (no ONNX Runtime backend): it exits after trying every model once.
    assert run.returncode != 0 and "failed to load all models" in log, log
    failures = {}
    for name, message in re.findall(r"failed to load '([^']+)' version 1: (.*?)\"?$", log, re.M):
        failures[name] = "load: " + message
    for name, message in re.findall(r"Poll failed for model directory '([^']+)': (.*?)\"?$", log, re.M):
        failures[name] = "config: " + message
    return failures, log


GOOD_REPOSITORIES = {
    "gpu-fp32": ["--max-batch", 4, "--instances", 2, "--preferred-batch", "2,4", "--queue-delay-us", 200],
    "gpu-fp16": ["--fp16", "--target", "tensorrt-8.5"],
    "gpu-u8": ["--embed-preprocess", "--max-batch", 1],
    "gpu-int8": ["--int8", "--calibrate", REPO / "fixtures/samples", "--calib-count", 4, "--target", "tensorrt-10"],
    "cpu": ["--triton-kind", "cpu", "--instances", 3],
    "openvino": ["--triton-kind", "openvino", "--external-data"],
}


@pytest.fixture(scope="module")
def good_repository(dlvp_bin, tmp_path_factory):
    repo = tmp_path_factory.mktemp("triton") / "models"
    for name, args in GOOD_REPOSITORIES.items():
        export_repo(dlvp_bin, repo, "--triton-name", name, *args)
    return repo


def test_triton_server_accepts_every_kind_of_repository(tritonserver, good_repository, tmp_path):
    """Every export passes Triton's own validator and stops only where this server has no ONNX
    Runtime backend to hand the model to."""
    failures, log = load_in_triton(tritonserver, good_repository, tmp_path)
    assert sorted(failures) == sorted(GOOD_REPOSITORIES), log
    for name, why in failures.items():
        assert why.startswith("load: Invalid argument: " + BACKEND_MISSING), f"{name}: {why}"


BREAKAGES = {
    # what is edited in the gpu-fp32 config, and the validator's message
    "bad-reshape": (("reshape { shape: [ ] }", "reshape { shape: [ 2 ] }"),
                    "model output 'anomaly_score' has different size for dims and reshape"),
    "bad-preferred": (("preferred_batch_size: [ 2, 4 ]", "preferred_batch_size: [ 2, 16 ]"),
                      "dynamic batching preferred size must be <= max batch size"),
    "bad-dims": (("\n    dims: [ 3, 56, 56 ]\n", "\n"), "model input 'image' must specify 'dims'"),
    "bad-field": (("max_batch_size: 4", "max_batch: 4"), "failed to read text proto"),
}


def test_triton_server_refuses_broken_configs(tritonserver, good_repository, tmp_path):
    """The check above has teeth: the same server refuses each of these edits of a good config
    with its validator's message, before any backend is looked for."""
    import shutil

    repo = tmp_path / "models"
    good = good_repository / "gpu-fp32"
    text = (good / "config.pbtxt").read_text()
    for name, ((old, new), _) in BREAKAGES.items():
        shutil.copytree(good, repo / name)
        assert text.count(old) == 1, old
        edited = text.replace(old, new).replace('name: "gpu-fp32"', f'name: "{name}"')
        (repo / name / "config.pbtxt").write_text(edited)
    shutil.copytree(good, repo / "gpu-fp32")  # the unedited control
    failures, log = load_in_triton(tritonserver, repo, tmp_path)
    assert sorted(failures) == sorted([*BREAKAGES, "gpu-fp32"]), log
    assert failures.pop("gpu-fp32").startswith("load: Invalid argument: " + BACKEND_MISSING)
    for name, why in failures.items():
        expected = BREAKAGES[name][1]
        assert why.startswith("config: ") and expected in why, f"{name}: {why}"
