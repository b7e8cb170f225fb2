"""Reference values for calibration: emission lines, Raman standards, certified SRM responses.

Emission lines (air wavelengths, nm, with NIST relative intensities)
--------------------------------------------------------------------
Source: NIST Atomic Spectra Database (A. Kramida, Yu. Ralchenko, J. Reader and NIST ASD Team,
https://physics.nist.gov/asd), Ne I/Ar I/Hg I lines, air wavelengths above 200 nm. The neon values
were read from the NIST-derived table ``neon_nist_wl_nm`` in ramanchada2 (H2020 CHARISMA, MIT,
``src/ramanchada2/misc/constants.py``) and cross-checked against a second, independent transcription
of NIST ASD air wavelengths (kspecdr ``data/arc_tables/ne.arc``): every line present in both agrees
to within 1e-4 nm (e.g. 640.2248, 703.24131, 837.7607/837.7608 nm); four lines found only in the
second (591.3633, 591.89068, 621.38758, 743.88981 nm) are added with a nominal intensity.
Only lines between 520 and 1160 nm are carried (the range of 532-785 nm Raman spectrometers).
Ar and Hg values: NIST ASD as quoted in ``../shared/docs/algorithms.md`` section 1.2.

Raman standards
---------------
* Silicon: 520.7 cm-1 by default (configurable: ramanchada2 uses 520.45; no primary source was found
  for either, see algorithms.md 1.1; every record stores the value used).
* Polystyrene primary band 1001.4 cm-1 and the other ASTM E1840-96 (R2014) shifts, read from
  ``astm-e1840-peaks.json`` (MIT file from Wasatch ENLIGHTEN; values: ASTM E1840).

NIST SRM relative-intensity standards
-------------------------------------
Certified response curves (x = Raman shift in cm-1) of NIST SRM 2241 (785 nm, certificate
https://tsapps.nist.gov/srmext/certificates/2241.pdf) and SRM 2242a (532 nm, certificate
https://tsapps.nist.gov/srmext/certificates/2242a.pdf). The certificate PDFs could not be opened
here. Verification done: the SRM 2241 coefficients were found in two independent public
transcriptions (ramanchada2 ``config_certs.json`` and an unrelated public Raman-processing script)
that agree digit for digit; the SRM 2242a coefficients were found in one transcription only
(ramanchada2) and are checked only for shape (smooth, positive, maximum ~1 inside the range) and
against the measured SRM 2242a glass spectrum in the tests. Check both against the certificates
before a regulated release.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ramanid.errors import CalibrationError

SILICON_CM1 = 520.7
POLYSTYRENE_PRIMARY_CM1 = 1001.4

# Ne I air wavelengths (nm) : NIST relative intensity, 520-1160 nm.
NEON_AIR_NM: dict[float, float] = {
    533.07775: 60, 534.10938: 100, 534.32834: 60, 540.05618: 200, 556.27662: 50,
    565.66588: 50, 571.92248: 50, 574.82985: 50, 576.44188: 70, 580.44496: 50, 582.01558: 50,
    585.24879: 200, 587.28275: 50, 588.18952: 100, 590.24623: 5, 590.64294: 5, 594.48342: 50,
    596.5471: 50, 597.46273: 50, 597.5534: 60, 598.79074: 15, 602.99969: 100, 607.43377: 100,
    609.61631: 30, 612.84499: 10, 614.30626: 100, 616.35939: 100, 618.2146: 15, 621.72812: 100,
    626.6495: 100, 630.47889: 10, 632.81646: 30, 633.44278: 100, 638.29917: 100, 640.2248: 200,
    650.65281: 150, 653.28822: 10, 659.89529: 100, 665.20927: 15, 667.82762: 50, 671.7043: 7,
    692.94673: 1000, 702.40504: 300, 703.24131: 800, 705.12923: 20, 705.91074: 100,
    717.39381: 800, 721.32: 150, 723.5188: 150, 724.51666: 800, 734.3945: 150, 747.24386: 30,
    748.88712: 300, 749.2102: 100, 752.2818: 150, 753.57741: 300, 754.40443: 130, 772.46233: 1,
    774.0738: 120, 783.90529: 2, 792.6201: 120, 792.71177: 3, 793.69961: 13, 794.31814: 80,
    808.2458: 60, 808.4345: 100, 811.85492: 40, 812.89108: 12, 813.64054: 170, 825.9379: 30,
    826.4807: 100, 826.60772: 70, 826.71162: 10, 830.03258: 300, 831.4995: 100, 836.57466: 50,
    837.2106: 100, 837.7608: 800, 841.71606: 30, 841.84274: 250, 846.33575: 40, 848.44435: 13,
    849.53598: 700, 854.46958: 15, 857.13524: 30, 859.12584: 400, 863.4647: 350, 864.70411: 60,
    865.43831: 600, 865.5522: 80, 866.8256: 100, 867.94925: 130, 868.19211: 150, 870.41116: 30,
    877.16563: 100, 878.06226: 600, 878.37533: 400, 883.09072: 6, 885.38668: 300, 886.53063: 20,
    886.57552: 150, 891.95006: 60, 898.85564: 20, 907.9462: 100, 914.86716: 120, 920.17591: 90,
    922.00601: 60, 922.15801: 20, 922.66903: 20, 927.55196: 9, 928.7563: 200, 930.08527: 80,
    931.05839: 8, 931.39726: 30, 932.65068: 70, 937.33078: 15, 942.53788: 50, 945.92095: 30,
    948.66818: 50, 953.41629: 60, 954.74049: 30, 957.7013: 120, 966.54197: 180, 980.886: 100,
    1029.54174: 4, 1056.24075: 80, 1079.80429: 60, 1084.44772: 90, 1114.302: 300,
    1117.7524: 500, 1139.04339: 150, 1140.91343: 90, 1152.27459: 300, 1152.50194: 150,
    1153.63445: 90,
    # NIST ASD air wavelengths present in the second transcription (kspecdr ne.arc) but not in
    # the first; NIST intensity not carried there, given a nominal 100.
    591.3633: 100, 591.89068: 100, 621.38758: 100, 743.88981: 100,
}

# Ar I air wavelengths (nm); NIST ASD via algorithms.md 1.2 (no intensities carried: weight 100).
ARGON_AIR_NM: dict[float, float] = dict.fromkeys((
    696.5431, 706.7218, 714.7042, 727.2936, 738.3980, 750.3869, 751.4652, 763.5106, 772.3761,
    794.8176, 800.6157, 801.4786, 810.3693, 811.5311, 826.4522, 840.8210, 842.4648, 852.1442,
    912.2967, 922.4499, 965.7786, 978.4503, 1013.975, 1047.0054), 100.0)

# Hg I air wavelengths (nm); NIST ASD via algorithms.md 1.2.
MERCURY_AIR_NM: dict[float, float] = dict.fromkeys((435.8335, 546.0750, 576.9610, 579.0670),
                                                    100.0)

LAMPS: dict[str, dict[float, float]] = {
    "neon": NEON_AIR_NM,
    "argon": ARGON_AIR_NM,
    "mercury": MERCURY_AIR_NM,
    "hgar": {**MERCURY_AIR_NM, **ARGON_AIR_NM},
}


def lamp_lines(lamp: str, lo_nm: float, hi_nm: float, *, resolution_nm: float = 0.0,
               min_intensity: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Reference lines of a lamp inside ``[lo_nm, hi_nm]``, blends resolved.

    Lines closer together than ``resolution_nm`` cannot be told apart by the instrument. When the
    weaker line of such a pair has more than a fifth of the stronger one's intensity the blend's
    centre is unpredictable and both are dropped; otherwise only the stronger one is kept.

    Parameters
    ----------
    lamp
        ``neon``, ``argon``, ``mercury`` or ``hgar``.
    lo_nm, hi_nm
        Wavelength window (air nm).
    resolution_nm
        Instrument FWHM in nm.
    min_intensity
        Drop lines with a NIST relative intensity below this.

    Returns
    -------
    (wavelength_nm, intensity) arrays sorted by wavelength.
    """
    try:
        table = LAMPS[lamp.lower()]
    except KeyError as exc:
        raise CalibrationError(f"unknown lamp {lamp!r}",
                               hint=f"use one of {', '.join(sorted(LAMPS))}") from exc
    wl = np.array(sorted(table), dtype=np.float64)
    inten = np.array([table[w] for w in wl], dtype=np.float64)
    keep = (wl >= lo_nm) & (wl <= hi_nm) & (inten >= min_intensity)
    wl, inten = wl[keep], inten[keep]
    if resolution_nm > 0 and wl.shape[0] > 1:
        ok = np.ones(wl.shape[0], dtype=bool)
        for i in range(wl.shape[0]):
            near = np.flatnonzero((np.abs(wl - wl[i]) < resolution_nm) & (np.arange(wl.size) != i))
            for j in near:
                if inten[j] > 0.2 * inten[i] and inten[i] > 0.2 * inten[j]:
                    ok[i] = False  # comparable blend: centre unpredictable
                elif inten[j] >= inten[i]:
                    ok[i] = False  # a stronger neighbour dominates
        wl, inten = wl[ok], inten[ok]
    return wl, inten


