"""bench/int8_accuracy.py FP32.onnx INT8.onnx DATA_ROOT [--spec SPEC.yaml]: how far an int8 export
is from its fp32 graph on real images, per category of an MVTec-layout folder (`dlvp demo-data`).

Both graphs run on ONNX Runtime CPU over every test image, preprocessed as model-spec §1 says
(the reference's `load_image`). Per category and overall it prints the largest and mean absolute
differences of scores and of maps, and the share of images whose Top-K patch set is unchanged
(as sets: the order of near-tied patches may swap without changing what the head sees), and
the image AUROC of each graph (pixel AUROCs come from `dlvp eval`, docs/int8.md). Run under
`qemu-x86_64 -cpu EPYC-Milan` it measures the int8 kernels of an AVX2-only CPU (docs/int8.md,
"Every CPU").

    reference/.venv/bin/python bench/int8_accuracy.py models/demo/dlvp-clip-demo.onnx int8.onnx data/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from dlvp_reference import spec as spec_mod  # noqa: E402
from dlvp_reference.data import load_image, mvtec_samples  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("fp32")
    p.add_argument("int8")
    p.add_argument("data")
    p.add_argument("--per-category", type=int, default=None,
                   help="only N test images of each category, spread evenly over its sorted list "
                        "(for slow runs, e.g. under an emulated CPU)")
    p.add_argument("--save", type=Path, default=None,
                   help="also save every image's int8 and fp32 scores and maps to this .npz (to compare CPUs)")
    a = p.parse_args()
    import onnx

    meta = {m.key: m.value for m in onnx.load(a.fp32, load_external_data=False).metadata_props}
    spec = spec_mod.from_yaml(meta["dlvp.spec"], a.fp32)
    sessions = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]) for m in (a.fp32, a.int8)]
    rows: dict[str, list[tuple[float, float, float, bool]]] = {}
    scored: dict[str, list[tuple[int, float, float]]] = {}
    saved: dict[str, np.ndarray] = {}
    samples = mvtec_samples(Path(a.data), None, "test")
    if a.per_category:
        by_category: dict[str, list] = {}
        for sample in samples:
            by_category.setdefault(sample.category, []).append(sample)
        samples = [group[i * len(group) // a.per_category] for group in by_category.values()
                   for i in range(min(a.per_category, len(group)))]
    for sample in samples:
        x = load_image(sample.image, spec).unsqueeze(0).numpy()
        (s32, m32, k32), (s8, m8, k8) = (s.run(None, {"image": x}) for s in sessions)
        rows.setdefault(sample.category, []).append((
            float(abs(s32 - s8).max()), float(abs(m32 - m8).max()), float(abs(m32 - m8).mean()),
            set(k32.ravel().tolist()) == set(k8.ravel().tolist()),
        ))
        scored.setdefault(sample.category, []).append((sample.label, float(s32.ravel()[0]), float(s8.ravel()[0])))
        saved[f"{sample.image}:score"], saved[f"{sample.image}:map"] = s8, m8
        saved[f"{sample.image}:fp32_score"], saved[f"{sample.image}:fp32_map"] = s32, m32
    if a.save:
        np.savez(a.save, **saved)
    from sklearn.metrics import roc_auc_score

    def auroc(rs: list[tuple[int, float, float]], column: int) -> float:
        return roc_auc_score([r[0] for r in rs], [r[column] for r in rs])

    print("| category | images | max Δscore | mean Δscore | max Δmap | mean Δmap | Top-K set unchanged | image AUROC fp32 / int8 |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    everything = [r for rs in rows.values() for r in rs]
    for name, rs in [*sorted(rows.items()), ("**all**", everything)]:
        d = np.array([r[:3] for r in rs])
        same = sum(r[3] for r in rs)
        if name in scored:
            aurocs = f"{auroc(scored[name], 1):.4f} / {auroc(scored[name], 2):.4f}"
        else:  # the mean over categories, as dlvp eval reports it
            per = [(auroc(v, 1), auroc(v, 2)) for v in scored.values()]
            aurocs = f"{np.mean([p[0] for p in per]):.4f} / {np.mean([p[1] for p in per]):.4f} (mean)"
        print(f"| {name} | {len(rs)} | {d[:, 0].max():.2e} | {d[:, 0].mean():.2e} | {d[:, 1].max():.2e} "
              f"| {d[:, 2].mean():.2e} | {same}/{len(rs)} ({100 * same / len(rs):.0f}%) | {aurocs} |")


if __name__ == "__main__":
    main()
