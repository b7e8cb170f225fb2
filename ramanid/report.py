"""Field output of identification results: terminal text, JSON lines and the exit status.

The text rendering is what a field officer reads on a laptop beside a parcel. It is built so that a
hazard cannot be missed:

- a hazard (level high or extreme) opens the scan's block with a boxed banner (red and bold on
  a colour terminal; a plain ``!`` box when the terminal cannot show box-drawing characters);
- for a possible fentanyl-class opioid the banner says so and gives the three instructions that
  matter: do not open, gloves and mask, naloxone at hand;
- then the verdict in plain words, the candidates with their scores, mixture components, scan
  quality, calibration and the honesty warnings (non-measured references, hazard classes the
  library holds no measured reference for);
- with several scans, a summary line at the end repeats the number of hazards and which scans
  raised them.

Colour follows https://no-color.org: ``NO_COLOR`` (any value) turns it off; otherwise colour is used
only when the stream is a terminal and ``TERM`` is not ``dumb``.

Exit status (also in ``ramanid --help``): 0 nothing hazardous, 1 at least one input error,
3 at least one hazard alarm (level high or extreme; level low shows a yellow caution box and
does not change the status). A hazard wins over an input error: when one file raised a hazard
and another could not be read, the status is 3, because the hazard is what must not be lost.
"""

from __future__ import annotations

import json
import math
import os
import sys
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any, TextIO

from ramanid import i18n
from ramanid.errors import EXIT_HAZARD, EXIT_INPUT, EXIT_OK
from ramanid.hazard import ALARM_LEVELS, HAZARD_LEVELS, is_alarm

"""Hazard levels, lowest first (the library's scale)."""

VERDICTS = ("match", "mixture", "no_match", "inconclusive")
"""The four verdicts of the engine."""

# Substance names that mark a fentanyl-class opioid even when a record carries only names.
_OPIOID_WORDS = ("fentan", "fentanil", "sufentan", "alfentan", "remifentan", "carfentan",
                 "nitazene", "opioid")

_ANSI = {
    "alarm": "\x1b[1;97;41m",    # bold bright white on red
    "caution": "\x1b[1;30;43m",  # bold black on yellow
    "bold": "\x1b[1m",
    "red": "\x1b[1;31m",
    "yellow": "\x1b[33m",
    "dim": "\x1b[2m",
    "reset": "\x1b[0m",
}


# -- hazard and exit status -----------------------------------------------------------------------
def hazard_level(record: Mapping[str, Any]) -> str:
    """The record's hazard level (``"none"`` when the record has no hazard section).

    A level outside the known scale is returned as ``"extreme"``: an unknown alarm is treated as
    the worst one, never silently dropped.
    """
    hazard = record.get("hazard") or {}
    level = str(hazard.get("level") or "none").lower()
    return level if level in HAZARD_LEVELS else "extreme"


"""Hazard levels that raise the alarm (red banner, exit status 3): the library's "hazardous"."""


def is_hazard(record: Mapping[str, Any]) -> bool:
    """True when the record raises the hazard alarm (level ``high`` or ``extreme``).

    Level ``low`` gets a yellow caution box in the text but does not raise the alarm.
    """
    return hazard_level(record) in ALARM_LEVELS


def has_hazard_notice(record: Mapping[str, Any]) -> bool:
    """True when the record carries any hazard level above ``none`` (alarm or caution)."""
    return hazard_level(record) != "none"


def exit_status(records: Iterable[Mapping[str, Any]], input_errors: int = 0) -> int:
    """CLI exit status for a set of results.

    Parameters
    ----------
    records
        Result records of the scans that could be identified.
    input_errors
        Number of inputs (files, devices) that failed before a result could be made.

    Returns
    -------
    int
        3 if any record raises the hazard alarm (level high or extreme), else 1 if there was
        any input error, else 0. Hazard wins over input error.
    """
    if any(is_hazard(r) for r in records):
        return EXIT_HAZARD
    return EXIT_INPUT if input_errors else EXIT_OK


