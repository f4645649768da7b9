"""The Algonauts 2023 metrics, per vertex as fractions (the benchmarks report them in percent, as the challenge's
leaderboard and both studies do):

* the challenge's (gifale95/algonauts_2023 ``03_test_encoding.py``): the squared Pearson r of predicted and measured
  responses over the scored images (negative r set to 0), divided by the vertex's noise ceiling (0 counts as 1e-14)
  and capped at 1;
* raw Pearson r^2 (r < 0 set to 0), where no noise ceiling is available;
* GroupLin's validation metric (childmindresearch/algonauts23 ``raw_multi_r2``): sklearn's coefficient of
  determination R^2 per vertex, whose median over every subject's vertices is the authors' "median R^2".

Also per-ROI tables of the per-vertex scores and a bar chart of them."""
from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = {
    "noise_normalized_r2": "squared Pearson r (r < 0 set to 0) over the noise ceiling, capped at 1: the Algonauts "
                           "2023 challenge score",
    "pearson_r2": "raw squared Pearson r (r < 0 set to 0), without a noise ceiling: not comparable with "
                  "noise-normalised scores",
    "median_r2": "median coefficient of determination R^2 over every subject's vertices: the algonauts23 GroupLin "
                 "authors' validation score",
}
COLUMNS_CHUNK = 4096  # columns per chunk: (2000 rows x 4096 columns) float64 pairs stay near 130 MB


def _column_chunks(predictions: np.ndarray, responses: np.ndarray):
    """(columns, predictions, responses) in float64, :data:`COLUMNS_CHUNK` columns at a time, after checking that the
    two arrays have the same (n_images, n_vertices) shape."""
    predictions, responses = np.asarray(predictions), np.asarray(responses)
    if predictions.shape != responses.shape or predictions.ndim != 2:
        raise ValueError(f"predictions {predictions.shape} and responses {responses.shape} must be the same "
                         f"(n_images, n_vertices) shape")
    for start in range(0, predictions.shape[1], COLUMNS_CHUNK):
        columns = slice(start, start + COLUMNS_CHUNK)
        yield columns, predictions[:, columns].astype(np.float64), responses[:, columns].astype(np.float64)


def correlation(predictions: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """Pearson r per column (vertex) over the rows (images), accumulated in float64 a chunk of columns at a time.

    A column that is constant in either array (zero variance) gets r = 0.
    """
    r = np.zeros(np.shape(predictions)[-1])
    for columns, a, b in _column_chunks(predictions, responses):
        constant = (a.max(0) == a.min(0)) | (b.max(0) == b.min(0))
        a -= a.mean(0)
        b -= b.mean(0)
        norm = np.sqrt((a * a).sum(0) * (b * b).sum(0))
        r[columns] = np.divide((a * b).sum(0), norm, out=np.zeros_like(norm), where=~constant & (norm > 0))
    return r


def challenge_scores(predictions: np.ndarray, responses: np.ndarray,
                     noise_ceiling: np.ndarray | None = None) -> np.ndarray:
    """Per-vertex challenge score: r^2 with r < 0 set to 0; with ``noise_ceiling`` (a fraction per vertex) divided
    by it (a ceiling of 0 counts as 1e-14) and capped at 1."""
    r = correlation(predictions, responses)
    r[r < 0] = 0
    r2 = r ** 2
    if noise_ceiling is None:
        return r2
    nc = np.array(noise_ceiling, dtype=np.float64)
    if nc.shape != r2.shape:
        raise ValueError(f"noise_ceiling has shape {nc.shape}, expected one value per vertex {r2.shape}")
    nc[nc == 0] = 1e-14
    score = r2 / nc
    score[score > 1] = 1
    return score


def determination(predictions: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """sklearn's ``r2_score(responses, predictions, multioutput='raw_values')`` per column, in float64 a chunk of
    columns at a time: ``1 - SS_res / SS_tot``; a constant column scores 1 when predicted exactly, else 0."""
    r2 = np.zeros(np.shape(predictions)[-1])
    for columns, predicted, y in _column_chunks(predictions, responses):
        residual = ((y - predicted) ** 2).sum(0)
        total = ((y - y.mean(0)) ** 2).sum(0)
        r2[columns] = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), (residual == 0) * 1.0)
    return r2


def metric_name(noise_ceiling) -> str:
    """The :data:`METRICS` key of :func:`challenge_scores` with or without a noise ceiling."""
    return "pearson_r2" if noise_ceiling is None else "noise_normalized_r2"


def _row(subject, group, roi, hemisphere, values: np.ndarray) -> dict:
    return {"subject": subject, "group": group, "roi": roi, "hemisphere": hemisphere, "n_vertices": len(values),
            "score": float(np.mean(values)) if len(values) else np.nan}


def roi_table(scores: dict[str, np.ndarray], rois: dict[str, dict[str, dict[str, np.ndarray]]],
              subject: str | None = None) -> pd.DataFrame:
    """Mean per-vertex score per (group, roi, hemisphere), plus hemisphere 'both' (the vertices of all hemispheres
    together) and group 'all' roi 'all' (every vertex).

    Args:
        scores: hemisphere ('lh', 'rh') -> per-vertex scores.
        rois: hemisphere -> ROI group -> ROI -> vertex indices into that hemisphere's scores.
        subject: the value of the table's ``subject`` column.

    Returns:
        Columns subject, group, roi, hemisphere, n_vertices, score (NaN where n_vertices is 0).
    """
    names = {}  # group -> ROIs, in order of first appearance over the hemispheres
    for groups in rois.values():
        for group, members in groups.items():
            names.setdefault(group, {}).update(dict.fromkeys(members))
    rows = []
    for group, members in names.items():
        for roi in members:
            parts = {hemisphere: np.asarray(values)[np.asarray(rois.get(hemisphere, {}).get(group, {}).get(roi, []),
                                                                dtype=int)]
                     for hemisphere, values in scores.items()}
            rows += [_row(subject, group, roi, hemisphere, part) for hemisphere, part in parts.items()]
            rows.append(_row(subject, group, roi, "both", np.concatenate(list(parts.values()))))
    everything = {hemisphere: np.asarray(values) for hemisphere, values in scores.items()}
    rows += [_row(subject, "all", "all", hemisphere, values) for hemisphere, values in everything.items()]
    rows.append(_row(subject, "all", "all", "both", np.concatenate(list(everything.values()))))
    return pd.DataFrame(rows, columns=["subject", "group", "roi", "hemisphere", "n_vertices", "score"])


def plot_roi_table(table: pd.DataFrame, ax=None):
    """Horizontal bars of the 'both' rows' scores per ROI (averaged over subjects), coloured and ordered by group;
    draws on ``ax`` (a new figure when None) and returns it."""
    import matplotlib.pyplot as plt

    both = table[table["hemisphere"] == "both"]
    means = both.groupby(["group", "roi"], sort=False)["score"].mean().reset_index()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.25 * len(means) + 1))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    positions = np.arange(len(means))
    for index, group in enumerate(means["group"].unique()):
        mine = (means["group"] == group).to_numpy()
        ax.barh(positions[mine], means["score"][mine], color=colours[index % len(colours)], label=group)
    ax.set_yticks(positions, labels=means["roi"])
    ax.invert_yaxis()
    ax.set_xlabel("score")
    ax.legend(title="group", fontsize="small")
    return ax
