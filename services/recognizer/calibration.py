"""Honest confidence and "not a digit": temperature scaling, calibration error, the refusal threshold.

The model has eleven outputs: the digits 0-9 and "not a digit" (index 10). What the service
reports is derived from them (``split``): the chance that the image is not a digit, and the
digits' probabilities given that it is one. ``confidence`` (the top digit's probability) should
then mean what it says, the chance of being right; temperature scaling (Guo et al., 2017, "On
Calibration of Modern Neural Networks") fits one scalar T on a validation split so that it does,
without changing any answer (dividing logits by T > 0 keeps their order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOT_A_DIGIT = 10
BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def split(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, 11] (or a 10-output model's [N, 10]) -> (digit probabilities [N, 10] summing to 1,
    the probability of "not a digit" [N])."""
    if probabilities.shape[1] == 10:
        return probabilities, np.zeros(len(probabilities), dtype=probabilities.dtype)
    digits = probabilities[:, :10]
    total = digits.sum(axis=1, keepdims=True)
    return digits / np.maximum(total, 1e-12), probabilities[:, NOT_A_DIGIT]


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = softmax(logits.astype(np.float64), temperature)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-12))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] minimising the negative log-likelihood: golden-section search on log T
    (the NLL is unimodal in T for a fixed set of logits)."""
    lo, hi = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, labels, math.exp(b))
    return math.exp((lo + hi) / 2)


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin: mean confidence, accuracy, count; and the expected calibration error
    (the count-weighted mean gap between the two)."""

    confidence: list[float]
    accuracy: list[float]
    counts: list[int]
    ece: float


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> Reliability:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    conf, acc, counts = [], [], []
    ece = 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        counts.append(n)
        conf.append(float(confidence[mask].mean()) if n else float((edges[b] + edges[b + 1]) / 2))
        acc.append(float(correct[mask].mean()) if n else 0.0)
        if n:
            ece += n / len(confidence) * abs(acc[-1] - conf[-1])
    return Reliability(conf, acc, counts, float(ece))


def digit_reliability(probabilities: np.ndarray, labels: np.ndarray) -> Reliability:
    """Calibration of the served ``confidence`` on images that are digits (labels 0-9)."""
    digits, _ = split(probabilities)
    predicted = digits.argmax(axis=1)
    return reliability(digits.max(axis=1), predicted == labels)


def refusal_curve(not_digit: np.ndarray, is_digit: np.ndarray, thresholds: np.ndarray) -> list[tuple[float, float, float]]:
    """(threshold, share of digits refused, share of non-digits refused) for each threshold; an
    image is refused when its probability of "not a digit" reaches the threshold."""
    rows = []
    for t in thresholds:
        refused = not_digit >= t
        rows.append((float(t), float(refused[is_digit].mean()), float(refused[~is_digit].mean())))
    return rows


def choose_threshold(not_digit: np.ndarray, is_digit: np.ndarray, max_digits_refused: float) -> float:
    """The lowest threshold (the most non-digits refused) that refuses at most
    ``max_digits_refused`` of the validation digits, to 4 decimals, rounded up."""
    scores = np.sort(not_digit[is_digit])[::-1]
    allowed = int(math.floor(max_digits_refused * len(scores)))
    # Refusing score >= t refuses every digit scored at least t: t just above the (allowed+1)-th highest.
    t = math.floor(float(scores[allowed]) * 10_000 + 1) / 10_000 if allowed < len(scores) else 0.0
    return min(max(t, 0.5), 0.9999)  # never refuse what the model thinks more likely a digit


def refusal(not_digit: np.ndarray, is_digit: np.ndarray, max_digits_refused: float, plot: Path) -> dict:
    """The refusal threshold and its trade-off on a validation split (model.json's fields), and
    its curve plotted to ``plot``."""
    threshold = choose_threshold(not_digit, is_digit, max_digits_refused)
    grid = np.unique(np.concatenate([np.linspace(0.5, 0.99, 50), 1 - np.logspace(-2, -4, 9), [threshold]]))
    curve = refusal_curve(not_digit, is_digit, grid)
    plot_refusal(curve, threshold, str(plot))
    _, digits_refused, others_refused = refusal_curve(not_digit, is_digit, np.array([threshold]))[0]
    return {
        "not_digit_threshold": threshold,
        "max_digits_refused": max_digits_refused,
        "validation_digits_refused": round(digits_refused, 5),
        "validation_not_digits_refused": round(others_refused, 5),
        "refusal_curve": [[round(v, 5) for v in c] for c in curve],
    }


def plot_reliability(before: Reliability, after: Reliability, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, rel, name in ((axes[0], before, "before (T = 1)"), (axes[1], after, "after temperature scaling")):
        width = 1.0 / len(rel.counts)
        centres = np.linspace(width / 2, 1 - width / 2, len(rel.counts))
        shown = np.asarray(rel.counts) > 0
        ax.bar(centres[shown], np.asarray(rel.accuracy)[shown], width=width * 0.9, color="#4c72b0", label="accuracy")
        ax.plot([0, 1], [0, 1], "--", color="#999", label="perfect calibration")
        ax.plot(np.asarray(rel.confidence)[shown], np.asarray(rel.accuracy)[shown], "o", color="#dd8452",
                label="mean confidence")
        ax.set_title(f"{name}\nECE {rel.ece * 100:.2f}%")
        ax.set_xlabel("confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_refusal(curve: list[tuple[float, float, float]], chosen: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    digits = [c[1] * 100 for c in curve]
    others = [c[2] * 100 for c in curve]
    ax.plot(digits, others, "-", color="#4c72b0")
    at = min(curve, key=lambda c: abs(c[0] - chosen))
    ax.plot([at[1] * 100], [at[2] * 100], "o", color="#c44e52", label=f"chosen threshold {chosen:.3f}")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("digits wrongly refused (%)")
    ax.set_ylabel("non-digits refused (%)")
    ax.set_title("Refusing \"not a digit\": validation trade-off")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