# -- JSON lines -----------------------------------------------------------------------------------
def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and non-finite floats to plain JSON values.

    NaN and infinities become ``null`` (strict JSON has no such numbers).
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return to_jsonable(tolist())
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def json_line(record: Mapping[str, Any]) -> str:
    """One record as one line of JSON (UTF-8 text kept as is, no trailing newline)."""
    return json.dumps(to_jsonable(record), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":"))


# -- terminal capabilities ------------------------------------------------------------------------
def color_enabled(stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to use ANSI colour on ``stream`` (default stdout): a TTY, no NO_COLOR, not dumb."""
    env = os.environ if environ is None else environ
    if "NO_COLOR" in env:
        return False
    if env.get("TERM") == "dumb":
        return False
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def can_encode(text: str, stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stdout) can encode ``text`` with its encoding."""
    stream = sys.stdout if stream is None else stream
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def display_width(text: str) -> int:
    """Terminal cells taken by ``text`` (combining marks 0, East-Asian wide characters 2)."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


class _Style:
    """Colour and character set of one rendering."""

    def __init__(self, color: bool, ascii_only: bool) -> None:
        self.color = color
        self.ascii = ascii_only

    def paint(self, text: str, what: str) -> str:
        if not self.color or not text:
            return text
        return f"{_ANSI[what]}{text}{_ANSI['reset']}"

    @property
    def bullet(self) -> str:
        return "-" if self.ascii else "•"

    @property
    def sep(self) -> str:
        return " | " if self.ascii else " · "


def _split_long(word: str, width: int) -> list[str]:
    """Cut a word wider than ``width`` (a long file path) into pieces that fit.

    Pieces end after a ``/`` or ``\\`` when one falls in the second half of the piece, so paths
    break at directory boundaries; otherwise they are cut at the width.
    """
    pieces: list[str] = []
    while display_width(word) > width:
        cells = list(accumulate(display_width(ch) for ch in word))
        cut = max(bisect_right(cells, width), 1)  # characters that fit in the width
        slash = max(word.rfind("/", 0, cut), word.rfind("\\", 0, cut))
        if slash + 1 > cut // 2:
            cut = slash + 1
        pieces.append(word[:cut])
        word = word[cut:]
    return [*pieces, word] if word else pieces


def _wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap by display width; a word wider than ``width`` is cut into pieces."""
    lines: list[str] = []
    current = ""
    words = [piece for word in text.split() for piece in _split_long(word, max(width, 1))]
    for word in words:
        trial = f"{current} {word}" if current else word
        if current and display_width(trial) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return lines or [""]


def banner(lines: Sequence[str], style: _Style, kind: str = "alarm", width: int = 72) -> list[str]:
    """A box around ``lines`` (wrapped to fit), in the style's character set and colour.

    ``kind`` is ``"alarm"`` (red) or ``"caution"`` (yellow).
    """
    if style.ascii:
        top = bottom = "!" * width
        left, right = "!!  ", "  !!"
    else:
        top = "╔" + "═" * (width - 2) + "╗"
        bottom = "╚" + "═" * (width - 2) + "╝"
        left, right = "║  ", "  ║"
    inner = width - len(left) - len(right)
    out = [top]
    for line in lines:
        hang = "  " if line[:2] in ("- ", "• ") else ""
        parts = _wrap(line, inner - len(hang)) if line else [""]
        for k, part in enumerate(parts):
            part = f"{hang}{part}" if k else part
            pad = " " * max(0, inner - display_width(part))
            out.append(f"{left}{part}{pad}{right}")
    out.append(bottom)
    return [style.paint(line, kind) for line in out]


# -- pieces of one record -------------------------------------------------------------------------
def _by_fraction(subs: Any) -> list[Any]:
    """Hazard substances, the largest fitted fraction first (stable; the JSON keeps the
    library order): the entry that fits best leads the banner when near-identical analogues
    alarm together."""
    def key(sub: Any) -> float:
        try:
            return -float(sub.get("fraction") or 0.0) if isinstance(sub, Mapping) else 0.0
        except (TypeError, ValueError):
            return 0.0
    return sorted(list(subs or []), key=key)


def _substance_name(sub: Any) -> str:
    if isinstance(sub, Mapping):
        return str(sub.get("name") or sub.get("id") or "?")
    return str(sub)


def _substance_names(hazard: Mapping[str, Any]) -> list[str]:
    return [_substance_name(sub) for sub in _by_fraction(hazard.get("substances"))]


def is_opioid_hazard(hazard: Mapping[str, Any]) -> bool:
    """True when the hazard concerns a (possibly) fentanyl-class opioid.

    Decided from the substances' ``substance_class`` when the engine gives it, else from their
    names and from the hazard message (naloxone is the opioid antidote).
    """
    for sub in hazard.get("substances") or []:
        if isinstance(sub, Mapping):
            cls = str(sub.get("substance_class") or "").lower()
            if "opioid" in cls:
                return True
            text = f"{sub.get('name', '')} {sub.get('id', '')}".lower()
        else:
            text = str(sub).lower()
        if any(word in text for word in _OPIOID_WORDS):
            return True
    message = str(hazard.get("message") or "").lower()
    return "naloxone" in message or "opioid" in message


def _hazard_lines(record: Mapping[str, Any], lang: str, style: _Style) -> list[str]:
    hazard = record.get("hazard") or {}
    level = hazard_level(record)
    title = i18n.t(f"hazard.title.{level}", lang)
    lines = [title]
    if lang != "en":  # a mixed team (or a terminal without bidi support) still reads English
        lines.append(f"({i18n.t(f'hazard.title.{level}', 'en')})")
    opioid = is_opioid_hazard(hazard)
    if opioid:
        lines.append(i18n.t("hazard.opioid", lang))
    names = _substance_names(hazard)
    if names:
        lines.append(i18n.t("hazard.possible", lang, substances=", ".join(names)))
    if level in ALARM_LEVELS or opioid:
        lines.append("")
        if opioid:
            lines += [f"{style.bullet} " + i18n.t(k, lang)
                      for k in ("opioid.do_not_open", "opioid.ppe", "opioid.naloxone")]
        else:
            lines.append(f"{style.bullet} " + i18n.t("hazard.generic", lang))
        lines.append(f"{style.bullet} " + i18n.t("hazard.confirm_lab", lang))
    message = hazard.get("message")
    if message:
        lines.append(i18n.t("hazard.library_guidance", lang, message=str(message)))
    return banner(lines, style, "alarm" if is_alarm(level) else "caution")


def verdict_line(record: Mapping[str, Any], lang: str = "en") -> str:
    """The verdict of a record in plain words, in ``lang`` (one line)."""
    verdict = str(record.get("verdict") or "")
    candidates = record.get("candidates") or []
    if verdict == "match":
        name = candidates[0].get("name") if candidates else "?"
        return i18n.t("verdict.match", lang, name=name)
    if verdict == "mixture":
        comps = record.get("components") or []
        names = " + ".join(str(c.get("name") or c.get("id")) for c in comps) or "?"
        return i18n.t("verdict.mixture", lang, names=names)
    if verdict == "no_match" and is_hazard(record):
        # "not in the library" would contradict the alarm the hazard layer raised for an entry
        return i18n.t("verdict.no_match_hazard", lang)
    if verdict in ("no_match", "inconclusive"):
        return i18n.t(f"verdict.{verdict}", lang)
    return i18n.t("verdict.unknown", lang, verdict=verdict or "?")


def hazard_supplement(record: Mapping[str, Any], lang: str = "en") -> str | None:
    """For an alarm whose substances the verdict line does not name: ``+ Possibly present: ...``.

    Keeps "IDENTIFIED: Lactose" from reading as all-clear when the hazard layer found an opioid
    under the cutting agent.
    """
    if not is_hazard(record):
        return None
    named = {str(c.get("id")) for c in record.get("components") or []}
    if record.get("verdict") == "match" and record.get("candidates"):
        named.add(str(record["candidates"][0].get("id")))
    hazard = record.get("hazard") or {}
    missing = [_substance_name(sub) for sub in _by_fraction(hazard.get("substances"))
               if not (isinstance(sub, Mapping) and str(sub.get("id")) in named)]
    if not missing:
        return None
    return "+ " + i18n.t("hazard.possible", lang, substances=", ".join(missing))


def _fmt(value: Any, lang: str, digits: int = 2) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) or hasattr(value, "item"):
        try:
            v = float(value)
        except (TypeError, ValueError):
            return str(value)
        if not math.isfinite(v):
            return "-"
        return i18n.number(v, lang, digits)
    return "-" if value is None else str(value)


