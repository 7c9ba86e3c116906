"""Segmentation scores under the best one-to-one mapping of predicted to human segments.

Unsupervised segment ids are arbitrary, so a prediction is scored after the Hungarian matching
(`scipy.optimize.linear_sum_assignment`) of its segments to one annotator's segments that
maximises the number of pixels in agreement; unmatched segments on either side count as wrong.
- pixel accuracy: matched pixels / all pixels (the paper's "true positives divided by sample
  size" with the standard linear-assignment protocol);
- mean IoU: under the same matching, IoU of each human segment with its matched predicted
  segment (0 when it has none), averaged over the human segments.
With several annotators (BSDS has 4-9 per image), each score is averaged over the annotators.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def contingency(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pixel counts [predicted segments, true segments], over the labels each map uses."""
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction {prediction.shape} and truth {truth.shape} differ in shape")
    _, pred = np.unique(prediction.ravel(), return_inverse=True)
    _, true = np.unique(truth.ravel(), return_inverse=True)
    rows, cols = pred.max() + 1, true.max() + 1
    return np.bincount(pred * cols + true, minlength=rows * cols).reshape(rows, cols)


def match_scores(prediction: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(pixel accuracy, mean IoU) of `prediction` against one human map."""
    table = contingency(prediction, truth)
    rows, cols = linear_sum_assignment(table, maximize=True)
    accuracy = table[rows, cols].sum() / table.sum()
    intersection = np.zeros(table.shape[1])
    union = table.sum(0).astype(np.float64)  # unmatched true segments: IoU 0
    intersection[cols] = table[rows, cols]
    union[cols] = table.sum(0)[cols] + table.sum(1)[rows] - table[rows, cols]
    return float(accuracy), float(np.mean(intersection / union))


def score_against_annotators(
    prediction: np.ndarray, annotations: list[np.ndarray]
) -> tuple[float, float]:
    """(accuracy, mIoU), each averaged over the annotators' maps."""
    scores = np.array([match_scores(prediction, truth) for truth in annotations])
    return float(scores[:, 0].mean()), float(scores[:, 1].mean())


def segment_count(labels: np.ndarray) -> int:
    return int(np.unique(labels).size)
