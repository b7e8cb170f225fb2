"""Per-device calibration records: what was measured, when, with which standard, the fitted
parameters, residuals, pass/fail and validity; stored as JSON, written atomically.

Layout (documented in ``docs/readme/calibration.md``)::

    $RAMANID_HOME/calibration/<serial>/<record-id>.json

One file per calibration step. A record is cumulative: it carries the device's complete current
calibration (wavelength fit, laser, shift correction, intensity correction), inheriting the parts
it did not re-measure from its ``parent`` record. The newest record of a serial is the current one.
Record ids are ``<UTC timestamp to the microsecond>-<kind>-<8 hex>``, so sorting them sorts by
time.

JSON keys: ``format`` (``"ramanid-calibration/1"``), ``id``, ``parent``, ``serial``, ``created``
(ISO 8601 UTC), ``kind`` (wavelength | excitation | shift | intensity), ``standard``,
``source_files``, ``laser_nm`` (fitted or nominal excitation, air nm), ``wavelength``
(:meth:`WavelengthFit.to_dict`), ``excitation``, ``shift_correction``, ``intensity``
(:meth:`IntensityCorrection.to_dict`), ``residuals`` (summary and per-line/per-band table of this
step), ``passed``, ``tolerance_cm1``, ``valid_days``, ``software``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ramanid.atomic import atomic_write_text
from ramanid.errors import CalibrationError, UsageError
from ramanid.paths import data_home

FORMAT = "ramanid-calibration/1"
DEFAULT_VALID_DAYS = {"wavelength": 180.0, "excitation": 30.0, "shift": 7.0, "intensity": 180.0}


def calibration_dir() -> Path:
    """Directory holding every device's records (``data_home()/calibration``)."""
    return data_home() / "calibration"


def check_serial(serial: str) -> str:
    """Return ``serial`` (stripped) if it can name a device folder, else raise ``UsageError``.

    A serial is a folder name under ``calibration/``: path separators, ``..`` and control
    characters are refused rather than silently rewritten (``../../etc`` must not become
    ``etc``, another device's folder).
    """
    text = str(serial).strip()
    if (not text or "/" in text or "\\" in text or ".." in text or text.startswith(".")
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in text)):
        raise UsageError(f"unusable device serial {text!r}: it must not contain path "
                         "separators, '..' or control characters", source="--device",
                         hint="give the serial printed on the instrument (e.g. BWS415-001)")
    return text


