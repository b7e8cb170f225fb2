"""Pixel -> wavelength calibration from an emission-lamp spectrum (neon, argon, mercury).

Procedure
---------
1. Find the lamp's emission peaks with sub-pixel centres (:mod:`.peaks`); peaks that touch a
   saturated detector point are not used (their centre is biased).
2. Start from the instrument's own wavelength scale (factory polynomial, or nominal axis) and find
   the offset and stretch that line up the most peaks with reference air wavelengths (NIST ASD,
   :mod:`.reference`); lines closer than the instrument resolution are resolved or dropped.
3. Match each peak to its nearest line, fit ``wavelength = poly(x)`` by least squares, reject
   outliers (|residual| > 3 robust sigma), re-match with the new fit, repeat until stable.
4. Choose the polynomial order (1 to ``max_order``) by leave-one-out cross-validation, keeping at
   least two lines per coefficient; report residuals in nm and in cm-1 at the excitation.
5. Refuse (``CalibrationError``) when too few lines match, when the spectrum does not look like
   the named lamp, when the fit is not monotonic over the detector, or when residuals are too large.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ramanid.calibration.peaks import find_peaks
from ramanid.calibration.rawfile import RawMeasurement
from ramanid.calibration.reference import lamp_lines

from ramanid.errors import CalibrationError

P = np.polynomial.polynomial


@dataclass
class WavelengthFit:
    """A fitted x -> air wavelength (nm) mapping with its line table.

    ``x`` is the detector pixel (``x_kind == "pixel"``) or the instrument's nominal wavelength
    (``"nominal_nm"``, for exports that carry no pixel column). The polynomial is stored in the
    scaled variable ``t = (x - centre) / half_width`` (well conditioned); :meth:`pixel_coeffs`
    gives the plain power-series coefficients in ``x`` (the Ocean/Wasatch convention).
    """

    x_kind: str
    centre: float
    half_width: float
    coeffs_t: list[float]
    lamp: str
    laser_nm: float | None
    lines: dict[str, list[float]] = field(default_factory=dict)  # x, ref_nm, fit_nm, resid_nm...
    n_peaks: int = 0
    n_rejected: int = 0
    domain: tuple[float, float] = (0.0, 0.0)
    knots_x: list[float] | None = None
    knots_nm: list[float] | None = None
    loo_rms_cm1: dict[str, float] | None = None

    @property
    def model(self) -> str:
        """``poly`` or ``poly+interp`` (polynomial plus interpolated line residuals)."""
        return "poly+interp" if self.knots_x else "poly"

    @property
    def order(self) -> int:
        """Polynomial order."""
        return len(self.coeffs_t) - 1

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        """Air wavelength in nm at detector coordinate(s) ``x``."""
        x = np.asarray(x, dtype=np.float64)
        out = P.polyval((x - self.centre) / self.half_width, self.coeffs_t)
        if self.knots_x:
            out = out + np.interp(x, self.knots_x, self.knots_nm)
        return out

    def pixel_coeffs(self) -> list[float]:
        """Power-series coefficients of wavelength in ``x`` itself, lowest order first.

        Exact for the ``poly`` model; for ``poly+interp`` it is the polynomial part only.
        """
        # Compose poly(t) with t = (x - c) / h.
        lin = np.array([-self.centre / self.half_width, 1.0 / self.half_width])
        out = np.zeros(1)
        power = np.ones(1)
        for c in self.coeffs_t:
            out = P.polyadd(out, c * power)
            power = P.polymul(power, lin)
        return [float(v) for v in out]

    @property
    def rms_nm(self) -> float:
        """RMS residual of the lines used, nm."""
        r = np.asarray(self.lines.get("resid_nm", []))
        return float(np.sqrt(np.mean(r ** 2))) if r.size else float("nan")

    @property
    def rms_cm1(self) -> float:
        """RMS residual of the lines used, in cm-1 (wavenumber of the line itself)."""
        r = np.asarray(self.lines.get("resid_cm1", []))
        return float(np.sqrt(np.mean(r ** 2))) if r.size else float("nan")

    @property
    def max_cm1(self) -> float:
        """Largest absolute residual in cm-1."""
        r = np.asarray(self.lines.get("resid_cm1", []))
        return float(np.max(np.abs(r))) if r.size else float("nan")

    def to_dict(self) -> dict:
        """JSON-ready dictionary (see :meth:`from_dict`)."""
        return {"x_kind": self.x_kind, "centre": self.centre, "half_width": self.half_width,
                "coeffs_t": list(self.coeffs_t), "order": self.order, "lamp": self.lamp,
                "laser_nm": self.laser_nm, "domain": list(self.domain),
                "pixel_coeffs": self.pixel_coeffs() if self.x_kind == "pixel" else None,
                "n_lines": len(self.lines.get("x", [])), "n_peaks": self.n_peaks,
                "line_span_x": [min(self.lines["x"]), max(self.lines["x"])]
                if self.lines.get("x") else None,
                "n_rejected": self.n_rejected, "rms_nm": self.rms_nm, "rms_cm1": self.rms_cm1,
                "max_cm1": self.max_cm1, "model": self.model, "knots_x": self.knots_x,
                "knots_nm": self.knots_nm, "loo_rms_cm1": self.loo_rms_cm1, "lines": self.lines}

    @classmethod
    def from_dict(cls, d: dict) -> WavelengthFit:
        """Rebuild from :meth:`to_dict` output."""
        return cls(d["x_kind"], float(d["centre"]), float(d["half_width"]),
                   [float(c) for c in d["coeffs_t"]], d.get("lamp", "neon"), d.get("laser_nm"),
                   d.get("lines", {}), int(d.get("n_peaks", 0)), int(d.get("n_rejected", 0)),
                   tuple(d.get("domain", (0.0, 0.0))), d.get("knots_x"), d.get("knots_nm"),
                   d.get("loo_rms_cm1"))


@dataclass
class _PeakSet:
    x: np.ndarray
    guess_nm: np.ndarray
    height: np.ndarray
    snr: np.ndarray
    fwhm_nm: np.ndarray


def _collect_peaks(measurements: Sequence[RawMeasurement], min_snr: float) -> tuple[_PeakSet,
                                                                                     np.ndarray]:
    xs, gs, hs, ss, ws = [], [], [], [], []
    kind = measurements[0].x_kind
    for m in measurements:
        if m.x_kind != kind:
            raise CalibrationError("lamp spectra mix pixel and nominal-wavelength coordinates",
                                   source=m.source)
        guess = m.nominal_wavelength()
        pk = find_peaks(m.x, m.counts, min_snr=min_snr)
        if m.saturated is not None and len(pk):
            lo = np.clip(pk.index - 2, 0, m.x.size - 1)
            hi = np.clip(pk.index + 3, 0, m.x.size)
            sat = np.array([m.saturated[a:b].any() for a, b in zip(lo, hi, strict=True)])
            pk = pk.select(~sat)
        g = np.interp(pk.position, m.x, guess)
        dg = np.gradient(guess, m.x)
        xs.append(pk.position)
        gs.append(g)
        hs.append(pk.height / max(np.max(pk.height), 1e-12) if len(pk) else pk.height)
        ss.append(pk.snr)
        ws.append(pk.fwhm * np.interp(pk.position, m.x, dg))
    x = np.concatenate(xs)
    order = np.argsort(x)
    ps = _PeakSet(x[order], np.concatenate(gs)[order], np.concatenate(hs)[order],
                  np.concatenate(ss)[order], np.concatenate(ws)[order])
    # The same line seen in several exposures: keep the highest-SNR detection.
    keep = np.ones(ps.x.size, dtype=bool)
    for i in range(1, ps.x.size):
        j = i - 1
        while j >= 0 and not keep[j]:
            j -= 1
        if j >= 0 and abs(ps.guess_nm[i] - ps.guess_nm[j]) < 0.5 * max(ps.fwhm_nm[i], 1e-3):
            if ps.snr[i] > ps.snr[j]:
                keep[j] = False
            else:
                keep[i] = False
    ps = _PeakSet(ps.x[keep], ps.guess_nm[keep], ps.height[keep], ps.snr[keep], ps.fwhm_nm[keep])
    domain = np.array([min(m.x.min() for m in measurements), max(m.x.max() for m in measurements)])
    return ps, domain


def _coarse_align(guess: np.ndarray, ref: np.ndarray, tol: float, max_shift: float
                  ) -> tuple[float, float, float]:
    """Offset and stretch (about the mean) that put the most peaks within ``tol`` of a line."""
    centre = float(np.mean(guess))
    offsets = np.arange(-max_shift, max_shift + tol / 4, tol / 4)
    stretches = np.linspace(-3e-3, 3e-3, 25)
    best = (-1.0, 0.0, 0.0)
    rel = guess - centre
    for s in stretches:
        moved = guess[None, :] + offsets[:, None] + s * rel[None, :]
        idx = np.clip(np.searchsorted(ref, moved), 1, ref.size - 1)
        d = np.minimum(np.abs(moved - ref[idx - 1]), np.abs(moved - ref[idx]))
        score = (d < tol).sum(axis=1) + 0.1 * (1 - np.minimum(d / tol, 1)).sum(axis=1)
        k = int(np.argmax(score - 1e-3 * np.abs(offsets)))
        if score[k] > best[0]:
            best = (float(score[k]), float(offsets[k]), float(s))
    return best[1], best[2], centre


def _match(pred: np.ndarray, ref: np.ndarray, tol: float) -> np.ndarray:
    """Index of the reference line matched to each peak (-1 if none), one-to-one."""
    idx = np.clip(np.searchsorted(ref, pred), 1, ref.size - 1)
    left, right = ref[idx - 1], ref[idx]
    near = np.where(np.abs(pred - left) <= np.abs(pred - right), idx - 1, idx)
    dist = np.abs(pred - ref[near])
    out = np.where(dist <= tol, near, -1)
    # one peak per line: keep the closest
    for line in np.unique(out[out >= 0]):
        hits = np.flatnonzero(out == line)
        if hits.size > 1:
            best = hits[np.argmin(dist[hits])]
            out[hits[hits != best]] = -1
    return out


def _loo_rms(t: np.ndarray, y: np.ndarray, order: int) -> float:
    n = t.size
    errs = np.empty(n)
    for i in range(n):
        m = np.arange(n) != i
        c = P.polyfit(t[m], y[m], order)
        errs[i] = y[i] - P.polyval(t[i], c)
    return float(np.sqrt(np.mean(errs ** 2)))


def _loo_interp(x: np.ndarray, r: np.ndarray) -> float:
    """Leave-one-out RMS of predicting each inner line's residual from its neighbours."""
    errs = [r[i] - np.interp(x[i], np.delete(x, i), np.delete(r, i)) for i in range(1, x.size - 1)]
    return float(np.sqrt(np.mean(np.square(errs)))) if errs else float("inf")


