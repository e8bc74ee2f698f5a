"""`dlvp export --triton-repo`: the config.pbtxt parses with Triton's own ``ModelConfig`` protobuf
(from the ``tritonclient`` package, strict text-format parsing: an unknown field or a wrong enum
fails) and states what the ONNX graph in ``1/model.onnx`` really has — input/output names,
dtypes, per-request dims (batch left out, ``anomaly_score``'s scalar via ``reshape``), a dynamic
batch dimension, and a TensorRT profile over the real input. The model in the repository is run
by ONNX Runtime at the largest batch the config allows, from its folder (external data too)."""
import importlib.util
import json
import subprocess
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


def trt_parameters(config):
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    return dict(accelerator.parameters)


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
    run_at_max_batch(config, model_dir / "1" / "model.onnx")
    sidecar = json.loads((model_dir / "1" / "model.onnx.json").read_text())
    assert sidecar["model"] == "model.onnx" and sidecar["inputs"][0]["name"] == "image"


def test_options_reach_the_config(dlvp_bin, model_config_pb2, tmp_path):
    export_repo(
        dlvp_bin, tmp_path, "--embed-preprocess", "--fp16", "--max-batch", 3, "--instances", 2,
        "--triton-name", "line-7.v2", "--queue-delay-us", 500,
        "--triton-trt-cache", "/var/cache/trt", "--triton-workspace-mib", 512,
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
    outputs = run_at_max_batch(config, tmp_path / "line-7.v2" / "1" / "model.onnx")
    assert ((outputs["anomaly_score"] >= 0) & (outputs["anomaly_score"] <= 1)).all()


def test_int8_repository_asks_tensorrt_for_int8(dlvp_bin, model_config_pb2, tmp_path):
    """An int8 (QDQ) export carries its own scales: Triton's TensorRT accelerator gets INT8."""
    export_repo(dlvp_bin, tmp_path, "--int8", "--calibrate", REPO / "fixtures/samples", "--target", "tensorrt-10")
    (model_dir,) = tmp_path.iterdir()
    config = parse(model_config_pb2, model_dir / "config.pbtxt")
    model = onnx.load(str(model_dir / "1" / "model.onnx"))
    check_against_graph(model_config_pb2, config, model)
    assert trt_parameters(config)["precision_mode"] == "INT8"
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    run_at_max_batch(config, model_dir / "1" / "model.onnx")


def test_cpu_repository_with_external_data_beside_a_plain_export(dlvp_bin, model_config_pb2, tmp_path):
    out = tmp_path / "plain" / "tiny.onnx"
    export_repo(dlvp_bin, tmp_path / "repo", "--triton-kind", "cpu", "--external-data", "--out", out)
    model_dir = tmp_path / "repo" / "dlvp-clip-tiny"
    config = parse(model_config_pb2, model_dir / "config.pbtxt")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert not config.HasField("optimization")
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
    check_against_graph(model_config_pb2, config, onnx.load(str(model_dir / "1" / "model.onnx")))
