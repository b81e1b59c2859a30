"""Compiled inner loops (numba) of the group null, where numpy would pass over the data ten times.

Imported lazily by :mod:`saesim.compare.nulls`: numba's import and first compilation (cached on disk
next to this file, ``cache=True``) are paid only by runs that draw a many-to-1 RSA null.
"""

from __future__ import annotations

import numba


@numba.njit(cache=True, nogil=True)
def weighted_rank_inner(weights, perm, rows, cols, tie_start, offsets, blocks, ranks, n_entries):
    """RSA of one group-null draw: ``(inner, norm_sq)`` of the hub side's centred weighted ranks.

    The hub side's distinct RSM entries, sorted once, are ``(rows[t], cols[t])``; ``tie_start[t]``
    is True where a new value (tie group) starts. Entry ``(i, j)`` stands for ``weights[i] *
    weights[j]`` entries (``w (w - 1) / 2`` on the diagonal). Its centred average rank is the
    count of entries below its tie group plus half the group's count, less ``n_entries / 2``;
    ``norm_sq`` sums count * rank^2. The rank of entry ``(i, j)`` is written to the packed upper
    triangle ``ranks`` at the groups it lands in, ``(perm[i], perm[j])`` (``offsets[a] + b`` for
    ``a <= b``), and ``inner`` is the dot product of ``ranks`` with the other side's block sums
    ``blocks``, packed the same way (diagonal blocks already halved). Every packed position is written once per draw: ``perm``
    is a bijection. Scattering the ranks and then reading both arrays in order is about twice as
    fast as gathering ``blocks`` in rank order, which misses the cache on every entry.
    """
    n_sorted = rows.size
    below = 0.0  # a sum of integer counts: exact in float64
    norm_sq = 0.0  # positive terms: relative error below n_sorted * eps
    start = 0
    while start < n_sorted:
        stop = start + 1
        while stop < n_sorted and not tie_start[stop]:
            stop += 1
        total = 0.0
        for t in range(start, stop):
            i = rows[t]
            j = cols[t]
            if i == j:
                total += weights[i] * (weights[i] - 1.0) / 2.0
            else:
                total += weights[i] * weights[j]
        centred = below + 0.5 * total - 0.5 * n_entries
        norm_sq += total * centred * centred
        below += total
        for t in range(start, stop):
            a = perm[rows[t]]
            b = perm[cols[t]]
            if a > b:
                a, b = b, a
            ranks[offsets[a] + b] = centred
        start = stop
    inner = 0.0  # |error| <= n_sorted * eps * sum|terms| <= n_sorted * eps * |ranks| |blocks|
    for t in range(ranks.size):
        inner += ranks[t] * blocks[t]
    return inner, norm_sq
