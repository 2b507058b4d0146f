"""Metrics as pure functions of (logits, labels): shared by PyTorch, Keras, ONNX and INT8 paths.

    >>> import numpy as np
    >>> logits = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]])
    >>> labels = np.array([0, 1, 1])
    >>> round(accuracy(logits, labels), 3)
    0.667

Nothing here knows about frameworks, files or models; every function takes numpy arrays.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

HIGH_CONFIDENCE = 0.9  # an error made with at least this probability counts as a confident error


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == labels).mean())


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (cross-entropy) in nats."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def confusion_matrix(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts; rows are true classes, columns predicted classes."""
    from sklearn.metrics import confusion_matrix as _sk_confusion_matrix  # lazy: 1–3 s every CLI start paid

    return _sk_confusion_matrix(labels, np.asarray(logits).argmax(1), labels=list(range(num_classes)))


def per_class(logits: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Accuracy (= recall), precision, recall, F1 and support for each class."""
    from sklearn.metrics import precision_recall_fscore_support  # lazy, as above

    preds = np.asarray(logits).argmax(1)
    k = len(class_names)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, preds, labels=list(range(k)), zero_division=0)
    return [
        {"class": i, "name": class_names[i], "accuracy": float(recall[i]), "precision": float(precision[i]),
         "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i in range(k)
    ]


def top_confusions(cm: np.ndarray, n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` most frequent (true, predicted) error pairs, with rate = count / true-class size."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    pairs = [(int(off[t, p]), t, p) for t in range(len(cm)) for p in range(len(cm)) if off[t, p] > 0]
    pairs.sort(key=lambda c: (-c[0], c[1], c[2]))
    row_totals = cm.sum(axis=1)
    return [{"true": t, "predicted": p, "count": c, "rate": c / max(int(row_totals[t]), 1)}
            for c, t, p in pairs[:n]]


def high_confidence_errors(logits: np.ndarray, labels: np.ndarray, threshold: float = HIGH_CONFIDENCE) -> int:
    """How many wrong predictions had a top probability above ``threshold``."""
    probs = softmax(logits)
    wrong = probs.argmax(1) != labels
    return int((wrong & (probs.max(1) > threshold)).sum())


def ece(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15, temperature: float = 1.0) -> float:
    """Expected calibration error: the bin-weighted |accuracy − confidence| over equal-width bins."""
    probs = softmax(logits, temperature)
    conf, pred = probs.max(1), probs.argmax(1)
    correct = (pred == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bins are (lo, hi]; a confidence of exactly 0 cannot occur with softmax.
    bins = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(total)


def compute_metrics(logits: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Every metric ``metrics.json`` holds, from test logits and labels."""
    logits, labels = np.asarray(logits), np.asarray(labels).astype(np.int64)
    cm = confusion_matrix(logits, labels, len(class_names))
    classes = per_class(logits, labels, class_names)
    return {
        "accuracy": accuracy(logits, labels),
        "n_samples": int(len(labels)),
        "n_errors": int((logits.argmax(1) != labels).sum()),
        "macro_f1": float(np.mean([c["f1"] for c in classes])),
        "per_class": classes,
        "confusion_matrix": cm.tolist(),
        "top_confusions": top_confusions(cm),
        "high_confidence_errors": high_confidence_errors(logits, labels),
        "nll": nll(logits, labels),
        "ece": ece(logits, labels),
    }