def _first(value: Any) -> Any:
    """QC values may come as 1-element lists; take the scalar."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return value


def _qc_line(record: Mapping[str, Any], lang: str, style: _Style) -> str | None:
    qc = record.get("qc") or {}
    parts = []
    if "snr" in qc:
        parts.append(f"{i18n.t('qc.snr', lang)} {_fmt(_first(qc['snr']), lang, 1)}")
    if "saturation" in qc:
        parts.append(f"{i18n.t('qc.saturation', lang)} {_fmt(_first(qc['saturation']), lang)}")
    if "fluorescence" in qc:
        parts.append(f"{i18n.t('qc.fluorescence', lang)} "
                     f"{_fmt(_first(qc['fluorescence']), lang)}")
    if "coverage" in qc:
        cov = _first(qc["coverage"])
        text = (f"{i18n.number(100 * float(cov), lang, 0)}%"
                if isinstance(cov, (int, float)) and not isinstance(cov, bool) else _fmt(cov, lang))
        parts.append(f"{i18n.t('qc.coverage', lang)} {text}")
    shift = record.get("shift_cm1", qc.get("shift_cm1"))
    if shift is not None:
        try:
            sign = "+" if float(shift) >= 0 else "-"
            parts.append(f"{i18n.t('qc.shift', lang)} {sign}"
                         f"{i18n.number(abs(float(shift)), lang, 1)} cm-1")
        except (TypeError, ValueError):
            pass
    if not parts:
        return None
    return f"{i18n.t('label.qc', lang)} " + style.sep.join(parts)


def _calibration_line(record: Mapping[str, Any], lang: str) -> str | None:
    cal = record.get("calibration")
    if not isinstance(cal, Mapping):
        return None
    state = str(cal.get("state") or "")
    age = cal.get("age_days")
    age_text = "?" if age is None else i18n.number(float(age), lang, 0)
    ident = cal.get("id") or "?"
    if state == "ok":
        return i18n.t("cal.ok", lang, id=ident, age=age_text)
    if state == "missing" and not cal.get("serial"):
        return i18n.t("cal.unknown_device", lang)
    if state == "missing" and cal.get("id") and not cal.get("applied"):
        # the device has a record but this scan did not get it: "none on record" would be false
        return i18n.t("cal.not_applied", lang, id=ident)
    if state == "missing" and cal.get("id") and cal.get("warning"):
        # the scan names a record that is not on this machine: the calibration part words it
        # (English only)
        return f"Calibration: {cal['warning']}"
    if state in ("missing", "stale", "failed"):
        return i18n.t(f"cal.{state}", lang, id=ident, age=age_text)
    return None


def _calibration_warning(warning: Mapping[str, Any], record: Mapping[str, Any],
                         lang: str) -> str | None:
    """A calibration warning, translated; None when the calibration line already shows it."""
    if isinstance(record.get("calibration"), Mapping):
        return None
    state = str(warning.get("state") or "")
    if state == "missing" and not _meta(record, "device_serial"):
        return i18n.t("cal.unknown_device", lang)
    if state in ("missing", "stale", "failed"):
        age = warning.get("age_days")
        return i18n.t(f"cal.{state}", lang, id=warning.get("id") or "?",
                      age="?" if age is None else i18n.number(float(age), lang, 0))
    message = warning.get("message")
    return None if message is None else str(message)


def _warning_text(warning: Any, lang: str, record: Mapping[str, Any] | None = None) -> str | None:
    """Translate a known warning code; otherwise return its English message."""
    if not isinstance(warning, Mapping):
        return str(warning)
    code = warning.get("code")
    if code == "non_measured_reference":
        entries = warning.get("entries") or warning.get("names") or []
        names = ", ".join(str(e.get("name", e)) if isinstance(e, Mapping) else str(e)
                          for e in entries) or "?"
        kind = str(warning.get("kind") or "in-silico")
        return i18n.t("warn.non_measured_reference", lang, kind=i18n.term(kind, lang),
                      names=names)
    if code == "no_measured_reference_for_class":
        cls = str(warning.get("substance_class") or warning.get("class") or "?")
        return i18n.t("warn.no_measured_reference_for_class", lang, cls=i18n.term(cls, lang))
    if code == "calibration" and record is not None:
        return _calibration_warning(warning, record, lang)
    message = warning.get("message")
    return None if message is None else str(message)


def _meta(record: Mapping[str, Any], key: str) -> Any:
    if record.get(key) is not None:
        return record.get(key)
    meta = record.get("meta")
    return meta.get(key) if isinstance(meta, Mapping) else None


def _device_line(record: Mapping[str, Any], lang: str, style: _Style) -> str | None:
    parts = []
    serial = _meta(record, "device_serial")
    model = _meta(record, "device_model")
    if serial or model:
        parts.append(" ".join(str(p) for p in (model, serial) if p))
    laser = _meta(record, "laser_nm")
    if laser:
        parts.append(f"{_fmt(laser, lang, 1)} nm")
    integ = _meta(record, "integration_ms")
    if integ:
        parts.append(f"{_fmt(integ, lang, 0)} ms")
    when = _meta(record, "timestamp")
    if when:
        parts.append(str(when))
    if not parts:
        return None
    return i18n.t("label.device", lang, device=style.sep.join(parts))


def is_simulated(record: Mapping[str, Any]) -> bool:
    """True when the record's scan is marked as simulated (``simulated`` key or meta)."""
    return bool(_meta(record, "simulated"))