@dataclass(frozen=True)
class ReferenceBands:
    """Reference Raman shifts of one compound (cm-1), with ASTM relative-intensity classes."""

    compound: str
    shifts: np.ndarray
    intensity_class: np.ndarray  # 0 = primary, 1 strongest .. 4 weakest (ENLIGHTEN file classes)
    source: str
    #: True for bands that are broad or unresolved multiplets at handheld resolution
    #: (:data:`BROAD_BANDS_CM1`); None = all sharp.
    broad: np.ndarray | None = None

    def broad_mask(self) -> np.ndarray:
        """Per band: True when broad at handheld resolution (judged with a wider tolerance)."""
        if self.broad is None:
            return np.zeros(self.shifts.shape, dtype=bool)
        return np.asarray(self.broad, dtype=bool)


#: ASTM E1840 bands that are broad, or unresolved multiplets, at the 8-13 cm-1 resolution of
#: handheld and fibre-probe instruments, so their centroid is not a sharp position reference:
#: polystyrene 795.8 (ring breathing overlapping the 760-800 cm-1 C-H wag region), 1450.5
#: (CH2 scissoring, ~15-20 cm-1 wide even at high resolution), 2852.4 and 2904.5 (aliphatic C-H
#: stretches, overlapping) and 3054.3 (aromatic C-H stretch multiplet 3025-3082). The sharp
#: ring modes 620.9, 1001.4, 1031.8, 1155.3, 1583.1 and 1602.3 stay the position references
#: (see docs/readme/calibration.md, "broad bands", for the evidence). Other compounds: none
#: marked, for lack of measured evidence at handheld resolution.
BROAD_BANDS_CM1: dict[str, tuple[float, ...]] = {
    "polystyrene": (795.8, 1450.5, 2852.4, 2904.5, 3054.3),
}


