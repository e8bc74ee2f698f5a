"""The DLVP-CLIP model spec (``model-spec/README.md``), read the way the Rust side reads it.

Every field has the paper's default; unknown fields are errors. Whether values fit together
(image size a multiple of the patch size, ...) is checked by ``dlvp spec validate``: the Rust
validator is the single source of those rules, and ``reference/tests/test_spec.py`` proves the two
readers resolve every shipped spec to the same values.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List

import yaml

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ACTIVATIONS = ("gelu", "quick_gelu")


class SpecError(ValueError):
    """A spec that cannot be read; the message names the file and the field."""


@dataclass
class VisionSpec:
    patch_size: int = 14
    width: int = 1024
    layers: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    act: str = "gelu"


@dataclass
class TextSpec:
    context_length: int = 77
    vocab_size: int = 49408
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    act: str = "gelu"


@dataclass
class SlfsSpec:
    top_k: int = 4


@dataclass
class MlopSpec:
    visual_static_layers: int = 9
    text_depth: int = 9


@dataclass
class HfdSpec:
    wavelet: str = "haar"


@dataclass
class PromptsSpec:
    normal: List[str] = field(default_factory=lambda: ["object."])
    anomaly: List[str] = field(default_factory=lambda: ["damaged object."])


@dataclass
class ScoreSpec:
    map_max_weight: float = 0.0


@dataclass
class PostprocessSpec:
    gaussian_sigma: float = 4.0


@dataclass
class PreprocessSpec:
    mean: List[float] = field(default_factory=lambda: list(CLIP_MEAN))
    std: List[float] = field(default_factory=lambda: list(CLIP_STD))
    resize: str = "bicubic"


@dataclass
class Spec:
    name: str = "dlvp-clip"
    image_size: int = 518
    vision: VisionSpec = field(default_factory=VisionSpec)
    text: TextSpec = field(default_factory=TextSpec)
    embed_dim: int = 768
    feature_layers: List[int] = field(default_factory=lambda: [6, 12, 18, 24])
    slfs: SlfsSpec = field(default_factory=SlfsSpec)
    mlop: MlopSpec = field(default_factory=MlopSpec)
    hfd: HfdSpec = field(default_factory=HfdSpec)
    prompts: PromptsSpec = field(default_factory=PromptsSpec)
    temperature: float = 0.07
    score: ScoreSpec = field(default_factory=ScoreSpec)
    postprocess: PostprocessSpec = field(default_factory=PostprocessSpec)
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)

    @property
    def grid(self) -> int:
        return self.image_size // self.vision.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_ENUMS = {"vision.act": ACTIVATIONS, "text.act": ACTIVATIONS, "hfd.wavelet": ("haar",),
          "preprocess.resize": ("bicubic", "bilinear")}


def _build(cls, data: Any, path: str, origin: str):
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: {path or 'spec'}: expected a mapping, found {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise SpecError(f"{origin}: {where}: unknown field, expected one of {', '.join(fields)}")
        default = fields[key].default_factory() if fields[key].default_factory is not dataclasses.MISSING else fields[key].default
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, where, origin)
        else:
            kwargs[key] = _coerce(default, value, where, origin)
    return cls(**kwargs)


def _coerce(default: Any, value: Any, where: str, origin: str):
    def bad(expected: str):
        return SpecError(f"{origin}: {where}: expected {expected}, found {value!r}")

    if isinstance(default, bool) or isinstance(value, bool):
        raise bad("a number or string")
    if isinstance(default, int):
        if not isinstance(value, int) or value < 0:
            raise bad("a non-negative integer")
        return value
    if isinstance(default, float):
        if not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        allowed = _ENUMS.get(where)
        if allowed and value not in allowed:
            raise bad(f"one of {', '.join(allowed)}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise bad("a list")
        if where in ("preprocess.mean", "preprocess.std") and len(value) != 3:
            raise bad("a list of 3 numbers")
        return [_coerce(default[0] if default else "", v, f"{where}[{i}]", origin) for i, v in enumerate(value)]
    raise bad(type(default).__name__)


def from_yaml(text: str, origin: str = "spec") -> Spec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{origin}: {e}") from e
    if data is None:
        raise SpecError(f"{origin}: the spec is empty")
    return _build(Spec, data, "", origin)


def load(path: str | Path) -> Spec:
    path = Path(path)
    return from_yaml(path.read_text(encoding="utf-8"), str(path))