def fit_wavelength(measurements: RawMeasurement | Sequence[RawMeasurement], *,
                   lamp: str = "neon", laser_nm: float | None = None, max_order: int = 3,
                   min_lines: int = 6, min_snr: float = 8.0, max_shift_nm: float = 3.0,
                   max_rms_cm1: float = 1.0) -> WavelengthFit:
    """Fit detector coordinate -> air wavelength from one or more lamp exposures.

    Parameters
    ----------
    measurements
        Raw lamp spectra of one instrument (same detector coordinate). Several exposures can be
        combined: strong lines from a short one, weak lines from a long one.
    lamp
        ``neon`` (default), ``argon``, ``mercury`` or ``hgar``.
    laser_nm
        Excitation wavelength, used only to report residuals in cm-1 of Raman shift (defaults to
        the instrument's nominal laser).
    max_order
        Highest polynomial order tried (order chosen by leave-one-out cross-validation).
        When interpolating the line residuals between neighbouring lines predicts held-out lines
        better than the polynomial alone (by 20 % or more, in leave-one-out cross-validation),
        the residuals are kept as knots (model ``poly+interp``): this is what stitched
        multi-window exports (Horiba extended range) need, whose windows each carry their own
        small dispersion error.
    min_lines
        Fewest matched lines accepted (never fewer than two per coefficient).
    min_snr
        Peak detection threshold over the noise.
    max_shift_nm
        Largest offset from the instrument's own scale that is searched.
    max_rms_cm1
        Refuse the fit when the leave-one-out RMS line residual of the chosen model (the error
        expected between lines, cm-1) exceeds this.

    Returns
    -------
    WavelengthFit

    Raises
    ------
    CalibrationError
        Too few lines, wrong lamp, non-monotonic or poor fit.
    """
    if isinstance(measurements, RawMeasurement):
        measurements = [measurements]
    measurements = list(measurements)
    if not measurements:
        raise CalibrationError("no lamp spectrum given")
    src = measurements[0].source
    laser = laser_nm if laser_nm is not None else measurements[0].laser_nm
    ps, domain = _collect_peaks(measurements, min_snr)
    if ps.x.size < min_lines:
        raise CalibrationError(
            f"only {ps.x.size} emission peaks found in the {lamp} spectrum (need {min_lines})",
            source=src, hint="use a longer exposure or check that the lamp was on")
    resolution = float(np.median(ps.fwhm_nm))
    lo, hi = float(ps.guess_nm.min()) - max_shift_nm, float(ps.guess_nm.max()) + max_shift_nm
    ref, _ = lamp_lines(lamp, lo, hi, resolution_nm=0.8 * resolution)
    if ref.size < 2:
        raise CalibrationError(f"no {lamp} lines lie in the range {lo:.0f}-{hi:.0f} nm",
                               source=src, hint="check the lamp type (--lamp)")
    tol = max(0.6 * resolution, 0.05)
    off, stretch, centre = _coarse_align(ps.guess_nm, ref, tol, max_shift_nm)
    pred = ps.guess_nm + off + stretch * (ps.guess_nm - centre)

    # The strongest peaks of a genuine lamp spectrum are lamp lines.
    strong = np.argsort(-ps.height)[: min(10, ps.x.size)]
    strong_matched = _match(pred[strong], ref, tol) >= 0
    if strong_matched.mean() < 0.5:
        raise CalibrationError(
            f"the strongest peaks do not match {lamp} lines "
            f"({int(strong_matched.sum())} of {strong.size}): this is not a {lamp} lamp spectrum "
            "or the instrument's wavelength scale is far off", source=src,
            hint="measure the named lamp, or pass --lamp for the lamp you used")

    xc = 0.5 * (domain[0] + domain[1])
    hw = 0.5 * (domain[1] - domain[0])
    t_all = (ps.x - xc) / hw
    order = 1
    used = np.zeros(ps.x.size, dtype=bool)
    coeffs = None
    match_tol = tol
    for _ in range(8):
        line_idx = _match(pred if coeffs is None else P.polyval(t_all, coeffs), ref, match_tol)
        used = line_idx >= 0
        for _ in range(5):  # outlier rejection
            if used.sum() < 2 * (order + 1):
                break
            c = P.polyfit(t_all[used], ref[line_idx[used]], order)
            r = ref[line_idx[used]] - P.polyval(t_all[used], c)
            sig = max(1.4826 * np.median(np.abs(r)), 0.02 * resolution)
            bad = np.abs(r) > 3.0 * sig
            if not bad.any():
                break
            u = np.flatnonzero(used)
            used[u[bad]] = False
        n = int(used.sum())
        if n < 2 * (order + 1):
            break
        t_u, y_u = t_all[used], ref[line_idx[used]]
        cands = [k for k in range(1, max_order + 1) if n >= max(2 * (k + 1), 4)]
        scores = {k: _loo_rms(t_u, y_u, k) for k in cands}
        new_order = cands[0]
        for k in cands[1:]:
            if scores[k] < 0.9 * scores[new_order]:
                new_order = k
        new = P.polyfit(t_u, y_u, new_order)
        resid = y_u - P.polyval(t_u, new)
        rms = float(np.sqrt(np.mean(resid ** 2)))
        match_tol = max(min(tol, 5 * rms), 0.25 * resolution, 0.02)
        converged = coeffs is not None and new_order == order and np.allclose(
            P.polyval(t_all, new), P.polyval(t_all, coeffs), atol=1e-4)
        coeffs, order = new, new_order
        if converged:
            break

    if coeffs is None:
        coeffs = P.polyfit(t_all, pred, 1)
    n_used = int(used.sum())
    need = max(min_lines, 2 * (order + 1))
    if n_used < need:
        raise CalibrationError(
            f"only {n_used} {lamp} lines could be matched (need {need} for an order-{order} fit)",
            source=src, hint="use a longer exposure, a lamp with more lines in this range, or "
                             "a lower --max-order")
    line_idx = _match(P.polyval(t_all, coeffs), ref, match_tol)
    used &= line_idx >= 0
    fit_nm = P.polyval(t_all[used], coeffs)
    ref_nm = ref[line_idx[used]]
    resid_nm = ref_nm - fit_nm
    resid_cm1 = 1e7 / fit_nm - 1e7 / ref_nm
    x_used = ps.x[used]
    loo_poly = _loo_rms(t_all[used], ref_nm, order)
    loo_int = _loo_interp(x_used, resid_nm) if x_used.size >= 8 else float("inf")
    lam = float(np.mean(ref_nm))
    loo = {"poly": loo_poly * 1e7 / lam ** 2, "poly+interp": loo_int * 1e7 / lam ** 2}
    knots_x = knots_nm = None
    if loo_int < 0.8 * loo_poly:
        knots_x, knots_nm = x_used.tolist(), resid_nm.tolist()
    wf = WavelengthFit(
        measurements[0].x_kind, float(xc), float(hw), [float(c) for c in coeffs], lamp,
        None if laser is None else float(laser),
        {"x": ps.x[used].tolist(), "ref_nm": ref_nm.tolist(), "fit_nm": fit_nm.tolist(),
         "resid_nm": resid_nm.tolist(), "resid_cm1": resid_cm1.tolist(),
         "snr": ps.snr[used].tolist()},
        int(ps.x.size), int(ps.x.size - used.sum()), (float(domain[0]), float(domain[1])),
        knots_x, knots_nm, loo)
    grid = np.linspace(domain[0], domain[1], 512)
    if np.any(np.diff(wf(grid)) <= 0):
        raise CalibrationError("the fitted wavelength scale is not monotonic over the detector",
                               source=src, hint="lower --max-order or add lines at the edges")
    predictive = loo[wf.model]
    if predictive > max_rms_cm1:
        raise CalibrationError(
            f"the peaks do not fit {lamp} lines: leave-one-out RMS {predictive:.2f} cm-1 > "
            f"{max_rms_cm1:g} cm-1, {len(wf.lines['x'])} of {wf.n_peaks} peaks matched (wrong "
            "lamp, or a spectrum that is not a lamp spectrum?)", source=src,
            hint="measure the named lamp (--lamp); raise --max-rms only if the instrument's "
                 "resolution justifies it")
    return wf
