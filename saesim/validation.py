"""Input checks shared by the public functions (one place, clear messages)."""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

SeedLike = int | np.random.Generator | None


def as_generator(seed: SeedLike, *, name: str = "seed") -> np.random.Generator:
    """Turn ``seed`` (int, Generator or None) into a ``numpy.random.Generator``.

    Library code draws randomness only through the generator returned here,
    never through NumPy's global state.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(
        f"`{name}` must be an int, a numpy.random.Generator or None; got {seed!r} "
        f"({type(seed).__name__}). Pass an integer seed such as {name}=0."
    )


def check_codes(codes, *, name: str) -> sp.csr_matrix | np.ndarray:
    """Validate a token-by-latent matrix: 2-D, real, finite.

    Returns a float CSR matrix for sparse input and a float ndarray for dense
    input. Nothing is densified or centred.
    """
    if sp.issparse(codes):
        matrix = sp.csr_matrix(codes)
        if matrix.ndim != 2:
            raise ValueError(f"`{name}` must be 2-D (tokens x latents); got shape {matrix.shape}.")
        if not np.issubdtype(matrix.dtype, np.number) or np.iscomplexobj(matrix.data):
            raise TypeError(f"`{name}` must hold real numbers; got dtype {matrix.dtype}.")
        if matrix.dtype not in (np.float32, np.float64):
            matrix = matrix.astype(np.float64)
        if not np.all(np.isfinite(matrix.data)):
            bad = int(np.count_nonzero(~np.isfinite(matrix.data)))
            raise ValueError(
                f"`{name}` contains {bad} NaN or infinite values; codes must be finite "
                "(check the SAE's input normalisation or the cached activations)."
            )
        return matrix
    array = np.asarray(codes)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (tokens x latents); got shape {array.shape}.")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise TypeError(f"`{name}` must hold real numbers; got dtype {array.dtype}.")
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ValueError(
            f"`{name}` contains {bad} NaN or infinite values; codes must be finite "
            "(check the SAE's input normalisation or the cached activations)."
        )
    return array


def check_same_rows(a, b, *, name_a: str, name_b: str) -> None:
    """Raise if two token-aligned matrices have different numbers of rows."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"`{name_b}` has {b.shape[0]} rows but `{name_a}` has {a.shape[0]}; both must "
            "come from the same TokenGrid (rerun with the same profile and data)."
        )


def check_paired_rows(x, y, *, name_x: str = "x", name_y: str = "y", min_rows: int = 2):
    """Validate two paired point clouds (row i of x pairs with row i of y)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    for name, arr in ((name_x, x), (name_y, y)):
        if arr.ndim != 2:
            raise ValueError(f"`{name}` must be 2-D (pairs x dims); got shape {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"`{name}` contains NaN or infinite values; remove those rows first.")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`{name_y}` has {y.shape[0]} rows but `{name_x}` has {x.shape[0]}; row i of each "
            "must be the same pair (index both with the same Pairs)."
        )
    if x.shape[0] < min_rows:
        raise ValueError(
            f"`{name_x}` and `{name_y}` have {x.shape[0]} paired rows; at least {min_rows} are "
            "needed (relax the filters or pick more latents)."
        )
    return x, y
