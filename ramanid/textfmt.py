"""Numbers formatted for many rows at once, exactly as Python formats each one.

Result texts (reasons, batch columns) quote rounded figures: ``f"{r:.3f}"`` for a score,
``f"{100 * share:.0f}"`` for a percentage. Formatting each row in Python costs about a
microsecond; a batch has few distinct shown values, so :func:`fixed` formats each once and
spreads it over the rows that show it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["fixed", "spread"]


def spread(keys: np.ndarray, make: Callable[[int], str]) -> np.ndarray:
    """``make(i)`` for one row ``i`` of each distinct key, spread to every row with that key.

    Parameters
    ----------
    keys
        One key per row (any sortable dtype).
    make
        Text of row ``i``; must be the same for every row with the same key.

    Returns
    -------
    numpy.ndarray
        Object array of ``str``, one per row.
    """
    keys = np.asarray(keys)
    if keys.size == 0:
        return np.empty(0, dtype=object)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return np.array([make(i) for i in first.tolist()], dtype=object)[inverse.ravel()]


def fixed(x: np.ndarray, digits: int, scale: float = 1.0) -> np.ndarray:
    """``f"{scale * float(v):.{digits}f}"`` of every element, formatted once per shown value.

    Rows are grouped by the value the format shows: ``rint(v * 10**digits)`` (half to even on
    the exact binary value, as the format rounds) and the sign (``-0.000``), which is exact
    when the product is (``v`` float32, ``scale`` 1 and ``digits <= 3``, or ``digits == 0``);
    other input is grouped by its value. Non-finite values are grouped by value ("nan", "inf").

    Parameters
    ----------
    x
        Numbers (any real dtype).
    digits
        Decimals shown.
    scale
        Factor applied first (100 for a percentage of a fraction).

    Returns
    -------
    numpy.ndarray
        Object array of ``str`` with the shape of ``x`` flattened.
    """
    x = np.asarray(x)
    exact = digits == 0 or (scale == 1.0 and x.dtype.kind == "f" and x.dtype.itemsize <= 4
                            and digits <= 3)
    v = (scale * x.astype(np.float64)).ravel()   # the float64 product Python forms
    spec = f".{digits}f"
    if not exact:
        return spread(v, lambda i: format(float(v[i]), spec))
    with np.errstate(invalid="ignore", over="ignore"):
        k = np.rint(v * 10.0 ** digits)
    finite = np.isfinite(k)
    # -0.5 marks "negative, shown as zero" (shown with its sign); non-finite keep their value
    keys = np.where(finite, np.where((k == 0) & np.signbit(v), -0.5, k), v)
    return spread(keys, lambda i: format(float(v[i]), spec))