def render_record(record: Mapping[str, Any], lang: str = "en", *, style: _Style | None = None,
                  index: int = 1, total: int = 1) -> str:
    """Render one result record as a block of text (no trailing newline)."""
    style = style or _Style(False, False)
    lines: list[str] = []
    source = str(record.get("source") or "<unknown>")
    lines.append(style.paint(i18n.t("label.scan", lang, i=index, n=total, source=source), "dim"))
    if is_simulated(record):
        lines.append(style.paint(f"[{i18n.t('simulated', lang)}]", "yellow"))
    if has_hazard_notice(record):
        lines.extend(_hazard_lines(record, lang, style))
    verdict = verdict_line(record, lang)
    lines.append(style.paint(verdict, "red" if is_hazard(record) else "bold"))
    extra = hazard_supplement(record, lang)
    if extra:
        lines.append(style.paint(extra, "red"))
    if record.get("reason"):
        lines.append("  " + i18n.t("label.reason", lang, reason=record["reason"]))
    candidates = record.get("candidates") or []
    if candidates:
        lines.append(i18n.t("label.candidates", lang))
        width = max(display_width(str(c.get("name") or c.get("id"))) for c in candidates)
        for k, cand in enumerate(candidates, 1):
            name = str(cand.get("name") or cand.get("id"))
            pad = " " * (width - display_width(name))
            lines.append(f"  {k}. {name}{pad}  {_fmt(cand.get('score'), lang)}")
    components = record.get("components") or []
    if components:
        lines.append(i18n.t("label.components", lang))
        for comp in components:
            frac = comp.get("fraction")
            frac_text = ("-" if frac is None
                         else f"{i18n.number(100 * float(frac), lang, 0)}%")
            lines.append(f"  {style.bullet} {comp.get('name') or comp.get('id')}  {frac_text}")
    qc = _qc_line(record, lang, style)
    if qc:
        lines.append(qc)
    device = _device_line(record, lang, style)
    if device:
        lines.append(device)
    cal = _calibration_line(record, lang)
    if cal:
        state = (record.get("calibration") or {}).get("state")
        lines.append(style.paint(cal, "yellow") if state != "ok" else cal)
    warnings = [w for w in (_warning_text(w, lang, record) for w in record.get("warnings") or [])
                if w]
    if warnings:
        lines.append(style.paint(i18n.t("label.warnings", lang), "yellow"))
        lines.extend(f"  {style.bullet} {w}" for w in warnings)
    lib = record.get("library") or {}
    if lib:
        sha = str(lib.get("sha256") or "?")[:12]
        lines.append(style.paint(i18n.t("label.library", lang, version=lib.get("version", "?"),
                                        sha=sha), "dim"))
    return "\n".join(lines)


