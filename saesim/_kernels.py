"""Compiled inner loops (numba) of the group null, where numpy would pass over the data ten times.

Imported lazily by :mod:`saesim.nulls`: numba's import and first compilation (cached on disk
next to this file, ``cache=True``) are paid only by runs that draw a many-to-1 RSA null.
"""

from __future__ import annotations

import numba


@numba.njit(cache=True, nogil=True)
def weighted_rank_inner(weights, perm, rows, cols, tie_starts, blocks, n_groups, n_entries):
    """RSA of one group-null draw: ``(inner, norm_sq)`` of the hub side's centred weighted ranks.

    The hub side's distinct RSM entries, sorted once, are ``(rows[t], cols[t])`` with tie groups
    starting at ``tie_starts``; entry ``(i, j)`` stands for ``weights[i] * weights[j]`` entries
    (``w (w - 1) / 2`` on the diagonal). Its centred average rank is the count of entries below
    its tie group plus half the group's count, less ``n_entries / 2``; ``inner`` sums it times
    the other side's block sum of the draw, ``blocks[perm[i] * n_groups + perm[j]]`` (diagonal
    blocks already halved), and ``norm_sq`` sums count * rank^2.
    """
    n_ties = tie_starts.size
    n_sorted = rows.size
    below = 0.0  # a sum of integer counts: exact in float64
    inner = 0.0
    inner_carry = 0.0  # Neumaier-compensated sums: a million large terms with much cancellation
    norm_sq = 0.0
    norm_carry = 0.0
    for group in range(n_ties):
        start = tie_starts[group]
        stop = tie_starts[group + 1] if group + 1 < n_ties else n_sorted
        total = 0.0
        block = 0.0
        for t in range(start, stop):
            i = rows[t]
            j = cols[t]
            if i == j:
                total += weights[i] * (weights[i] - 1.0) / 2.0
            else:
                total += weights[i] * weights[j]
            block += blocks[perm[i] * n_groups + perm[j]]
        centred = below + 0.5 * total - 0.5 * n_entries
        term = centred * block
        summed = inner + term
        if abs(inner) >= abs(term):
            inner_carry += (inner - summed) + term
        else:
            inner_carry += (term - summed) + inner
        inner = summed
        term = total * centred * centred
        summed = norm_sq + term
        norm_carry += (norm_sq - summed) + term  # every term is >= 0 and the sum only grows
        norm_sq = summed
        below += total
    return inner + inner_carry, norm_sq + norm_carry

