"""Reference anomaly-detection metrics, the figures ``dlvp eval`` must reproduce: image AUROC and
AP from scikit-learn, F1-max from its precision–recall curve, pixel AUROC and AP over all pixels,
and AUPRO as the MVTec AD evaluation computes it (``compute_pro`` + ``trapezoid``, FPR ≤ 0.3,
normalised). A metric that needs both classes and has one is ``nan`` (undefined)."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import label
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

NAMES = ["image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "aupro"]
FPR_LIMIT = 0.3


def _both(labels) -> bool:
    labels = np.asarray(labels).astype(bool)
    return labels.any() and not labels.all()


def f1_max(labels, scores) -> float:
    precision, recall, _ = precision_recall_curve(labels, scores)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(f1.max())


def _trapezoid(x, y, x_max):
    """MVTec AD's ``trapezoid``: area under y(x) for x ≤ x_max, cutting the last segment."""
    x, y = np.asarray(x), np.asarray(y)
    correction = 0.0
    if x_max not in x:
        ins = int(np.searchsorted(x, x_max, side="right"))
        y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def aupro(maps: np.ndarray, masks: np.ndarray) -> float:
    """``maps`` [N, H, W] float, ``masks`` [N, H, W] bool."""
    structure = np.ones((3, 3), dtype=int)
    fp_changes = np.zeros(maps.shape, dtype=np.float64)
    pro_changes = np.zeros(maps.shape, dtype=np.float64)
    ok_pixels, regions = 0, 0
    for i, gt in enumerate(masks):
        labelled, n = label(gt, structure)
        regions += n
        ok = labelled == 0
        ok_pixels += int(ok.sum())
        fp_changes[i][ok] = 1
        for k in range(n):
            region = labelled == k + 1
            pro_changes[i][region] = 1.0 / region.sum()
    if regions == 0 or ok_pixels == 0:
        return float("nan")
    scores = maps.astype(np.float64).ravel()
    order = np.argsort(scores, kind="stable")[::-1]
    scores = scores[order]
    fprs = np.cumsum(fp_changes.ravel()[order]) / ok_pixels
    pros = np.cumsum(pro_changes.ravel()[order]) / regions
    keep = np.append(np.diff(scores) != 0, True)
    fprs, pros = np.clip(fprs[keep], None, 1.0), np.clip(pros[keep], None, 1.0)
    fprs = np.concatenate(([0.0], fprs, [1.0]))
    pros = np.concatenate(([0.0], pros, [1.0]))
    return _trapezoid(fprs, pros, FPR_LIMIT) / FPR_LIMIT


def all_metrics(scores, labels, maps, masks) -> list[float]:
    """The six figures in ``NAMES`` order; ``nan`` where undefined."""
    nan = float("nan")
    labels = np.asarray(labels).astype(bool)
    out = [nan, nan, nan]
    if _both(labels):
        out = [float(roc_auc_score(labels, scores)), float(average_precision_score(labels, scores)), f1_max(labels, scores)]
    flat_maps, flat_masks = maps.ravel().astype(np.float64), masks.ravel().astype(bool)
    if _both(flat_masks):
        out += [float(roc_auc_score(flat_masks, flat_maps)), float(average_precision_score(flat_masks, flat_maps))]
    else:
        out += [nan, nan]
    out.append(aupro(maps, masks.astype(bool)))
    return out