def render_summary(records: Sequence[Mapping[str, Any]], errors: int = 0, lang: str = "en", *,
                   style: _Style | None = None) -> str:
    """The summary line (plus a banner naming the hazardous scans, if any)."""
    style = style or _Style(False, False)
    counts = dict.fromkeys(VERDICTS, 0)
    for r in records:
        v = str(r.get("verdict"))
        if v in counts:
            counts[v] += 1
    hazards = [r for r in records if is_hazard(r)]
    line = i18n.t("summary", lang, n=len(records) + errors, hazard=len(hazards), errors=errors,
                  **counts)
    out = [style.paint(line, "bold")]
    if hazards:
        worst = max((hazard_level(r) for r in hazards), key=HAZARD_LEVELS.index)
        names = [f"{r.get('source') or '<unknown>'}: "
                 f"{', '.join(_substance_names(r.get('hazard') or {})) or hazard_level(r)}"
                 for r in hazards]
        out.extend(banner([i18n.t(f"hazard.title.{worst}", lang), *names], style,
                          "alarm" if is_alarm(worst) else "caution"))
    return "\n".join(out)


def render_text(records: Sequence[Mapping[str, Any]], lang: str = "en",
                color: bool | None = None, *, ascii_only: bool | None = None, errors: int = 0,
                summary: bool | None = None, stream: TextIO | None = None) -> str:
    """Render result records for a terminal.

    Parameters
    ----------
    records
        Result records (the JSON contract of ``ramanid identify --json``).
    lang
        Language code (see :data:`ramanid.i18n.LANGS`); unknown codes fall back to English.
    color
        ANSI colour on/off; ``None`` decides from ``stream`` (:func:`color_enabled`).
    ascii_only
        Plain ASCII box and bullets; ``None`` decides from whether ``stream`` can encode
        box-drawing characters.
    errors
        Number of inputs that could not be read (counted in the summary line).
    summary
        Print the summary line; ``None`` means when there is more than one scan or any error.
    stream
        The stream the text is meant for (default stdout); only used for the automatic choices.

    Returns
    -------
    str
        The text, ending with a newline (empty string when there is nothing to show).
    """
    lang = i18n.normalise_lang(lang) or "en"
    if color is None:
        color = color_enabled(stream)
    if ascii_only is None:
        ascii_only = not can_encode("╔═║•·", stream)
    style = _Style(bool(color), bool(ascii_only))
    total = len(records)
    blocks = [render_record(r, lang, style=style, index=i, total=total)
              for i, r in enumerate(records, 1)]
    if summary is None:
        summary = total > 1 or errors > 0
    if summary:
        blocks.append(render_summary(records, errors, lang, style=style))
    return "\n\n".join(blocks) + "\n" if blocks else ""
