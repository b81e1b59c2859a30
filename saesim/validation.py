"""Input checks shared by the public functions (one place, clear messages)."""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from saesim.errors import ProfileError

SeedLike = int | np.random.Generator | None


class NotAnIntegerError(TypeError, ValueError):
    """A count argument is not an integer (a float, a string, a bool, None...).

    A ``TypeError`` because the type is wrong, and also a ``ValueError`` because the
    per-function checks that :func:`check_positive_int` replaced raised ``ValueError``
    for these inputs; code catching either keeps working (as NumPy's ``AxisError`` is
    both a ``ValueError`` and an ``IndexError``).
    """


def check_positive_int(value, name: str, *, minimum: int = 1, fix: str = "") -> int:
    """Check that ``value`` is an integer of at least ``minimum`` and return it as an ``int``.

    The one check for count-like arguments (sizes, numbers of permutations, draws,
    workers, rows per chunk). Python and NumPy integers pass; ``bool`` does not, although
    it is an ``int`` subclass, because ``True`` as a count is always a mistake.

    Parameters
    ----------
    value : object
        The argument to check.
    name : str
        The argument's name, quoted in backticks by the message.
    minimum : int, default 1
        The smallest allowed value: 1 for "a positive integer", 0 for "a non-negative
        integer", anything else for "an integer >= minimum".
    fix : str, default ""
        A sentence appended to the message that says what to pass instead.

    Returns
    -------
    int
        ``int(value)``.

    Raises
    ------
    NotAnIntegerError
        (a ``TypeError`` and a ``ValueError``) if ``value`` is a ``bool`` or not an integer.
    ValueError
        If ``value`` is below ``minimum``. Both messages name the argument, what it must be,
        the value received and ``fix``.

    Examples
    --------
    >>> check_positive_int(np.int64(3), "n_perm")
    3
    >>> check_positive_int(0, "n_perm", fix="Use e.g. n_perm=1000.")
    Traceback (most recent call last):
    ...
    ValueError: `n_perm` must be a positive integer; got 0. Use e.g. n_perm=1000.
    """
    if minimum == 1:
        expected = "a positive integer"
    elif minimum == 0:
        expected = "a non-negative integer"
    else:
        expected = f"an integer >= {minimum}"
    tail = f" {fix}" if fix else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise NotAnIntegerError(
            f"`{name}` must be {expected}; got {value!r} ({type(value).__name__}).{tail}"
        )
    if value < minimum:
        raise ValueError(f"`{name}` must be {expected}; got {value!r}.{tail}")
    return int(value)


def check_positive_fields(obj, names, *, optional: bool = False) -> None:
    """Check that the fields ``names`` of a profile dataclass are positive integers, raising ProfileError.

    Each field goes through :func:`check_positive_int` under its own name; the
    error is re-raised as :class:`saesim.errors.ProfileError`, so a bad profile
    value fails like any other.

    Parameters
    ----------
    obj : object
        The dataclass instance (e.g. a :class:`saesim.config.DataSpec` in its ``__post_init__``).
    names : iterable of str
        The attribute names to check.
    optional : bool, default False
        Whether None passes (a field whose None means "no cap" or "any").

    Raises
    ------
    ProfileError
        A field is not an integer, or is below 1; the message names the field.
    """
    for name in names:
        value = getattr(obj, name)
        if value is None and optional:
            continue
        try:
            check_positive_int(value, name)
        except ValueError as exc:  # NotAnIntegerError is a ValueError too
            raise ProfileError(str(exc)) from None


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