def _safe(serial: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", check_serial(serial)).strip("._")
    if not s:
        raise CalibrationError(f"unusable device serial {serial!r}",
                               hint="give the serial printed on the instrument")
    return s


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@dataclass
class CalibrationRecord:
    """One calibration step of one device, carrying the device's full current calibration."""

    serial: str
    kind: str
    standard: str
    created: str = ""
    id: str = ""
    parent: str | None = None
    source_files: list[str] = field(default_factory=list)
    laser_nm: float | None = None
    wavelength: dict | None = None
    excitation: dict | None = None
    shift_correction: dict | None = None
    intensity: dict | None = None
    residuals: dict = field(default_factory=dict)
    passed: bool = False
    tolerance_cm1: float | None = None
    valid_days: float = 30.0
    software: str = ""

    def __post_init__(self) -> None:
        if not self.created:
            self.created = _now().isoformat(timespec="microseconds").replace("+00:00", "Z")
        if not self.id:
            stamp = _parse_time(self.created).strftime("%Y%m%dT%H%M%S.%fZ")
            digest = hashlib.sha256(json.dumps(
                [self.serial, self.kind, self.created, self.source_files, self.residuals],
                sort_keys=True, default=str).encode()).hexdigest()[:8]
            self.id = f"{stamp}-{self.kind}-{digest}"
        if not self.software:
            from ramanid._version import __version__
            self.software = f"ramanid {__version__}"

    # -- derived -----------------------------------------------------------------------------
    def age_days(self, when: datetime | None = None) -> float:
        """Days between creation and ``when`` (now by default)."""
        when = when or _now()
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return (when - _parse_time(self.created)).total_seconds() / 86400.0

    def wavelength_fit(self):
        """The stored :class:`WavelengthFit`, or ``None``."""
        if not self.wavelength:
            return None
        from ramanid.calibration.wavelength import WavelengthFit
        return WavelengthFit.from_dict(self.wavelength)

    def shift_fit(self):
        """The stored :class:`ShiftCorrection`, or ``None``."""
        if not self.shift_correction:
            return None
        from ramanid.calibration.shift import ShiftCorrection
        return ShiftCorrection.from_dict(self.shift_correction)

    def intensity_fit(self):
        """The stored :class:`IntensityCorrection`, or ``None``."""
        if not self.intensity:
            return None
        from ramanid.calibration.intensity import IntensityCorrection
        return IntensityCorrection.from_dict(self.intensity)

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (with the ``format`` tag)."""
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibrationRecord:
        """Rebuild a record; refuses unknown formats."""
        if d.get("format") != FORMAT:
            raise CalibrationError(f"unknown calibration record format {d.get('format')!r}")
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in names})

    def inherit(self, parent: CalibrationRecord | None) -> CalibrationRecord:
        """Fill the parts this step did not measure from ``parent`` (in place; returns self)."""
        if parent is None:
            return self
        self.parent = parent.id
        for name in ("wavelength", "excitation", "shift_correction", "intensity"):
            if getattr(self, name) is None and getattr(parent, name) is not None:
                setattr(self, name, getattr(parent, name))
        if self.laser_nm is None:
            self.laser_nm = parent.laser_nm
        return self


def save_record(record: CalibrationRecord) -> Path:
    """Write ``record`` atomically to its device directory; return the path."""
    path = calibration_dir() / _safe(record.serial) / f"{record.id}.json"
    atomic_write_text(path, json.dumps(record.to_dict(), indent=1, sort_keys=False) + "\n")
    return path


_CACHE: dict[Path, tuple[int, list[CalibrationRecord]]] = {}


def list_records(serial: str) -> list[CalibrationRecord]:
    """Every readable record of a device, oldest first (cached until the folder changes).

    A serial that cannot name a device folder (see :func:`check_serial`) has no records.
    """
    try:
        folder = calibration_dir() / _safe(serial)
    except (UsageError, CalibrationError):
        return []
    try:
        stamp = folder.stat().st_mtime_ns
    except OSError:
        return []
    hit = _CACHE.get(folder)
    if hit is not None and hit[0] == stamp:
        return list(hit[1])
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            out.append(CalibrationRecord.from_dict(json.loads(p.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError, CalibrationError):
            continue  # a foreign or damaged file never hides the good records
    out.sort(key=lambda r: (_parse_time(r.created), r.id))
    _CACHE[folder] = (stamp, out)
    return list(out)


def list_serials() -> list[str]:
    """Serials that have at least one record."""
    root = calibration_dir()
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def load_record(serial: str | None) -> CalibrationRecord | None:
    """The current (newest) calibration record of a device, or ``None``."""
    if not serial:
        return None
    records = list_records(serial)
    return records[-1] if records else None


def usable_record(serial: str | None) -> CalibrationRecord | None:
    """The device's current record if it may be applied to scans, else ``None``.

    A record that FAILED its checks is not applied (it would move the axis by an amount its own
    check rejected); an old (stale) one still is, with a warning in the verdict. In both cases
    :func:`scan_calibration` reports the record's state.
    """
    rec = load_record(serial)
    return rec if rec is not None and rec.passed else None


def _status_of(rec: CalibrationRecord, serial: str | None, when: datetime | None,
               out: dict[str, Any]) -> dict[str, Any]:
    age = rec.age_days(when)
    if age < 0:  # a record made after the scan (an old file identified today): age it now
        age = rec.age_days(None)
    until = _parse_time(rec.created).timestamp() + rec.valid_days * 86400.0
    out.update(id=rec.id, kind=rec.kind, created=rec.created, age_days=round(age, 2),
               valid_until=datetime.fromtimestamp(until, timezone.utc).isoformat(
                   timespec="seconds").replace("+00:00", "Z"), laser_nm=rec.laser_nm)
    if not rec.passed:
        out["state"] = "failed"
        out["warning"] = (f"the calibration {rec.id} of device {serial} FAILED its checks: "
                          "treat Raman shifts with caution and recalibrate")
    elif age > rec.valid_days:
        out["state"] = "stale"
        out["warning"] = (f"calibration of device {serial} is {age:.0f} days old (valid "
                          f"{rec.valid_days:g} days): recalibrate")
    else:
        out["state"] = "ok"
        out["warning"] = None
    return out


def scan_calibration(meta: dict[str, Any], when: datetime | None = None) -> dict[str, Any]:
    """Calibration status of one scan, for its result record.

    Uses the record named by ``meta["calibration_id"]`` (the one applied to the scan) and the
    scan's ``timestamp`` for the age when ``when`` is not given. A scan with no calibration
    applied is ``missing`` (the warning says whether the device has a record that was not used),
    or ``failed`` when the device's current record failed its checks (such a record is never
    applied: see :func:`usable_record`).
    Same keys as :func:`calibration_status`, plus ``applied`` (bool).
    """
    serial = meta.get("device_serial")
    if when is None and meta.get("timestamp"):
        try:
            when = _parse_time(str(meta["timestamp"]))
        except ValueError:
            when = None
    cal_id = meta.get("calibration_id")
    if not cal_id:
        st = calibration_status(serial, when)
        st["applied"] = False
        if st["state"] == "failed":  # a failed record is never applied (ramanid scan/identify)
            st["warning"] = (f"calibration {st['id']} of device {serial} FAILED its checks on "
                             f"{str(st['created'])[:10]} and was not applied (the Raman-shift "
                             "axis rests on the factory calibration): re-calibrate")
        elif st["id"] is not None:
            st.update(state="missing", warning=(
                f"device {serial} has calibration {st['id']} but it was not applied to this "
                "scan: the Raman-shift axis rests on the factory calibration"))
        return st
    out = {"id": cal_id, "serial": serial, "kind": None, "created": None, "age_days": None,
           "valid_until": None, "laser_nm": None, "state": "missing", "applied": True,
           "warning": f"calibration {cal_id} named by the scan is not on this machine"}
    for rec in list_records(serial) if serial else []:
        if rec.id == cal_id:
            return _status_of(rec, serial, when, out)
    return out


def calibration_status(serial: str | None, when: datetime | None = None) -> dict[str, Any]:
    """State of a device's calibration, for every result record.

    Returns
    -------
    dict
        ``id``, ``serial``, ``kind``, ``created``, ``age_days``, ``valid_until``, ``laser_nm``,
        ``state`` (``ok`` | ``missing`` | ``failed`` | ``stale``) and ``warning`` (``None`` when
        ok, else one line for the officer).
    """
    out: dict[str, Any] = {"id": None, "serial": serial, "kind": None, "created": None,
                           "age_days": None, "valid_until": None, "laser_nm": None,
                           "state": "missing", "warning": None}
    rec = load_record(serial)
    if rec is None:
        who = f"device {serial}" if serial else "this device (serial unknown)"
        out["warning"] = (f"no calibration record for {who}: the Raman-shift axis rests on the "
                          "factory calibration; run `ramanid calibrate`")
        return out
    return _status_of(rec, serial, when, out)
