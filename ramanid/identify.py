"""Verdicts, calibrated thresholds and the hazard layer: the identification engine.

``Identifier(library)`` does the library-side work once (shifted library stack, thresholds);
``Identifier.run(batch)`` processes a whole batch with array operations and returns a columnar
:class:`ResultSet`; ``ResultSet.records()`` gives the JSON contract of ``ramanid identify --json``.

Decision rules, per scan (all thresholds from :func:`calibrate`, never from evaluation data):

1. ``inconclusive`` when QC fails: axis coverage < ``min_coverage``, saturated detector
   (flat top at the maximum), peak SNR < ``min_snr``, or baseline-to-signal ratio
   (fluorescence) > ``max_fluorescence``.
2. Correlation r against every entry, best over the shift search (:mod:`ramanid.match`).
3. NNLS of the scan on ``n_candidates`` distinct substances chosen by greedy forward selection
   over the whole library (:func:`ramanid.mixture.greedy_select`, the best entry first; the
   top candidates by score were all fentanyl analogues on a 70 % fentanyl + 30 % caffeine scan,
   so caffeine was never fitted; the hazard group test (5) keeps the candidates by score),
   built by forward selection: components enter one at a time, and one is significant when its
   residual reduction on entry ``dRSS`` exceeds ``max(tau_mix, z^2 sigma^2)`` (library
   model-mismatch null, and a z-sigma noise test with the scan's own noise sigma in processed
   units) and its spectral fraction >= ``min_fraction`` (a near-duplicate candidate, such as a
   second fentanyl analogue, can then not mask a real component).
4. ``match`` when the top r, corrected for the attenuation by the scan's own noise
   (``r / sqrt(1 - E)``, E = expected noise energy of the unit-norm scan, capped at
   ``max_noise_energy``), reaches the entry's own threshold ``t_j`` and the scan has no
   unexplained bands (forward search: the share of its band energy where the entry has no
   band <= ``max(max_unexplained, u_self_j)``); else ``mixture`` (no single entry explains
   the scan) when
   >= 2 components are significant and the mixture's correlation ``sqrt(1 - RSS)``
   (attenuation-corrected) reaches the largest ``t_j`` of its components (a mixture must fit
   as well as each component must match alone); else ``no_match``. Scores are reported as
   measured. Hazards are decided separately (5), whatever the verdict.
5. Hazard layer: every hazardous entry (hazard_level high/extreme) is fitted on every scan
   together with the top non-hazard candidates; it alarms when (a) it explains the majority
   (``min_explained`` = 0.5) of the structured residual the non-hazard candidates leave,
   ``dRSS_h / (RSS_safe - expected noise energy) >= 0.5``, (b) ``dRSS_h`` passes the z-sigma
   noise test and its own threshold ``tau_h``, and (c) its fraction >= ``min_hazard_fraction``;
   or when the scan would match it on its own (attenuation-corrected r >= its ``t_j``, even if
   a non-hazardous entry scores higher), or it is a component of the reported result, or it is
   a hazardous candidate of the NNLS fit (3) (fraction >= ``min_fraction``) and removing all
   hazardous candidates together raises the residual by more than ``max(tau_group, z^2
   sigma^2)`` (a group test: analogues cannot stand in for each other).
   The targeted rule (a-c) and the group test alarm only when h also passes the nested-model
   test (:meth:`Identifier._nested_test`): the benign model is built by greedy forward
   selection over EVERY non-hazard entry (:func:`ramanid.mixture.greedy_select`, up to
   ``n_candidates`` substances, each after the first entering only if it lowers the residual
   by more than ``z^2 sigma^2``), and adding h to it must lower the residual by more than
   ``max(tau_nested_h, z^2 sigma^2, z^2 RSS_full / (M - k - 1))`` (an F-test of the nested
   models at the same z). A hazard that the best benign mixture already explains does not
   alarm: a cutting agent scanned through a polystyrene container (the modelled opioids'
   strongest bands are polystyrene's phenyl bands at 1001/1030 cm-1) alarmed on 83 % of QA's
   scans with the top-3-by-score benign model, 0 % with this test. Own match and reported
   components are not subject to it (a hazard dominating the scan).

Threshold procedure (:func:`calibrate`, run in ``Identifier.__init__`` from the library alone):

* ``t_j``: each entry's nearest *other substance* in the library, by the same shifted
  correlation, ``q_j``; ``t_j = clip(q_j + margin, r_floor, t_cap)``: accepting j needs a score
  that its closest known relative cannot reach. ``r_floor`` is the median of the q_j plus the
  margin, clipped to [0.7, 0.9]: the best score a typical absent substance gets from the rest
  of the library (the median rather than a high quantile because a missed hazard costs more
  than a second look; entries with close relatives are raised by their own q_j).
  A scan that covers only part ``[lo, hi)`` of the axis is judged against thresholds from the
  same rule on that part (:meth:`Identifier.entry_thresholds`: the q_j and ``r_floor`` of the
  library rows restricted to ``[lo, hi)``, centred and normalised there as such a scan is, and
  scored as it is; cached per range; the whole axis gives ``t_j`` itself). What separates j from
  its relatives is a property of the range compared: linseed and sesame oil correlate at 0.90
  over 310-1800 cm-1 but at 0.64-0.66 over 310-1200 cm-1, where their weak bands also lower
  the score a scan of the oil reaches (0.82-0.84), so the whole-axis t_j = 0.92 turned every
  such scan away; a range that drops an entry's discriminating bands raises its t_j instead.
  The match, mixture and own-match hazard rules (4, 5) all use these thresholds.
* ``tau_mix``, ``tau_h`` and ``max_unexplained``: pseudo-scans of every non-hazard entry
  under an instrument-transfer noise model (random axis offset within +-3 cm-1, Gaussian
  broadening up to 5 cm-1, smooth multiplicative response tilt +-30 %, relative band
  intensities varied by a smooth random factor of 25 % rms with 60 cm-1 correlation length
  (orientation, crystallinity, response), white noise at peak SNR 50; fixed seed) are fitted
  exactly as field scans are. ``tau_mix`` is the 99th percentile of the residual reduction
  of the second component entering the forward selection (a spurious component on a pure
  substance); ``max_unexplained`` the 99th percentile of the
  forward-search share of each pseudo-scan against its own entry, floored per entry by
  ``u_self_j``, the noise-free share of the reference itself (its weak bands below the band
  mask: a scan identical to the reference must never be rejected); small libraries draw more
  repetitions per entry, so that every null is estimated from at least ``_MIN_NULL_SCANS`` =
  500 pseudo-scans (6 pseudo-scans of a one-entry library made the 99th percentile a sample
  maximum, below lactose's own share); ``tau_group`` the 99.5th
  percentile of the hazard group test's residual increase on them (0 when no hazardous entry
  is a candidate); ``tau_h`` the 99.5th
  percentile of hazard h's dRSS on these pure non-hazard pseudo-scans, counting only those
  that pass the majority rule (a): the joint false-alarm rate on the null is then <= 0.5 %
  per hazardous entry (when fewer than 0.5 % pass the rule, ``tau_h`` is 0 and the rule
  alone controls it). ``tau_nested`` (per hazard): the 99.5th percentile of the nested test's
  dRSS on the same pseudo-scans, counting only those that pass the majority rule (a).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ramanid._version import __version__
from ramanid.errors import LibraryError
from ramanid.hazard import HAZARD_LEVELS
from ramanid.match import Matcher, shift_rows, take_rows, top_k
from ramanid.mixture import design_gram, forward_select, greedy_select, nnls_gram
from ramanid.preprocess import Processed, Recipe, default_recipe, normalise, row_median
from ramanid.spectrum import SpectrumBatch

__all__ = [
    "ENGINE_VERSION",
    "HAZARD_LEVELS",
    "VERDICTS",
    "Identifier",
    "ResultSet",
    "Thresholds",
    "calibrate",
    "identify",
]

ENGINE_VERSION = f"ramanid-engine {__version__}/1"
VERDICTS = ("match", "mixture", "no_match", "inconclusive")
_MATCH, _MIXTURE, _NO_MATCH, _INCONCLUSIVE = range(4)
REASONS = (
    "",
    "too little of the library axis is covered by the scan",
    "the detector was saturated",
    "the signal is too weak",
    "fluorescence overwhelms the Raman signal",
    "no Raman signal (flat spectrum)",
    "the scan holds values that are not finite numbers (NaN or infinity)",
)
_HANDLING_DEFAULT = {
    "extreme": "DO NOT OPEN. Possible fentanyl-class opioid: gloves, mask (P100/FFP3), "
               "naloxone at hand; isolate the item and call the hazmat/forensic team.",
    "high": "Hazardous substance: do not open; isolate the item and follow hazmat procedure.",
    "low": "Handle with gloves.",
}
_OPIOID_WORDS = ("opioid", "fentanyl")


@dataclass
class Thresholds:
    """Decision thresholds (see module docstring for how each is derived)."""

    r_floor: float
    t_entry: np.ndarray
    tau_mix: float
    tau_hazard: np.ndarray
    min_snr: float = 5.0
    max_noise_energy: float = 0.5
    max_saturation: float = 0.002
    max_fluorescence: float = 50.0
    min_coverage: float = 0.5
    min_fraction: float = 0.05
    min_hazard_fraction: float = 0.03
    min_explained: float = 0.5
    max_unexplained: float = 1.0
    tau_group: float = 0.0
    tau_nested: np.ndarray | None = None
    u_self: np.ndarray | None = None
    z_noise: float = 5.0
    margin: float = 0.02
    t_cap: float = 0.97

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"r_floor": round(self.r_floor, 4), "tau_mix": self.tau_mix,
                "tau_hazard": [float(t) for t in self.tau_hazard],
                "min_snr": self.min_snr, "max_saturation": self.max_saturation,
                "max_fluorescence": self.max_fluorescence, "min_coverage": self.min_coverage,
                "min_fraction": self.min_fraction, "min_hazard_fraction": self.min_hazard_fraction,
                "min_explained": self.min_explained,
                "max_unexplained": round(self.max_unexplained, 4),
                "u_self_max": None if self.u_self is None or not self.u_self.size
                else round(float(np.max(self.u_self)), 4),
                "tau_group": self.tau_group,
                "tau_nested": None if self.tau_nested is None
                else [float(t) for t in self.tau_nested],
                "z_noise": self.z_noise}


@dataclass
class ResultSet:
    """Columnar results of :meth:`Identifier.run` (row i = scan i of the batch)."""

    verdict: np.ndarray          # int8 index into VERDICTS
    reason: np.ndarray           # int8 index into REASONS (QC reason, 0 when QC passed)
    top_ids: np.ndarray          # (n, k) int32 entry indices, best per substance (-1 padded)
    top_scores: np.ndarray       # (n, k) float32 Pearson r
    comp_ids: np.ndarray         # (n, c) int32, -1 padded
    comp_fracs: np.ndarray       # (n, c) float32
    mix_r: np.ndarray            # (n,) correlation of the NNLS fit
    hazard_level: np.ndarray     # (n,) int8 index into HAZARD_LEVELS
    hazard_hits: np.ndarray      # (n, H) bool: which hazardous entries alarmed
    hazard_fracs: np.ndarray     # (n, H) float32 fitted fraction of each hazardous entry
    shift: np.ndarray            # (n,) float32 cm-1 shift applied (scan minus library)
    qc: dict[str, np.ndarray]
    meta: list[dict[str, Any]] = field(default_factory=list)
    identifier: Identifier | None = None
    r_corr: np.ndarray | None = None       # (n,) best r corrected for the scan's own noise
    unexplained: np.ndarray | None = None  # (n,) forward-search share of the best entry
    span: tuple[int, int] | None = None    # covered library-axis range [lo, hi) of the scans
    _source: Any = field(default=None, repr=False)   # (axis, intensity) for the scan ids
    _ids: Any = field(default=None, repr=False)

    def scan_ids(self) -> np.ndarray:
        """Stable content id of every scan (:func:`ramanid.io.archive.scan_ids`; ids the
        scans' metadata already carry are kept)."""
        if self._ids is None:
            from ramanid.io.archive import scan_ids
            if self._source is None:
                self._ids = np.array([m.get("scan_id") for m in self.meta], dtype=object)
            else:
                axis, Y = self._source
                self._ids = scan_ids(SpectrumBatch(axis, Y, list(self.meta)))
        return self._ids

    def __len__(self) -> int:
        return int(self.verdict.shape[0])

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per scan (the ``ramanid identify --json`` contract)."""
        assert self.identifier is not None
        cache: dict[Any, Any] = {}
        reasons = self.identifier.reason_texts(self)
        warnings = self.identifier.record_warnings(self, cache=cache)
        ids = self.scan_ids()
        return [self.identifier._record(self, i, reason=reasons[i], warnings=warnings[i],
                                        scan_id=ids[i], cache=cache) for i in range(len(self))]


def _bands(ref: np.ndarray) -> np.ndarray:
    """Band mask of reference rows: > 10 % of the tallest band above the median, +-3 points."""
    ref = ref - np.median(ref[:, ::4], axis=1, keepdims=True)
    band = ref > 0.1 * ref.max(axis=1, keepdims=True)
    out = band.copy()
    for d in (1, 2, 3):                       # widen by +-3 points (a running maximum of 7)
        out[:, d:] |= band[:, :-d]
        out[:, :-d] |= band[:, d:]
    return out


class _Scores:
    """Matching output of one chunk: best score per entry and the raw products.

    ``prod`` (n, C, N) holds the dot products with the library copies in the order of
    :meth:`ramanid.match.Matcher.raw` and ``den`` (C, N) the copies' norms over the covered
    range (None: the full axis); :meth:`at` and :meth:`r_at` read them by copy index (the
    shift index ``s`` of ``Matcher.shifts``), the one place that maps a copy to its slot.
    ``sidx[rows, entries]`` (1-D index arrays of one length) is the best plain shift of those
    (scan, entry) pairs, found only where it is asked for: the decisions need it for a few
    entries per scan (the best one, the first of a design), so the argmax over every entry
    and shift (~5 us per scan) is not computed.
    """

    __slots__ = ("_last", "den", "n_shifts", "prod", "ranked", "score", "slot")

    def __init__(self, score: np.ndarray, prod: np.ndarray, den: np.ndarray | None,
                 slot: np.ndarray, n_shifts: int,
                 ranked: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.score = score          # (n, N) best r over every copy
        self.prod, self.den, self.slot, self.n_shifts = prod, den, slot, n_shifts
        self.ranked = ranked        # top_k of score for the candidate lists (or None)
        self._last: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []      # see _ShiftIndex

    def at(self, rows: np.ndarray, copies: np.ndarray, ids: np.ndarray | None = None
           ) -> np.ndarray:
        """Products ``prod[rows, slot[copies], ids]`` (broadcast index arrays); without
        ``ids``, the products with every entry ``(len(rows), N)``."""
        phys = self.slot[copies]
        _, C, N = self.prod.shape
        # flat gathers with one index array instead of two or three (the same elements)
        if ids is None:
            return self.prod.reshape(-1, N)[rows * C + phys]
        return np.take(self.prod.reshape(-1), (rows * C + phys) * N + ids)

    def r_at(self, rows: np.ndarray, copies: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Correlations ``r`` of the scans ``rows`` with copies ``copies`` of entries ``ids``."""
        p = self.at(rows, copies, ids)
        return p if self.den is None else p / self.den[self.slot[copies], ids]

    @property
    def sidx(self) -> _ShiftIndex:
        """``sidx[rows, entries]``: index of the best plain shift of those pairs (int16)."""
        return _ShiftIndex(self)

    def take(self, rows: np.ndarray) -> _Scores:
        """The matching output of a subset of the chunk's scans."""
        ranked = None if self.ranked is None else (self.ranked[0][rows], self.ranked[1][rows])
        return _Scores(self.score[rows], self.prod[rows], self.den, self.slot, self.n_shifts,
                       ranked)


class _ShiftIndex:
    """``[rows, entries]`` -> argmax over the plain shifted copies of ``r`` (see _Scores)."""

    __slots__ = ("sc",)

    def __init__(self, sc: _Scores) -> None:
        self.sc = sc

    def __getitem__(self, key: tuple[Any, Any]) -> np.ndarray:
        rows, ids = (np.asarray(k) for k in key)
        # the decisions ask for the shifts of nearly the same pairs several times (the best
        # entry, the best non-hazardous one): the last answers are kept, and only the pairs
        # that differ from one of them on the same scans are searched
        out, todo = None, None
        for r0, i0, o0 in self.sc._last:
            if np.array_equal(r0, rows):
                diff = np.flatnonzero(i0 != ids)
                if todo is None or diff.size < todo.size:
                    out, todo = o0.copy(), diff
        if todo is None:
            out, todo = np.empty(rows.shape, dtype=np.int16), np.arange(rows.size)
        if todo.size:
            r_, i_ = rows[todo], ids[todo]
            shifts = np.arange(self.sc.n_shifts)
            r = self.sc.r_at(r_[:, None], shifts[None, :], i_[:, None])        # (k, S)
            out[todo] = r.argmax(axis=1)
            self.sc._last = [(rows.copy(), ids.copy(), out.copy()), *self.sc._last[:3]]
        return out


_GRAM_MAX = 4096  # libraries up to this size use the precomputed entry Gram matrix


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def _substance_key(e: Any) -> str:
    return str(getattr(e, "substance", "") or e.name).strip().lower()


def _pseudo_scans(L: np.ndarray, step: float, reps: int, rng: np.random.Generator,
                  snr: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """Instrument-transfer noise model applied to processed library rows (see module doc)."""
    from scipy.ndimage import gaussian_filter1d  # lazy: only when thresholds are derived

    n, m = L.shape
    idx = np.repeat(np.arange(n), reps)
    Y = L[idx].astype(np.float64)
    out = np.empty_like(Y)
    shifts = rng.uniform(-3.0, 3.0, idx.size) / step
    for v in np.unique(np.round(shifts, 1)):  # group equal shifts (few distinct values)
        sel = np.round(shifts, 1) == v
        out[sel] = shift_rows(Y[sel], float(v))
    widths = rng.uniform(0.0, 5.0, idx.size) / step
    for w in np.unique(np.round(widths, 1)):
        sel = np.round(widths, 1) == w
        if w > 0:
            out[sel] = gaussian_filter1d(out[sel], float(w), axis=1, mode="nearest")
    t = np.linspace(-1, 1, m)
    a, b = rng.uniform(-0.3, 0.3, (2, idx.size, 1))
    field = gaussian_filter1d(rng.normal(size=(idx.size, m)), 60.0 / step, axis=1)
    field /= field.std(axis=1, keepdims=True)
    tilt = (1 + a * t + b * t**2) * np.maximum(1 + 0.25 * field, 0.2)
    base = out - out.min(axis=1, keepdims=True)
    out = base * tilt
    sigma = out.max(axis=1) / snr
    out += rng.normal(size=out.shape) * sigma[:, None]
    out -= out.mean(axis=1, keepdims=True)
    nrm = np.linalg.norm(out, axis=1)
    out /= nrm[:, None]
    return out.astype(np.float32), idx, sigma / nrm


def _first_ranked(ranked: tuple[np.ndarray, np.ndarray], allowed: np.ndarray | None, kk: int,
                  n_entries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``top_k(where(allowed, score, -inf), kk)`` read from ``ranked = top_k(score, m)``.

    Returns ids, values and the rows where the reading is not exact, to be recomputed. It is
    exact where the first ``kk + 1`` (allowed) ranked values are strictly decreasing: the ``kk``
    best are then one set in one order, whatever the partial sort's order of equal values
    (``top_k`` returns tied scores in its partition's order); a row with fewer than ``kk + 1``
    allowed entries ranked (``kk`` when the whole row is ranked), a tie or a NaN among them is
    redone.
    """
    ids, vals = ranked
    n, m = ids.shape
    if m < kk:   # ranked too shallow for this list
        return (np.empty((n, kk), dtype=ids.dtype), np.empty((n, kk), dtype=vals.dtype),
                np.arange(n))
    if allowed is not None:
        # the allowed entries in rank order (a stable sort of the not-allowed flags)
        ok = allowed[ids]
        first = np.argsort(~ok, axis=1, kind="stable")[:, :kk + 1]
        ids = take_rows(ids, first)
        vals = take_rows(vals, first)
        enough = take_rows(ok, first).all(axis=1) & (first.shape[1] > kk)
    else:
        enough = np.full(n, m > kk or m == n_entries)   # or the whole row is ranked
    head = vals[:, :kk + 1]
    exact = enough & np.all(head[:, :-1] > head[:, 1:], axis=1)
    return ids[:, :kk].copy(), vals[:, :kk].copy(), np.flatnonzero(~exact)


def _fraction_of(hfrac: np.ndarray, where: np.ndarray, frac: np.ndarray) -> None:
    """Set ``hfrac[i, h]`` (in place) to the summed ``frac[i, j]`` of the candidates j with
    ``where[i, j, h]``, for the hazards h that have one (only the rows that have any are
    touched: the same figures as over every row)."""
    rows = np.flatnonzero(where.any(axis=(1, 2)))
    if rows.size:
        w = where[rows]
        hfrac[rows] = np.where(w.any(axis=1), np.sum(np.where(w, frac[rows, :, None], 0.0),
                                                     axis=1), hfrac[rows])


_MIN_NULL_SCANS = 500  # pseudo-scans at least, so that a 99th percentile is not a sample maximum


def _entry_thresholds(ident: Identifier, lo: int, hi: int, margin: float, t_cap: float
                      ) -> tuple[np.ndarray, float]:
    """Acceptance thresholds ``t_j`` and ``r_floor`` from the library's cross-scores on
    ``[lo, hi)`` (the whole axis in :func:`calibrate`; a scan's covered range in
    :meth:`Identifier.entry_thresholds`).

    Each library row, centred and normalised over the range as a scan covering only that range
    is, is scored against the library exactly as a scan is (shift search, scores over the
    range); ``q_j`` is its best score against another substance.
    """
    N = ident.n_entries
    L = ident.matcher.stack[ident.matcher.zero]
    if lo > 0 or hi < ident.n_points:
        part = normalise(L[:, lo:hi].astype(np.float64))[0]    # centred, unit norm there
        L = np.zeros_like(L)
        L[:, lo:hi] = part
    cross, _ = ident.matcher.scores(L, lo, hi)
    same = ident.subst[:, None] == ident.subst[None, :]
    cross = np.where(same, -1.0, cross)
    q = cross.max(axis=1) if N > 1 else np.zeros(1)
    r_floor = float(np.quantile(q, 0.5)) + margin if N > 1 else 0.8
    r_floor = float(np.clip(r_floor, 0.7, 0.9))
    return np.clip(q.astype(np.float64) + margin, r_floor, t_cap), r_floor


def calibrate(ident: Identifier, *, reps: int = 6, seed: int = 0) -> Thresholds:
    """Derive the decision thresholds from the library alone (procedure in the module doc)."""
    N = ident.n_entries
    # --- per-entry acceptance thresholds from library cross-scores (other substances only)
    L = ident.matcher.stack[ident.matcher.zero]
    proto = Thresholds(r_floor=0.0, t_entry=np.zeros(N), tau_mix=0.0,
                       tau_hazard=np.zeros(ident.hazard_idx.size))
    t_entry, r_floor = _entry_thresholds(ident, 0, ident.n_points, proto.margin, proto.t_cap)
    # --- mismatch nulls from pseudo-scans of the non-hazard entries
    rng = np.random.default_rng(seed)
    safe = np.flatnonzero(~ident.is_hazard)
    tau_mix, tau_h, max_unexplained = 0.0, np.zeros(ident.hazard_idx.size), 1.0
    tau_group = 0.0
    tau_nested = np.zeros(ident.hazard_idx.size)
    # the reference's own share of band energy outside its band mask (its weak bands): a scan
    # that IS the reference has this share, so it is each entry's floor of the limit
    u_self = ident._unexplained(L, 0, ident.n_points, np.arange(N),
                                np.full(N, ident.matcher.zero), 0.0)
    if safe.size:
        # small libraries: more repetitions per entry, so every percentile below comes from at
        # least _MIN_NULL_SCANS pseudo-scans (6 x 1 entry made the 99th percentile a maximum of 6)
        reps = max(reps, -(-_MIN_NULL_SCANS // safe.size))
        X, src, noise = _pseudo_scans(L[safe], ident.step, reps, rng)
        sc = ident._score(X, 0, ident.n_points)
        own = safe[src]
        u = ident._unexplained(X, 0, ident.n_points, own, sc.sidx[np.arange(own.size), own],
                               noise)
        max_unexplained = float(np.quantile(u, 0.99))
        fit, cand, _ = ident._mixture(X, 0, ident.n_points, sc)
        mfit, mcand, _ = ident._mixture(X, 0, ident.n_points, sc, greedy=True)
        if mcand.shape[1] > 1:
            # residual reduction of the second component entering the forward selection on a
            # pure substance: a spurious component (ramanid.mixture.forward_select), over the
            # candidates the mixture verdict uses
            one = forward_select(mfit, -1.0, max_steps=1, accept=mcand >= 0)
            two = forward_select(mfit, -1.0, max_steps=2, accept=mcand >= 0)
            tau_mix = float(np.quantile(one.rss - two.rss, 0.99))
        # the hazard group test of the NNLS fit on these pure non-hazard scans (0 when no
        # hazardous candidate enters): its 99.5th percentile, as for tau_h
        tau_group = float(np.quantile(ident._hazard_group_drop(fit, cand), 0.995))
        if ident.hazard_idx.size:
            noise_rss = ident.n_points * noise**2
            drss_h, _, ratio, _ = ident._hazard_fit(X, 0, ident.n_points, sc, noise_rss)
            passing = np.where(ratio >= proto.min_explained, drss_h, 0.0)
            tau_h = np.quantile(passing, 0.995, axis=0)
            # nested test against the benign model selected over every non-hazard entry, on
            # the null scans the targeted rule would flag: its 99.5th percentile
            safe = ident._safe_model(sc, 0, ident.n_points, (proto.z_noise * noise) ** 2)
            drss_n, _, _, _ = ident._hazard_fit(X, 0, ident.n_points, sc, noise_rss, safe)
            tau_nested = np.quantile(np.where(ratio >= proto.min_explained, drss_n, 0.0),
                                     0.995, axis=0)
    return Thresholds(r_floor=r_floor, t_entry=t_entry, tau_mix=tau_mix,
                      tau_hazard=np.asarray(tau_h, dtype=np.float64),
                      max_unexplained=max_unexplained, tau_group=tau_group,
                      tau_nested=np.asarray(tau_nested, dtype=np.float64),
                      u_self=np.asarray(u_self, dtype=np.float64))


_THRESHOLD_FIELDS = ("r_floor", "t_entry", "tau_mix", "tau_hazard", "max_unexplained",
                     "tau_group", "tau_nested", "u_self")


def _threshold_cache_file(ident: Identifier) -> Any:
    """Cache file of the thresholds of this library + engine code + parameters."""
    import hashlib
    import json
    from pathlib import Path

    from ramanid.paths import data_home

    h = hashlib.blake2b(digest_size=16)
    h.update(ENGINE_VERSION.encode())
    for mod in ("identify.py", "match.py", "mixture.py"):   # the code that derives them
        h.update((Path(__file__).parent / mod).read_bytes())
    h.update(np.ascontiguousarray(ident.library.matrix, dtype=np.float32).tobytes())
    h.update(json.dumps([ident.recipe.to_dict(), ident._params,
                         [[str(e.id), _substance_key(e), str(getattr(e, "hazard_level", "")),
                           str(getattr(e, "provenance_kind", ""))] for e in ident.entries]],
                        sort_keys=True, default=str).encode())
    return data_home() / "cache" / "engine" / f"thresholds-{h.hexdigest()}.json"


def _cached_calibrate(ident: Identifier) -> Thresholds:
    """:func:`calibrate`, cached on disk per library content, engine code and parameters.

    Deriving the thresholds takes ~0.25 s (pseudo-scans of every entry); the cache makes the
    first identification of a command-line run cheap. A missing, unreadable or stale cache
    file is simply recomputed (and rewritten when the state directory is writable).
    """
    import json

    path = None
    try:
        path = _threshold_cache_file(ident)
        d = json.loads(path.read_text())
        th = Thresholds(**{k: (np.asarray(d[k], dtype=np.float64) if k in ("t_entry",
                                                                           "tau_hazard",
                                                                           "tau_nested",
                                                                           "u_self")
                               else float(d[k])) for k in _THRESHOLD_FIELDS})
        if th.t_entry.shape == th.u_self.shape == (ident.n_entries,) and \
                th.tau_hazard.shape == th.tau_nested.shape == (ident.hazard_idx.size,):
            return th
    except (OSError, ValueError, KeyError, TypeError):
        pass
    th = calibrate(ident)
    if path is not None:
        try:
            from ramanid.atomic import atomic_write_text
            atomic_write_text(path, json.dumps({k: _jsonable(getattr(th, k))
                                                for k in _THRESHOLD_FIELDS}))
        except OSError:
            pass
    return th


class Identifier:
    """The engine bound to one library (library-side work done once).

    Parameters
    ----------
    library
        A :class:`ramanid.library.Library` (or the same duck type: ``version``, ``sha256``,
        ``recipe`` dict, ``axis``, ``matrix``, ``entries``).
    top
        Number of ranked candidates per scan.
    max_shift, shift_step
        Shift search in cm-1 (:class:`ramanid.match.Matcher`). The step is 1 cm-1, half the
        library grid step: with 2 cm-1 steps a unit 1, 3 or 5 cm-1 off sat half a grid point
        from every shifted copy, and the hazard detector missed a 10 % opioid there.
    broaden
        Gaussian sigma (cm-1) of the broadened library copies that make matching tolerant
        of lower-resolution instruments (0 disables).
    n_candidates
        Distinct substances in the mixture fit (<= 6).
    derivative
        Rank by first-derivative correlation instead of plain correlation.
    chunk
        Scans processed at a time (bounds memory).
    workers
        Threads processing chunks concurrently (default: min(2, CPU count)); results do not
        depend on it.
    """

    def __init__(self, library: Any, *, top: int = 5, max_shift: float = 10.0,
                 shift_step: float = 1.0, n_candidates: int = 4, derivative: bool = False,
                 broaden: float = 5.0, chunk: int = 1024, workers: int | None = None,
                 thresholds: Thresholds | None = None) -> None:
        self.library = library
        rec = getattr(library, "recipe", None)
        self.recipe = Recipe.from_dict(rec) if isinstance(rec, dict) and "params" in rec \
            else default_recipe()
        self.entries = list(library.entries)
        self.n_entries = len(self.entries)
        if self.n_entries == 0:
            raise LibraryError(
                "the library has no approved entries", source=getattr(library, "path", None),
                hint="approve entries with `ramanid library approve ENTRY --by NAME`")
        matrix = np.asarray(library.matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != self.n_entries:
            raise LibraryError("the library matrix rows do not match its entries",
                               source=getattr(library, "path", None),
                               hint="rebuild the library with `ramanid library build`")
        self.n_points = matrix.shape[1]
        self.step = float(self.recipe.params["axis"]["step"])
        self.top = top
        self.chunk = chunk
        self.workers = int(workers) if workers else min(2, os.cpu_count() or 1)
        self.n_candidates = min(n_candidates, 6, self.n_entries)
        self.matcher = Matcher(matrix, self.step, max_shift=max_shift, shift_step=shift_step,
                               broaden=broaden)
        self.ranker = (Matcher(matrix, self.step, max_shift=max_shift, shift_step=shift_step,
                               derivative=True) if derivative else self.matcher)
        _, self.subst = np.unique([_substance_key(e) for e in self.entries], return_inverse=True)
        self.level = np.array([HAZARD_LEVELS.index(getattr(e, "hazard_level", "none") or "none")
                               for e in self.entries], dtype=np.int8)
        self.is_hazard = self.level >= HAZARD_LEVELS.index("high")
        self.hazard_idx = np.flatnonzero(self.is_hazard)
        self.measured = np.array([(getattr(e, "provenance_kind", "measured") or "measured")
                                  == "measured" for e in self.entries])
        self._params = {"max_shift": max_shift, "shift_step": shift_step,
                        "n_candidates": self.n_candidates, "derivative": derivative,
                        "broaden": broaden}
        self.thresholds = thresholds if thresholds is not None else _cached_calibrate(self)
        self._class_warnings = self._library_warnings()

    # ---------------------------------------------------------------------------------------
    def _library_warnings(self) -> list[dict[str, Any]]:
        """Hazard classes without any measured reference (opioids always checked)."""
        classes: dict[str, bool] = {}
        for e, meas, haz in zip(self.entries, self.measured, self.is_hazard, strict=False):
            cls = str(getattr(e, "substance_class", "") or "")
            if haz or any(w in cls.lower() for w in _OPIOID_WORDS):
                classes[cls] = classes.get(cls, False) or bool(meas)
        if not any(any(w in c.lower() for w in _OPIOID_WORDS) and m for c, m in classes.items()):
            classes.setdefault("fentanyl-class opioid", False)
        out = []
        for cls, has_measured in sorted(classes.items()):
            if not has_measured:
                out.append({
                    "code": "no_measured_reference_for_class", "substance_class": cls,
                    "message": (f"the library holds no measured reference for {cls}: a negative "
                                f"result does not rule out {cls}; load a laboratory-validated "
                                "library for field use"),
                })
        return out

    def _candidates(self, score: np.ndarray, allowed: np.ndarray | None, k: int,
                    ranked: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Top-k entries per scan, one per substance, optionally restricted to ``allowed``.

        Among the ``3k`` best entries (``allowed`` ones), the first of each substance.
        ``ranked``: ``top_k(score, m)`` already computed (:meth:`_ranking`); the best entries
        are then read from it wherever that is exact (see :func:`_first_ranked`).
        """
        kk = min(self.n_entries, 3 * k)
        if ranked is None:
            ids, vals = top_k(score if allowed is None else
                              np.where(allowed[None, :], score, -np.inf), kk)
        else:
            ids, vals, redo = _first_ranked(ranked, allowed, kk, self.n_entries)
            if redo.size:   # ties or too few entries ranked: those rows as without ranking
                s = score[redo] if allowed is None else \
                    np.where(allowed[None, :], score[redo], -np.inf)
                ids[redo], vals[redo] = top_k(s, kk)
        # an entry is left out when its substance came earlier in its row (a table of the
        # substances seen so far, per row) or its score is not finite
        n = ids.shape[0]
        n_subst = int(self.subst.max()) + 1
        at = np.arange(n) * n_subst
        seen = np.zeros(n * n_subst, dtype=bool)
        sub = self.subst[ids]
        keep = np.isfinite(vals)
        for j in range(kk):
            cell = at + sub[:, j]
            keep[:, j] &= ~seen[cell]
            seen[cell] = True
        # the first k kept entries of each row, in rank order (-1 after the last one)
        place = np.cumsum(keep, axis=1) - 1
        keep &= place < k
        r, c = np.nonzero(keep)
        out = np.full((n, k), -1, dtype=ids.dtype)
        out[r, place[r, c]] = ids[r, c]
        return out

    def _ranking(self, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``top_k`` of ``score`` deep enough for every candidate list of :meth:`run_processed`
        (one partial sort per chunk instead of one per list)."""
        k = max(self.top, self.n_candidates)
        return top_k(score, min(self.n_entries, 3 * k + 1))

    def _rows(self, ids: np.ndarray, sidx: np.ndarray) -> np.ndarray:
        """Shifted library rows ``(n, k, M)`` for entry ids ``(n, k)`` at shift index ``(n,)``."""
        return self.matcher.stack[sidx[:, None], np.maximum(ids, 0)]

    def _unexplained(self, X: np.ndarray, lo: int, hi: int, ids: np.ndarray,
                     sidx: np.ndarray, noise: np.ndarray | float = 0.0) -> np.ndarray:
        """Forward-search check: share of the scan's band energy where the entry has no band.

        Bands of the entry: points more than 10 % of its tallest band above its median level,
        widened by +-3 points; the scan's positive part above its median outside those bands,
        squared, minus the expected share of white noise of sigma ``noise`` (half its
        variance per point), over the same inside and outside (0 = every band is explained).
        """
        if self.n_entries <= _GRAM_MAX:
            masks, counts = self._band_masks(lo, hi)
            band, n_in = masks[sidx, ids], counts[sidx, ids]
        else:
            band = _bands(self.matcher.stack[sidx, ids][:, lo:hi])
            n_in = np.count_nonzero(band, axis=1)
        x = X[:, lo:hi]
        # row_median is np.median (by a sort); the rest in place, the same values
        pos = np.subtract(x, row_median(x[:, ::4])[:, None])
        np.maximum(pos, 0.0, out=pos)
        np.square(pos, out=pos)
        tot = np.maximum(pos.sum(axis=1, dtype=np.float64), 1e-30)
        np.copyto(pos, 0.0, where=band)
        out = pos.sum(axis=1, dtype=np.float64)
        n_out = (hi - lo) - n_in
        out = np.maximum(out - 0.5 * n_out * np.asarray(noise, dtype=np.float64) ** 2, 0.0)
        return out / tot

    def _band_masks(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Band masks ``(S, N, hi-lo)`` of every shifted entry over ``[lo, hi)`` and their
        point counts ``(S, N)`` (cached)."""
        cache = self.__dict__.setdefault("_mask_cache", {})
        if (lo, hi) not in cache:
            st = self.matcher.stack[:, :, lo:hi]
            masks = _bands(st.reshape(-1, hi - lo)).reshape(st.shape)
            cache.clear()
            cache[(lo, hi)] = masks, np.count_nonzero(masks, axis=2)
        return cache[(lo, hi)]

    def _score(self, X: np.ndarray, lo: int, hi: int) -> _Scores:
        m = self.matcher
        best = np.empty((X.shape[0], m.n_entries), dtype=np.float32)   # over every copy
        prod, den = m.raw(X, lo, hi, best=best)
        return _Scores(best, prod, den, m.slot, m.shifts.size)

    def _design(self, ids: np.ndarray, s_star: np.ndarray, sc: _Scores, X: np.ndarray,
                lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Gram matrices (n,k,k) and products (n,k) of the designs ``ids`` at shifts ``s_star``.

        Small libraries use the precomputed Gram matrix of the entries (the common shift of all
        components leaves their products unchanged up to edge effects) and the products already
        computed by the matching GEMM; large ones gather the shifted rows.
        """
        idc = np.maximum(ids, 0)
        rows = np.arange(ids.shape[0])[:, None]
        b = sc.at(rows, s_star[:, None], idc).astype(np.float64)
        if self.n_entries <= _GRAM_MAX:
            G = self.matcher.gram(lo, hi)[idc[:, :, None], idc[:, None, :]]
            return G, b
        G, _ = design_gram(self._rows(idc, s_star), X, lo, hi)
        return G, b

    def _mixture(self, X: np.ndarray, lo: int, hi: int, sc: _Scores, *, greedy: bool = False,
                 cand: np.ndarray | None = None):
        """NNLS on ``n_candidates`` distinct substances at the best entry's shift.

        Candidates: the best distinct substances by score (the hazard group test), or with
        ``greedy`` (the mixture verdict) greedy forward selection over the whole library
        (:func:`greedy_select`, one entry per substance, the best entry first): each next
        candidate is the one that lowers the residual most. By score, the second component of
        a mixture whose main one has close relatives was crowded out (70 % fentanyl + 30 %
        caffeine: the four candidates were fentanyl and three analogues, caffeine was never
        fitted). Libraries above ``_GRAM_MAX`` entries always use the candidates by score.
        ``cand`` gives the candidates by score when the caller has them already.
        """
        rows = np.arange(X.shape[0])
        if greedy and self.n_entries <= _GRAM_MAX:
            first = np.argmax(sc.score, axis=1)
            s_star = sc.sidx[rows, first]
            b = sc.at(rows, s_star).astype(np.float64)
            cand = greedy_select(self.matcher.gram(lo, hi), b, self.n_candidates, -np.inf,
                                 group=self.subst)
        else:
            if cand is None:
                cand = self._candidates(sc.score, None, self.n_candidates, sc.ranked)
            s_star = sc.sidx[rows, cand[:, 0]]
        G, b = self._design(cand, s_star, sc, X, lo, hi)
        return nnls_gram(G, b, valid=cand >= 0), cand, s_star

    def _hazard_group_drop(self, fit: Any, cand: np.ndarray) -> np.ndarray:
        """Residual increase when every hazardous candidate leaves the NNLS fit together."""
        is_h = (cand >= 0) & self.is_hazard[np.maximum(cand, 0)]
        safe_mask = np.sum(np.where(is_h, 0, 1 << np.arange(cand.shape[1])), axis=1)
        drop = fit.sub_rss[np.arange(cand.shape[0]), safe_mask] - fit.rss
        return np.where(is_h.any(axis=1), np.maximum(drop, 0.0), 0.0)

    def _safe_model(self, sc: _Scores, lo: int, hi: int,
                    min_gain: np.ndarray | float) -> np.ndarray:
        """Non-hazard entries of each scan's benign model ``(n, k)`` (-1 padded).

        Greedy forward selection over ALL non-hazard entries (:func:`greedy_select`, one per
        substance, up to ``n_candidates``): the best single entry, then while the entry that
        lowers the residual most lowers it by more than ``min_gain`` (noise / mismatch). A minor
        benign component (polystyrene of a container in the beam) then enters the benign model
        even when it is not among the top candidates by score, and a hazard whose bands it
        already explains is not credited with them. Libraries above ``_GRAM_MAX`` entries use
        the top candidates by score (no shared Gram matrix).
        """
        safe_entries = ~self.is_hazard
        k = max(1, min(self.n_candidates, int(safe_entries.sum())))
        if self.n_entries > _GRAM_MAX:
            return self._candidates(sc.score, safe_entries, k, sc.ranked)
        rows = np.arange(sc.score.shape[0])
        first = np.argmax(np.where(safe_entries[None, :], sc.score, -np.inf), axis=1)
        s_star = sc.sidx[rows, first]
        b = sc.at(rows, s_star).astype(np.float64)
        return greedy_select(self.matcher.gram(lo, hi), b, k, min_gain,
                             pool=safe_entries, group=self.subst)

    def _hazard_fit(self, X: np.ndarray, lo: int, hi: int, sc: _Scores,
                    noise_rss: np.ndarray | float = 0.0, safe: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """dRSS, fraction and explained share of each hazardous entry added to the safe fit,
        and the safe fit's residual sum of squares ``(n,)``.

        The safe model ``safe`` (n, k) non-hazard entry ids, -1 padded (default: the top 3
        non-hazard candidates by score; :meth:`_safe_model` gives the benign model selected
        over every non-hazard entry) is fitted by NNLS once; then, for all hazardous entries
        at once, the residual's component along the part of the hazard spectrum not explained
        by the active non-hazard components gives its least-squares coefficient and residual
        reduction: ``dRSS_h = max(r.h, 0)^2 / ||h_perp||^2`` (a projection, no loop over scans).
        The explained share is ``dRSS_h / (RSS_safe - noise_rss)``: the part of the structured
        residual (beyond the expected noise energy ``noise_rss``) that h explains.
        """
        n = X.shape[0]
        H = self.hazard_idx.size
        if H == 0 or not (~self.is_hazard).any():
            return np.zeros((n, H)), np.zeros((n, H)), np.zeros((n, H)), np.ones(n)
        if safe is None:
            safe = self._candidates(sc.score, ~self.is_hazard,
                                    max(1, min(3, int((~self.is_hazard).sum()))), sc.ranked)
        k = safe.shape[1]
        rows = np.arange(n)
        s_star = sc.sidx[rows, np.maximum(safe[:, 0], 0)]
        G, b = self._design(safe, s_star, sc, X, lo, hi)
        fit = nnls_gram(G, b, valid=safe >= 0, tables=False)
        c = fit.coef
        idc = np.maximum(safe, 0)
        hz = self.hazard_idx
        if self.n_entries <= _GRAM_MAX:
            Gm = self.matcher.gram(lo, hi)
            g = Gm[hz[None, :, None], idc[:, None, :]]                 # (n, H, k)
            ghh = np.broadcast_to(Gm[hz, hz][None, :], (n, H))
        else:
            a = self._rows(idc, s_star)[:, :, lo:hi].astype(np.float32)
            a -= a.mean(axis=2, keepdims=True)
            hr = self.matcher.stack[s_star[:, None], hz[None, :]][:, :, lo:hi].astype(np.float32)
            hr -= hr.mean(axis=2, keepdims=True)
            g = np.matmul(hr, a.transpose(0, 2, 1)).astype(np.float64)
            ghh = np.einsum("nhm,nhm->nh", hr, hr).astype(np.float64)
        bh = sc.at(rows[:, None], s_star[:, None], hz[None, :]).astype(np.float64)
        act = c > 0
        eye = np.eye(k, dtype=bool)
        Ga = np.where(act[:, :, None] & act[:, None, :], G, eye[None].astype(float))
        ga = np.where(act[:, None, :], g, 0.0)                          # (n, H, k)
        y = np.linalg.solve(Ga, ga.transpose(0, 2, 1))                  # (n, k, H)
        hperp = ghh - np.einsum("nhk,nkh->nh", ga, y)
        hperp = np.maximum(hperp, 1e-6 * np.maximum(ghh, 1e-12))
        rh = np.maximum(bh - np.einsum("nk,nhk->nh", c, g), 0.0)
        coef = rh / hperp
        drss = rh * coef
        rest = np.maximum(c[:, :, None] - coef[:, None, :] * y, 0.0).sum(axis=1)   # (n, H)
        frac = coef / np.maximum(coef + rest, 1e-12)
        structured = np.maximum(fit.rss - noise_rss, 1e-12)[:, None]
        share = drss / np.maximum(structured, drss)
        return drss, frac, share, fit.rss

    def _nested_test(self, X: np.ndarray, lo: int, hi: int, sc: _Scores,
                     noise_rss: np.ndarray, noise2: np.ndarray) -> np.ndarray:
        """Nested-model test ``(n, H)`` bool: does hazard h improve the best benign model?

        The benign model is selected over EVERY non-hazard entry (:meth:`_safe_model`, entry
        limit ``noise2``); h passes when its residual reduction on top of it, ``dRSS_h``, exceeds
        ``tau_nested`` (library null), the z-sigma noise test ``noise2`` and the F-test of the
        nested models, ``dRSS_h / (RSS_full / (M - k - 1)) > z^2`` (RSS_full: residual of the
        benign model plus h, M points, k benign components): a hazard the best benign mixture
        already explains (a cutting agent scanned through a polystyrene container: the
        modelled opioids' strongest bands are polystyrene's phenyl bands) does not alarm.
        """
        th = self.thresholds
        H = self.hazard_idx.size
        safe = self._safe_model(sc, lo, hi, noise2)
        drss, _, _, rss = self._hazard_fit(X, lo, hi, sc, noise_rss, safe)
        dof = max(1, hi - lo - safe.shape[1] - 1)
        resid_var = np.maximum(rss[:, None] - drss, 0.0) / dof
        tn = th.tau_nested if th.tau_nested is not None else np.zeros(H)
        limit = np.maximum(np.maximum(tn[None, :], noise2[:, None]), th.z_noise**2 * resid_var)
        return drss > limit

    # ---------------------------------------------------------------------------------------
    def run(self, batch: SpectrumBatch) -> ResultSet:
        """Identify every scan of ``batch`` (processed in chunks to bound memory)."""
        step = max(1, min(self.chunk, self.matcher.chunk_rows()))
        n = len(batch)
        if n > step and self.workers > 1:
            step = max(64, min(step, -(-n // self.workers)))
        Y = batch.intensity
        chunks = [(a, min(n, a + step)) for a in range(0, n, step)]

        def work(span: tuple[int, int]) -> ResultSet:
            a, b = span
            p = self.recipe.process_array(batch.axis, Y[a:b], keep_baseline=False)
            return self.run_processed(p, batch.meta[a:b])

        if len(chunks) > 1 and self.workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            from ramanid.blas import one_blas_thread
            # numpy/BLAS release the GIL; one BLAS thread per worker (no over-subscription)
            with one_blas_thread(), ThreadPoolExecutor(self.workers) as pool:
                parts = list(pool.map(work, chunks))
        else:
            parts = [work(c) for c in chunks]
        if len(parts) == 1:
            parts[0]._source = (batch.axis, Y)
            return parts[0]
        cat = {f: np.concatenate([getattr(p, f) for p in parts]) for f in (
            "verdict", "reason", "top_ids", "top_scores", "comp_ids", "comp_fracs", "mix_r",
            "hazard_level", "hazard_hits", "hazard_fracs", "shift", "r_corr", "unexplained")}
        qc = {k: np.concatenate([p.qc[k] for p in parts]) for k in parts[0].qc}
        rs = ResultSet(**cat, qc=qc, meta=[m for p in parts for m in p.meta], identifier=self)
        rs._source = (batch.axis, Y)
        return rs

    def run_processed(self, p: Processed, meta: list[dict[str, Any]] | None = None) -> ResultSet:
        """Decide on already processed scans (same recipe as the library)."""
        th = self.thresholds
        n = len(p)
        X, lo, hi = p.X, p.lo, p.hi
        rows = np.arange(n)
        qc = p.qc
        reason = np.zeros(n, dtype=np.int8)
        reason[qc["snr"] < th.min_snr] = 3
        reason[qc["fluorescence"] > th.max_fluorescence] = 4   # the cause of a weak signal
        reason[qc["saturation"] > th.max_saturation] = 2
        reason[qc["snr"] == 0] = 5                             # constant row: no signal at all
        if "nonfinite" in qc:
            reason[qc["nonfinite"] > 0] = 6
        reason[qc["coverage"] < th.min_coverage] = 1
        if n == 0 or hi - lo < max(8, int(np.ceil(th.min_coverage * self.n_points))):
            # the batch's axis does not cover enough of the library axis: nothing to compare
            return self._all_inconclusive(p, meta, np.maximum(reason, 1).astype(np.int8))
        sc = self._score(X, lo, hi)
        score = sc.score
        sc.ranked = self._ranking(score)
        rank = score if self.ranker is self.matcher else self.ranker.scores(X, lo, hi)[0]
        top_ids = self._candidates(rank, None, min(self.top, int(self.subst.max()) + 1),
                                   sc.ranked if rank is score else None)
        top_sc = np.where(top_ids >= 0, rank[rows[:, None], np.maximum(top_ids, 0)], np.nan)
        mfit, mcand, _ = self._mixture(X, lo, hi, sc, greedy=True)   # mixture verdict
        noise2 = (th.z_noise * np.nan_to_num(p.noise, posinf=1.0)) ** 2
        # components enter one at a time (forward selection), each only if it reduces the
        # residual significantly when it enters: a near duplicate of a component already in the
        # model (fentanyl / acetylfentanyl) cannot mask it (see ramanid.mixture)
        sel = forward_select(mfit, np.maximum(th.tau_mix, noise2), accept=mcand >= 0)
        fr = sel.fractions()
        sig = (sel.gain > 0) & (fr >= th.min_fraction) & (mcand >= 0)
        n_sig = sig.sum(axis=1)
        mix_r = np.sqrt(np.clip(1.0 - sel.rss, 0.0, 1.0))
        best = top_ids[:, 0]
        verdict = np.full(n, _NO_MATCH, dtype=np.int8)
        # correction for attenuation: white noise of energy E (in units of the unit-norm scan)
        # caps the r of a perfect match at sqrt(1 - E); thresholds are noise-free figures
        energy = np.clip((hi - lo) * np.nan_to_num(p.noise, posinf=1.0) ** 2, 0.0,
                         th.max_noise_energy)
        unexplained = self._unexplained(X, lo, hi, best, sc.sidx[rows, best],
                                        np.nan_to_num(p.noise, posinf=0.0))
        r_corr = score[rows, best] / np.sqrt(1.0 - energy)
        t_entry = self.entry_thresholds(lo, hi)      # t_j over the covered range
        is_match = (r_corr >= t_entry[best]) & (unexplained <= self.unexplained_limit(best))
        verdict[is_match] = _MATCH
        # a mixture must fit as well as each of its components must match on its own
        t_mix = np.max(np.where(sig, t_entry[np.maximum(mcand, 0)], th.r_floor), axis=1)
        is_mix = (n_sig >= 2) & (mix_r / np.sqrt(1.0 - energy) >= t_mix)
        verdict[is_mix & ~is_match] = _MIXTURE   # mixtures only when no single entry explains
        verdict[reason > 0] = _INCONCLUSIVE
        # components: significant ones for mixtures, the best entry for matches
        comp = np.where(sig, mcand, -1)
        cf = np.where(sig, fr, 0.0)
        cf = cf / np.maximum(cf.sum(axis=1, keepdims=True), 1e-12)
        order = np.argsort(-cf, axis=1, kind="stable")
        comp = take_rows(comp, order)
        cf = take_rows(cf, order)
        comp[verdict != _MIXTURE] = -1
        cf[verdict != _MIXTURE] = 0.0
        comp[verdict == _MATCH, 0] = best[verdict == _MATCH]
        cf[verdict == _MATCH, 0] = 1.0
        # hazard layer
        H = self.hazard_idx.size
        hits = np.zeros((n, H), dtype=bool)
        hfrac = np.zeros((n, H))
        if H:
            noise_rss = (hi - lo) * np.nan_to_num(p.noise, posinf=0.0) ** 2
            drss_h, hfrac, share, _ = self._hazard_fit(X, lo, hi, sc, noise_rss)
            targeted = (drss_h > np.maximum(th.tau_hazard[None, :], noise2[:, None])) \
                & (hfrac >= th.min_hazard_fraction) & (share >= th.min_explained)
            # also: the scan matches the hazardous entry on its own (its acceptance rule)
            hz = self.hazard_idx
            hits = score[:, hz] / np.sqrt(1.0 - energy)[:, None] >= t_entry[hz][None, :]
            # also: the hazardous candidates of the scan's own NNLS fit, whatever the verdict, when
            # removing all of them together raises the residual significantly (a group test: a
            # 50-70 % opioid from another instrument may fit too poorly for a `mixture` verdict
            # and escape the targeted detector above; analogues cannot stand in for each other
            # because they leave together); their fraction is then the fit's. The fit (best
            # distinct substances by score) is computed only for the scans that have a hazardous
            # candidate among them, and the nested test (which both rules need) only for the
            # scans one of them flags: row by row the results are those of the whole batch.
            cand = self._candidates(score, None, self.n_candidates, sc.ranked)
            is_h = (cand >= 0) & self.is_hazard[np.maximum(cand, 0)]
            flagged = np.full(cand.shape, -1)
            ffr = np.zeros(cand.shape)
            g_rows = np.flatnonzero(is_h.any(axis=1))
            if g_rows.size:
                gcand = cand[g_rows]
                fit, _, _ = self._mixture(X[g_rows], lo, hi, sc.take(g_rows), cand=gcand)
                drop = self._hazard_group_drop(fit, gcand)
                group = drop > np.maximum(th.tau_group, noise2[g_rows])
                ffr[g_rows] = fit.fractions()
                flagged[g_rows] = np.where(is_h[g_rows] & group[:, None]
                                           & (ffr[g_rows] >= th.min_fraction), gcand, -1)
            in_fit = flagged[:, :, None] == hz[None, None, :]                     # (n, c, H)
            nested = np.zeros((n, H), dtype=bool)
            t_rows = np.flatnonzero(targeted.any(axis=1) | in_fit.any(axis=(1, 2)))
            if t_rows.size:
                nested[t_rows] = self._nested_test(X[t_rows], lo, hi, sc.take(t_rows),
                                                   noise_rss[t_rows], noise2[t_rows])
            hits |= targeted & nested
            in_fit &= nested[:, None, :]
            hits |= in_fit.any(axis=1)
            _fraction_of(hfrac, in_fit, ffr)
            # and a component of the reported result (mixture or match): the result's fraction
            is_comp = comp[:, :, None] == hz[None, None, :]
            hits |= is_comp.any(axis=1)
            _fraction_of(hfrac, is_comp, cf)
            hits[reason > 0] = False
        lvl = np.zeros(n, dtype=np.int8)
        if H:
            lvl = np.max(np.where(hits, self.level[self.hazard_idx][None, :], 0), axis=1)
            lvl = lvl.astype(np.int8)
        shift = self._refine_shift(sc, best)
        shift[verdict == _INCONCLUSIVE] = 0.0
        return ResultSet(verdict, reason, top_ids.astype(np.int32), top_sc.astype(np.float32),
                         comp.astype(np.int32), cf.astype(np.float32),
                         mix_r.astype(np.float32), lvl, hits, hfrac.astype(np.float32), shift,
                         dict(qc), list(meta or []), self, r_corr.astype(np.float32),
                         unexplained.astype(np.float32), span=(lo, hi))

    def _all_inconclusive(self, p: Processed, meta: list[dict[str, Any]] | None,
                          reason: np.ndarray) -> ResultSet:
        """Results for scans that cannot be compared at all (no matching is attempted)."""
        n = len(p)
        k = min(self.top, int(self.subst.max()) + 1)
        c = self.n_candidates
        H = self.hazard_idx.size
        return ResultSet(np.full(n, _INCONCLUSIVE, dtype=np.int8), reason,
                         np.full((n, k), -1, dtype=np.int32),
                         np.full((n, k), np.nan, dtype=np.float32),
                         np.full((n, c), -1, dtype=np.int32), np.zeros((n, c), dtype=np.float32),
                         np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.int8),
                         np.zeros((n, H), dtype=bool), np.zeros((n, H), dtype=np.float32),
                         np.zeros(n, dtype=np.float32), dict(p.qc), list(meta or []), self,
                         np.full(n, np.nan, dtype=np.float32), np.full(n, np.nan, dtype=np.float32))

    def _refine_shift(self, sc: _Scores, best: np.ndarray) -> np.ndarray:
        """Shift (cm-1) of the best entry per scan, refined by a parabola through 3 scores."""
        shifts = self.matcher.shifts
        n = best.shape[0]
        rows = np.arange(n)
        si = sc.sidx[rows, best].astype(np.int64)
        if shifts.size < 3:
            return shifts[si].astype(np.float32)
        sc3 = np.clip(si, 1, shifts.size - 2)
        s = sc.r_at(rows[:, None], sc3[:, None] + np.arange(-1, 2)[None, :],
                    best[:, None]).astype(np.float64)                     # (n, 3)
        den = s[:, 0] - 2 * s[:, 1] + s[:, 2]
        off = np.where(den < 0, 0.5 * (s[:, 0] - s[:, 2]) / np.where(den < 0, den, -1.0), 0.0)
        off = np.clip(off, -1.0, 1.0)
        return (shifts[sc3] + off * (shifts[1] - shifts[0])).astype(np.float32)

    # ---------------------------------------------------------------------------------------
    def entry_thresholds(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Acceptance thresholds ``t_j`` (N,) for scans covering ``[lo, hi)`` of the axis.

        The whole axis gives the calibrated ``thresholds.t_entry``; a partial range gives the
        same rule on the library's cross-scores over that range (:func:`_entry_thresholds`,
        cached per range): a range that drops an entry's discriminating bands raises its
        threshold, one that drops bands it shares with its nearest relative lowers it.
        """
        th = self.thresholds
        hi = self.n_points if hi is None else hi
        if (lo <= 0 and hi >= self.n_points) or \
                hi - lo < max(8, int(np.ceil(th.min_coverage * self.n_points))):
            return th.t_entry   # whole axis, or too little of it for any verdict
        cache = self.__dict__.setdefault("_t_range_cache", {})
        t = cache.get((lo, hi))
        if t is None:   # worker threads may both compute it: same figures, no lock needed
            t = _entry_thresholds(self, lo, hi, th.margin, th.t_cap)[0]
            if len(cache) >= 8:
                cache.clear()
            cache[(lo, hi)] = t
        return t

    def _result_thresholds(self, rs: ResultSet) -> np.ndarray:
        """The ``t_j`` that decided the results ``rs`` (their covered range)."""
        span = rs.span
        if span is None and rs._source is not None:
            from ramanid.preprocess import resampler
            ax = self.recipe.params["axis"]
            r = resampler(np.asarray(rs._source[0], dtype=np.float64), ax["start"], ax["stop"],
                          ax["step"])
            span = (r.lo, r.hi)
        return self.thresholds.t_entry if span is None else self.entry_thresholds(*span)

    def unexplained_limit(self, ids: np.ndarray) -> np.ndarray:
        """Limit of the unexplained share for entries ``ids``: ``max(max_unexplained, u_self)``
        (a scan identical to the reference has the reference's own share ``u_self``)."""
        th = self.thresholds
        ids = np.asarray(ids)
        if th.u_self is None:
            return np.full(ids.shape, th.max_unexplained)
        return np.maximum(th.max_unexplained, th.u_self[np.maximum(ids, 0)])

    def _entry_brief(self, i: int) -> dict[str, Any]:
        e = self.entries[i]
        return {"id": str(e.id), "name": e.name,
                "substance_class": getattr(e, "substance_class", None),
                "hazard_level": getattr(e, "hazard_level", "none"),
                "handling": getattr(e, "handling", "") or
                _HANDLING_DEFAULT.get(getattr(e, "hazard_level", "none"), ""),
                "provenance_kind": getattr(e, "provenance_kind", "measured")}

    def reason_texts(self, rs: ResultSet, rows: np.ndarray | None = None) -> np.ndarray:
        """The ``reason`` of every record (object array of str), stating the rule that decided.

        Parameters
        ----------
        rs
            Results of :meth:`run`.
        rows
            Row indices to word (default: all).

        Notes
        -----
        Built column-wise (one text per kind of reason and distinct shown figure, see
        :mod:`ramanid.textfmt`): ``ramanid batch`` words millions of rows with it.
        """
        from ramanid.textfmt import fixed

        th = self.thresholds
        idx = np.arange(len(rs)) if rows is None else np.asarray(rows, dtype=np.intp).ravel()
        n = idx.size
        out = np.empty(n, dtype=object)
        if n == 0:
            return out
        v = rs.verdict[idx].astype(np.intp)
        best = rs.top_ids[idx, 0].astype(np.intp)
        bidx = np.maximum(best, 0)
        names = np.array([e.name for e in self.entries] + [""], dtype=object)
        name = names[np.where(best >= 0, best, len(self.entries))]
        t_entry = np.asarray(self._result_thresholds(rs), dtype=np.float64)
        t = np.where(best >= 0, t_entry[bidx], np.nan)
        r = rs.top_scores[idx, 0]
        rc = (rs.r_corr if rs.r_corr is not None else rs.top_scores[:, 0])[idx]
        # the noise-corrected score is quoted when the plain one is below the threshold it is
        # said to reach (the correction decided)
        corrected = ~(r.astype(np.float64) >= t) & ~(rc.astype(np.float64) < t)
        below = rc.astype(np.float64) < t

        def words(mask: np.ndarray, make: Any) -> None:
            if mask.any():
                sel = np.flatnonzero(mask)
                out[sel] = make(sel)

        def shown(sel: np.ndarray) -> list[str]:
            plain, noisy = fixed(r[sel], 3).tolist(), fixed(rc[sel], 3).tolist()
            return [f"r={a} ({b} corrected for the scan's noise)" if c else f"r={a}"
                    for a, b, c in zip(plain, noisy, corrected[sel].tolist(), strict=True)]

        def lead(sel: np.ndarray) -> tuple[list[str], list[str], list[str]]:
            return name[sel].tolist(), shown(sel), fixed(t[sel], 3).tolist()

        def qc_failed(sel: np.ndarray) -> list[str]:
            code = rs.reason[idx[sel]].astype(np.intp)
            cov = fixed(np.asarray(rs.qc["coverage"], dtype=np.float64)[idx[sel]], 0, 100.0)
            ax = self.recipe.params["axis"]
            return [f"quality check failed: the scan does not cover the library axis "
                    f"({ax['start']:g}-{ax['stop']:g} cm-1): {c}% covered, "
                    f"{100 * th.min_coverage:.0f}% needed" if k == 1 else
                    f"quality check failed: {REASONS[k]}"
                    for k, c in zip(code.tolist(), cov.tolist(), strict=True)]

        def matched(sel: np.ndarray) -> list[str]:
            return [f"best match {a} {b} >= its threshold {c}"
                    for a, b, c in zip(*lead(sel), strict=True)]

        def mixed(sel: np.ndarray) -> list[str]:
            n_comp = (rs.comp_ids[idx[sel]] >= 0).sum(axis=1).tolist()
            return [f"mixture of {a} significant components explains the scan (r={b})"
                    for a, b in zip(n_comp, fixed(rs.mix_r[idx[sel]], 3).tolist(), strict=True)]

        def too_low(sel: np.ndarray) -> list[str]:
            return [f"no library entry explains the scan: best {a} {b} < its threshold {c}"
                    for a, b, c in zip(*lead(sel), strict=True)]

        def unexplained(sel: np.ndarray) -> list[str]:
            share = np.zeros(len(rs)) if rs.unexplained is None else rs.unexplained
            pct = fixed(share[idx[sel]], 0, 100.0).tolist()
            limit = fixed(self.unexplained_limit(best[sel]), 0, 100.0).tolist()
            return [f"no library entry explains the scan: best {a} {b} reaches its threshold "
                    f"{c}, but {d}% of the scan's band energy lies where {a} has no band "
                    f"(limit {e}%)" for a, b, c, d, e in zip(*lead(sel), pct, limit,
                                                                strict=True)]

        words(v == _INCONCLUSIVE, qc_failed)
        words(v == _MATCH, matched)
        words(v == _MIXTURE, mixed)
        words((v == _NO_MATCH) & below, too_low)
        words((v == _NO_MATCH) & ~below, unexplained)
        if rs.hazard_hits.shape[1]:   # the hazard detector's hits, on the few alarm rows
            hz_names = [self.entries[int(h)].name for h in self.hazard_idx]
            alarm = np.flatnonzero((v != _INCONCLUSIVE) & rs.hazard_hits[idx].any(axis=1))
            for o in alarm.tolist():
                i = int(idx[o])
                out[o] += "; hazard detector: " + ", ".join(
                    f"{hz_names[j]} ~{100 * round(float(rs.hazard_fracs[i, j]), 3):.0f}%"
                    for j in np.flatnonzero(rs.hazard_hits[i]))
        return out

    @staticmethod
    def calibration_of(meta: dict[str, Any], cache: dict[Any, Any] | None = None
                       ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Calibration status of one scan and its warning (None when the state is ok).

        ``ramanid.calibration.scan_calibration(meta)``: the record applied to the scan
        (``meta["calibration_id"]``), aged at the scan's timestamp. ``cache`` (a dict the
        caller keeps for one batch of records) saves repeated look-ups of the same scan key.
        """
        from ramanid.calibration import scan_calibration

        dev = (meta.get("device_serial"), meta.get("calibration_id"))
        key = (*dev, meta.get("timestamp"))
        cache = {} if cache is None else cache
        hit = cache.get(dev) or cache.get(key)
        if hit is None:
            try:
                st = dict(scan_calibration(dict(meta)))
            except Exception as exc:  # a broken calibration store must not stop a verdict
                st = {"id": meta.get("calibration_id"), "serial": meta.get("device_serial"),
                      "state": "missing", "applied": bool(meta.get("calibration_id")),
                      "warning": f"calibration status unavailable: {exc}"}
            warn = None
            if st.get("state") != "ok":
                warn = {"code": "calibration", "state": st.get("state"),
                        "message": st.get("warning") or f"calibration {st.get('state')}",
                        "id": st.get("id"), "age_days": st.get("age_days")}
            hit = cache[key] = (st, warn)
            if st.get("id") is None:   # no record at all: the same for every scan time
                cache[dev] = hit
        return dict(hit[0]), (None if hit[1] is None else dict(hit[1]))

    def record_warnings(self, rs: ResultSet, rows: np.ndarray | None = None, *,
                        cache: dict[Any, Any] | None = None) -> list[list[dict[str, Any]]]:
        """The ``warnings`` of every record (codes in ``docs/readme/engine.md``)."""
        cache = {} if cache is None else cache
        idx = np.arange(len(rs)) if rows is None else np.asarray(rows, dtype=np.intp)
        out = []
        for i in idx.tolist():
            meta = rs.meta[i] if i < len(rs.meta) else {}
            v = int(rs.verdict[i])
            used = set()
            best = int(rs.top_ids[i, 0])
            if v == _MATCH and best >= 0:
                used.add(best)
            used |= {int(j) for j in rs.comp_ids[i] if j >= 0}
            used |= {int(h) for j, h in enumerate(self.hazard_idx) if rs.hazard_hits[i, j]}
            warnings: list[dict[str, Any]] = []
            unmeasured = sorted(j for j in used if not self.measured[j])
            if unmeasured:
                kinds = sorted({str(getattr(self.entries[j], "provenance_kind", ""))
                                for j in unmeasured})
                warnings.append({
                    "code": "non_measured_reference", "kind": kinds[0],
                    "entries": [self.entries[j].name for j in unmeasured],
                    "message": ("this result rests on a reference that is not a measured "
                                "spectrum ("
                                + ", ".join(f"{self.entries[j].name}: "
                                            f"{getattr(self.entries[j], 'provenance_kind', '')}"
                                            for j in unmeasured)
                                + "); confirm in a laboratory"),
                })
            warnings.extend(dict(w) for w in self._class_warnings)
            _, cal_warn = self.calibration_of(meta, cache)
            if cal_warn is not None:
                warnings.append(cal_warn)
            out.append(warnings)
        return out

    def hazard_findings(self, rs: ResultSet, i: int) -> tuple[list[dict[str, Any]], str]:
        """The hazardous entries that alarmed on row ``i`` (each entry's brief and fitted
        fraction, 3 decimals) and the handling text of the first one of the highest level ("" when
        none alarmed): the ``hazard`` substances and message of the row's record."""
        hz = [self._entry_brief(int(h)) | {"fraction": round(float(rs.hazard_fracs[i, j]), 3)}
              for j, h in enumerate(self.hazard_idx) if rs.hazard_hits[i, j]]
        if not hz:
            return hz, ""
        worst = max(hz, key=lambda d: HAZARD_LEVELS.index(d["hazard_level"]))
        return hz, worst["handling"]

    def _record(self, rs: ResultSet, i: int, *, reason: str | None = None,
                warnings: list[dict[str, Any]] | None = None,
                scan_id: str | None = None, cache: dict[Any, Any] | None = None
                ) -> dict[str, Any]:
        v = int(rs.verdict[i])
        meta = rs.meta[i] if i < len(rs.meta) else {}
        names = [self.entries[int(j)].name if j >= 0 else "" for j in rs.top_ids[i]]
        cands = [{"id": str(self.entries[int(j)].id), "name": nm, "score": round(float(s), 4)}
                 for j, nm, s in zip(rs.top_ids[i], names, rs.top_scores[i], strict=False)
                 if j >= 0]
        comps = [{"id": str(self.entries[int(j)].id), "name": self.entries[int(j)].name,
                  "fraction": round(float(f), 3)}
                 for j, f in zip(rs.comp_ids[i], rs.comp_fracs[i], strict=False) if j >= 0]
        hz, message = self.hazard_findings(rs, i)
        level = HAZARD_LEVELS[int(rs.hazard_level[i])]
        best = int(rs.top_ids[i, 0])
        if reason is None:
            reason = str(self.reason_texts(rs, [i])[0])
        cache = {} if cache is None else cache
        if warnings is None:
            warnings = self.record_warnings(rs, [i], cache=cache)[0]
        if scan_id is None:
            scan_id = meta.get("scan_id")
            if not scan_id and rs._source is not None:
                from ramanid.io.archive import scan_ids
                axis, Y = rs._source
                scan_id = str(scan_ids(SpectrumBatch(axis, Y[i:i + 1], [meta]))[0])
        cal, _ = self.calibration_of(meta, cache)
        lib = self.library
        return {
            "source": meta.get("source"),
            "scan_id": None if scan_id is None else str(scan_id),
            "verdict": VERDICTS[v],
            "reason": reason,
            "hazard": {"level": level, "substances": hz, "message": message},
            "candidates": cands,
            "components": comps,
            "residual_r": round(float(rs.mix_r[i]), 4),
            "shift_cm1": round(float(rs.shift[i]), 2),
            "qc": {k: (int(a[i]) if a.dtype.kind in "iub" else round(float(a[i]), 4))
                   for k, a in rs.qc.items()},
            "best_provenance": (getattr(self.entries[best], "provenance_kind", "measured")
                                if best >= 0 else None),
            "warnings": warnings,
            "library": {"version": getattr(lib, "version", None),
                        "sha256": getattr(lib, "sha256", None)},
            "recipe": self.recipe.to_dict(),
            "engine_version": ENGINE_VERSION,
            "device_serial": meta.get("device_serial"),
            "laser_nm": meta.get("laser_nm"),
            "integration_ms": meta.get("integration_ms"),
            "timestamp": meta.get("timestamp"),
            "calibration": _jsonable(cal),
            "scan": {k: _jsonable(v2) for k, v2 in meta.items()},
        }


_CACHE: dict[int, Identifier] = {}


def identify(batch: SpectrumBatch, library: Any, *, top: int = 5) -> list[dict[str, Any]]:
    """Identify every scan of ``batch`` against ``library``; one result record per scan.

    The :class:`Identifier` of a library object is cached, so repeated calls are cheap.
    """
    ident = _CACHE.get(id(library))
    if ident is None or ident.library is not library or ident.top != top:
        ident = Identifier(library, top=top)
        _CACHE.clear()
        _CACHE[id(library)] = ident
    return ident.run(batch).records()
