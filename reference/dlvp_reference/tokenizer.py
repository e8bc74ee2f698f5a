"""Prompt templates → token ids (``model-spec/README.md`` §4, text side):
``[SOT] + [id("X")]×M + BPE(template) + [EOT]``, zero-padded to ``text.context_length``, with
open_clip's own CLIP BPE tokenizer (lower-cased, ftfy-cleaned)."""
from __future__ import annotations

from functools import lru_cache
from typing import List, Tuple

import torch
from open_clip.tokenizer import SimpleTokenizer

from .spec import Spec

PLACEHOLDER = "X"


@lru_cache(maxsize=1)
def clip_tokenizer() -> SimpleTokenizer:
    return SimpleTokenizer()


def template_ids(spec: Spec, template: str) -> List[int]:
    """The unpadded token ids of one template; a template that does not fit is an error."""
    tok = clip_tokenizer()
    placeholder = tok.encode(PLACEHOLDER)
    assert len(placeholder) == 1, "CLIP BPE encodes the placeholder as one token"
    ids = [tok.sot_token_id] + placeholder * spec.slfs.top_k + tok.encode(template) + [tok.eot_token_id]
    if len(ids) > spec.text.context_length:
        raise ValueError(f"prompt template {template!r} needs {len(ids)} tokens; "
                         f"text.context_length is {spec.text.context_length}")
    return ids


def template_token_ids(spec: Spec) -> Tuple[torch.Tensor, torch.Tensor]:
    """([T, context_length] int64 ids of every template, [T] class index: 0 normal, 1 anomaly)."""
    rows, classes = [], []
    for k, templates in enumerate((spec.prompts.normal, spec.prompts.anomaly)):
        for template in templates:
            ids = template_ids(spec, template)
            rows.append(ids + [0] * (spec.text.context_length - len(ids)))
            classes.append(k)
    return torch.tensor(rows, dtype=torch.int64), torch.tensor(classes, dtype=torch.int64)