def broad_bands(compound: str) -> tuple[float, ...]:
    """Broad/unresolved ASTM E1840 bands (cm-1) of ``compound`` (case-insensitive prefix)."""
    key = compound.lower()
    for name, bands in BROAD_BANDS_CM1.items():
        if key.startswith(name) or name.startswith(key):
            return bands
    return ()


def default_astm_path() -> Path | None:
    """Location of ``astm-e1840-peaks.json``: packaged copy, else ``../shared/data/enlighten``."""
    here = Path(__file__).resolve().parent
    for cand in (here / "data" / "astm-e1840-peaks.json",
                 here.parent.parent / "shared" / "data" / "enlighten" / "astm-e1840-peaks.json"):
        if cand.is_file():
            return cand
    return None


def load_astm_e1840(compound: str = "polystyrene", path: str | Path | None = None
                    ) -> ReferenceBands:
    """Load the ASTM E1840 reference shifts of one compound.

    Parameters
    ----------
    compound
        Case-insensitive prefix of the compound name in the file (``polystyrene``,
        ``cyclohexane``, ``4-acetamidophenol``, ``naphthalene``, ...).
    path
        The JSON file (ENLIGHTEN layout: ``{"Compounds": {name: {shift: {"Intensity": k} |
        {"Primary": true}}}}``); by default :func:`default_astm_path`.

    Returns
    -------
    ReferenceBands
    """
    path = Path(path) if path is not None else default_astm_path()
    if path is None or not path.is_file():
        raise CalibrationError("ASTM E1840 peak file not found",
                               hint="pass its path (astm-e1840-peaks.json) with --astm")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        compounds = doc["Compounds"]
    except (OSError, ValueError, KeyError) as exc:
        raise CalibrationError("cannot read the ASTM E1840 peak file", source=path) from exc
    key = compound.lower()
    names = [n for n in compounds if n.lower().startswith(key) or key in n.lower()]
    if not names:
        raise CalibrationError(f"compound {compound!r} is not in the ASTM E1840 file",
                               source=path, hint=f"choose one of: {', '.join(compounds)}")
    name = names[0]
    items = sorted((float(k), v) for k, v in compounds[name].items())
    shifts = np.array([s for s, _ in items])
    classes = np.array([0 if v.get("Primary") else int(v.get("Intensity", 4)) for _, v in items])
    wide = np.asarray(broad_bands(name), dtype=np.float64)
    broad = np.array([wide.size > 0 and bool(np.min(np.abs(wide - x)) <= 0.5) for x in shifts])
    return ReferenceBands(name, shifts, classes, str(path), broad)


