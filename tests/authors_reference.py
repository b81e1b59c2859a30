"""Frozen re-implementations of the authors' computations: oracles for ``compat=True``.

They follow, step by step, what the code of wlg1/univ_feat_geom runs
(``run_pipeline/sim_fns.py``, vendored from ReSi, and the p-value computed from
the ``get_rand_fns.py`` nulls), as documented in authors_pipeline.md §2.5-2.7.
They are deliberately literal, bugs included; do not "fix" them.
"""

import numpy as np
import scipy.spatial.distance
import scipy.stats


def _authors_top_k_pca_comps(singular_values, threshold=0.99):
    """ReSi's component count: a fraction compared with threshold * total variance (the bug)."""
    total_variance = np.sum(singular_values**2)
    cumulative = np.cumsum(singular_values**2 / total_variance)
    return int(np.argmax(cumulative >= threshold * total_variance)) + 1


def _authors_cca_coefficients(acts1, acts2, epsilon=1e-10):
    """Google cca_core.get_cca_similarity(...)['cca_coef1'] (rows = neurons, columns = datapoints)."""
    assert acts1.shape[0] < acts1.shape[1], "input must be number of neurons by datapoints"
    numx = acts1.shape[0]
    covariance = np.cov(acts1, acts2)
    sigma_xx, sigma_xy = covariance[:numx, :numx], covariance[:numx, numx:]
    sigma_yy = covariance[numx:, numx:]
    xmax, ymax = np.max(np.abs(sigma_xx)), np.max(np.abs(sigma_yy))
    sigma_xx = sigma_xx / xmax
    sigma_yy = sigma_yy / ymax
    sigma_xy = sigma_xy / np.sqrt(xmax * ymax)
    keep_x = np.abs(np.diagonal(sigma_xx)) >= epsilon  # remove_small
    keep_y = np.abs(np.diagonal(sigma_yy)) >= epsilon
    sigma_xx = sigma_xx[keep_x][:, keep_x] + epsilon * np.eye(keep_x.sum())
    sigma_yy = sigma_yy[keep_y][:, keep_y] + epsilon * np.eye(keep_y.sum())
    sigma_xy = sigma_xy[keep_x][:, keep_y]

    def inverse_sqrt(matrix):  # positivedef_matrix_sqrt(pinv(.))
        w, v = np.linalg.eigh(np.linalg.pinv(matrix))
        return v @ np.diag(np.sqrt(w)) @ v.T

    arr = inverse_sqrt(sigma_xx) @ sigma_xy @ inverse_sqrt(sigma_yy)
    return np.abs(np.linalg.svd(arr, compute_uv=False))


def authors_svcca(x, y):
    """``sim_fns.svcca(x, y, "nd")`` on paired rows x (n, d_x), y (n, d_y): the reported SVCCA."""
    reduced = []
    for rows in (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)):
        acts = rows.T  # neurons = model dims, datapoints = the paired features
        centred = acts - acts.mean(axis=1, keepdims=True)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        k = _authors_top_k_pca_comps(s)
        reduced.append((s[:k] * np.eye(k)) @ vt[:k])
    return float(np.mean(_authors_cca_coefficients(reduced[0], reduced[1])))


def authors_rsa(x, y):
    """ReSi ``representational_similarity_analysis`` (inner="correlation", outer="spearman")."""

    def condensed_rsm(rows):
        rows = rows - rows.mean(axis=1, keepdims=True)
        unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        cosine_distance = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)  # sklearn's cosine_distances
        return scipy.spatial.distance.squareform(1.0 - cosine_distance, checks=False)

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(scipy.stats.spearmanr(condensed_rsm(x), condensed_rsm(y)).statistic)


def authors_p_value(observed, null):
    """The authors' estimator ``mean(null >= observed)``, which is 0 when no null value reaches it."""
    return float(np.mean(np.asarray(null) >= observed))