# ---------------------------------------------------------------------------------------------
# Certified relative-intensity responses of NIST SRM 224x (x in cm-1).

@dataclass(frozen=True)
class SRMCertificate:
    """A certified SRM response curve and its valid range."""

    srm: str
    laser_nm: float
    lo_cm1: float
    hi_cm1: float
    citation: str

    def response(self, shift_cm1: np.ndarray) -> np.ndarray:
        """Certified relative intensity at ``shift_cm1``; NaN outside the certified range."""
        x = np.asarray(shift_cm1, dtype=np.float64)
        out = np.full(x.shape, np.nan)
        inside = (x >= self.lo_cm1) & (x <= self.hi_cm1)
        out[inside] = _SRM_FUNCS[self.srm](x[inside])
        return out


def _srm2241(x: np.ndarray) -> np.ndarray:
    coeffs = (9.71937e-02, 2.28325e-04, -5.86762e-08, 2.16023e-10, -9.77171e-14, 1.15596e-17)
    return np.polynomial.polynomial.polyval(x, coeffs)


def _lognormal(h: float, w: float, rho: float, x0: float, m: float, b: float):
    def f(x: np.ndarray) -> np.ndarray:
        arg = (x - x0) * (rho ** 2 - 1.0) / (w * rho) + 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            core = np.where(arg > 0, h * np.exp(-np.log(2.0) / np.log(rho) ** 2
                                                * np.log(np.where(arg > 0, arg, 1.0)) ** 2), 0.0)
        return core + m * x + b
    return f


_SRM_FUNCS = {
    "2241": _srm2241,
    "2242a": _lognormal(0.99747, 3100.6, 1.1573, 2972.1, -3.7168e-06, 1.2864e-02),
}

SRM_CERTIFICATES: dict[str, SRMCertificate] = {
    "2241": SRMCertificate("2241", 785.0, 200.0, 3500.0,
                           "NIST SRM 2241 certificate, https://tsapps.nist.gov/srmext/"
                           "certificates/2241.pdf (5th-order polynomial, 20-25 C, 180 deg)"),
    "2242a": SRMCertificate("2242a", 532.0, 150.0, 4000.0,
                            "NIST SRM 2242a certificate, https://tsapps.nist.gov/srmext/"
                            "certificates/2242a.pdf (log-normal form, 20-25 C, 180 deg)"),
}


def srm_for_laser(laser_nm: float, srm: str | None = None) -> SRMCertificate:
    """The SRM certificate to use for ``laser_nm`` (refuses a laser the SRM is not made for)."""
    if srm is not None:
        key = srm.lower().replace("srm", "").strip()
        key = {"2242": "2242a"}.get(key, key)
        if key not in SRM_CERTIFICATES:
            raise CalibrationError(f"no certified response for SRM {srm!r}",
                                   hint=f"supported: {', '.join(SRM_CERTIFICATES)}")
        cert = SRM_CERTIFICATES[key]
    else:
        cert = min(SRM_CERTIFICATES.values(), key=lambda c: abs(c.laser_nm - laser_nm))
    if abs(cert.laser_nm - laser_nm) > 5.0:
        raise CalibrationError(
            f"SRM {cert.srm} is certified for {cert.laser_nm:g} nm excitation, not {laser_nm:g} nm",
            hint="use the SRM made for this laser (2241: 785 nm, 2242a: 532 nm)")
    return cert
