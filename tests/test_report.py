"""Field output: message catalogue, hazard banner, colour rules, exit status, JSON lines.

The records here are written by hand in the JSON contract's shape (documented in
docs/readme/identify.md); end-to-end runs against the real engine and library are in
tests/test_cli_identify.py.
"""

from __future__ import annotations

import io
import json
import re
import string

import numpy as np
import pytest

from ramanid import i18n
from ramanid.report import (
    color_enabled,
    display_width,
    exit_status,
    is_hazard,
    is_opioid_hazard,
    json_line,
    render_summary,
    render_text,
    to_jsonable,
)


def _record(level: str = "none", substances=(), verdict: str = "match", **over):
    rec = {
        "source": "parcel-17.csv",
        "verdict": verdict,
        "reason": "best score above the library's decision threshold",
        "hazard": {"level": level, "substances": list(substances),
                   "message": "handle per protocol" if level != "none" else None},
        "candidates": [{"id": "a1", "name": "lactose", "score": 0.97},
                       {"id": "b2", "name": "sucrose", "score": 0.51}],
        "components": [],
        "qc": {"snr": 88.0, "saturation": 0.0, "fluorescence": 0.2, "coverage": 0.95},
        "library": {"version": "1.2.0", "sha256": "f" * 64},
        "recipe": {"name": "ramanid-default", "version": "1"},
        "engine_version": "1.0",
        "shift_cm1": -1.5,
        "warnings": [],
    }
    rec.update(over)
    return rec


FENTANYL = {"id": "f1", "name": "fentanyl", "substance_class": "fentanyl-class opioid",
            "hazard_level": "extreme", "provenance_kind": "in-silico"}

BOX_CHARS = "╔╗╚╝║═"


# -- catalogue ------------------------------------------------------------------------------------
def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_every_message_has_all_languages_with_the_same_placeholders():
    assert set(i18n.LANGS) == {"en", "es", "fr", "pt", "ru", "ar"}
    for key, entry in i18n.MESSAGES.items():
        assert set(entry) == set(i18n.LANGS), key
        for lang, text in entry.items():
            assert text.strip(), (key, lang)
            assert _fields(text) == _fields(entry["en"]), (key, lang)
        # non-English texts are translations, not copies (single words like "saturation" in
        # French are allowed to coincide)
        if len(entry["en"].split()) > 2:
            assert all(entry[lang] != entry["en"] for lang in i18n.LANGS if lang != "en"), key


def test_catalogue_carries_the_reviewer_note():
    assert "native speaker" in (i18n.__doc__ or "")


@pytest.mark.parametrize(("arg", "env", "expected"), [
    ("fr", {"RAMANID_LANG": "es", "LANG": "ru_RU.UTF-8"}, "fr"),
    (None, {"RAMANID_LANG": "pt-BR", "LANG": "ru_RU.UTF-8"}, "pt"),
    (None, {"LC_ALL": "ar_EG.UTF-8", "LANG": "fr_FR.UTF-8"}, "ar"),
    (None, {"LC_MESSAGES": "es_MX", "LANG": "fr_FR.UTF-8"}, "es"),
    (None, {"LANG": "ru_RU.UTF-8"}, "ru"),
    (None, {"LANG": "de_DE.UTF-8"}, "en"),
    (None, {"LANG": "C.UTF-8"}, "en"),
    (None, {}, "en"),
    ("xx", {"RAMANID_LANG": "fr"}, "fr"),
])
def test_language_resolution_order(arg, env, expected):
    assert i18n.resolve_lang(arg, env) == expected


def test_numbers_use_the_language_decimal_separator():
    assert i18n.number(0.875, "en") == "0.88"
    assert i18n.number(0.875, "fr") == "0,88"
    assert i18n.number(12.0, "ru", 1) == "12,0"


# -- the hazard banner ----------------------------------------------------------------------------
@pytest.mark.parametrize("lang", i18n.LANGS)
def test_opioid_banner_gives_the_three_instructions_in_every_language(lang):
    text = render_text([_record("extreme", [FENTANYL], verdict="mixture",
                                components=[{"id": "a1", "name": "lactose", "fraction": 0.8},
                                            {"id": "f1", "name": "fentanyl", "fraction": 0.2}])],
                       lang, color=False, ascii_only=False)
    flat = " ".join(text.split())
    for key in ("hazard.title.extreme", "hazard.opioid", "opioid.do_not_open", "opioid.ppe",
                "opioid.naloxone", "hazard.confirm_lab"):
        # wrapped lines inside the box: compare word by word
        words = i18n.t(key, lang).split()
        assert all(w in flat for w in words), (lang, key)
    assert text.index("╔") < text.index(i18n.t("verdict.mixture", lang, names="lactose + fentanyl"))
    if lang != "en":  # English title kept for mixed teams
        assert i18n.t("hazard.title.extreme", "en") in text


def test_non_opioid_hazard_gets_generic_instructions_not_naloxone():
    text = render_text([_record("high", ["ammonium nitrate"])], "en", color=False)
    assert "DANGER: HIGH HAZARD" in text
    assert "ammonium nitrate" in text
    assert i18n.t("hazard.generic") in " ".join(text.split())
    assert "naloxone" not in text.lower()


def test_analogues_alarming_together_are_listed_best_fit_first():
    """Near-identical analogues alarm together; the banner and the "+ Possibly present" line
    lead with the one that fits best (largest fraction), the JSON keeps the library order."""
    subs = [dict(FENTANYL, id=f"f{i}", name=name, fraction=frac)
            for i, (name, frac) in enumerate([("acetylfentanyl", 0.18), ("carfentanil", 0.19),
                                              ("fentanyl", 0.21), ("furanylfentanyl", 0.17)])]
    rec = _record("extreme", subs)
    text = " ".join(render_text([rec], "en", color=False, ascii_only=True).split())
    order = [text.index(n + ",") if n + "," in text else text.index(n)
             for n in ("fentanyl, carfentanil", "carfentanil, acetylfentanyl",
                       "acetylfentanyl, furanylfentanyl")]
    assert order == sorted(order)
    assert [s["name"] for s in json.loads(json_line(rec))["hazard"]["substances"]] == \
        ["acetylfentanyl", "carfentanil", "fentanyl", "furanylfentanyl"]


def test_no_banner_without_hazard():
    text = render_text([_record()], "en", color=False)
    assert not any(c in text for c in BOX_CHARS + "!")
    assert text.splitlines()[1] == "IDENTIFIED: lactose"


def test_opioid_detection_from_class_name_or_message():
    assert is_opioid_hazard({"substances": [FENTANYL]})
    assert is_opioid_hazard({"substances": ["carfentanil"]})
    assert is_opioid_hazard({"substances": ["X"], "message": "Keep NALOXONE ready"})
    assert not is_opioid_hazard({"substances": ["ammonium nitrate"], "message": "oxidiser"})


def test_banner_lines_have_equal_width_in_every_language():
    for lang in i18n.LANGS:
        text = render_text([_record("extreme", [FENTANYL])], lang, color=False, ascii_only=False)
        box = [ln for ln in text.splitlines() if ln[:1] in "╔║╚"]
        assert len(box) >= 8
        assert len({display_width(ln) for ln in box}) == 1, lang


@pytest.mark.parametrize("ascii_only", [False, True])
def test_long_paths_stay_inside_the_frame_in_every_language(ascii_only):
    long = "/tmp/v/lib/python3.11/site-packages/" + "very-long-directory-name/" * 4
    recs = [_record("extreme", [FENTANYL], source=long + "fentanyl_sample.csv"),
            _record("high", ["ammonium nitrate"], source=long + "ammonium_nitrate.csv"),
            _record("high", ["ammonium nitrate"], source="x" * 150 + ".csv")]
    edge = "!" if ascii_only else "╔║╚"
    for lang in i18n.LANGS:
        text = render_text(recs, lang, color=False, ascii_only=ascii_only)
        box = [ln for ln in text.splitlines() if ln[:1] and ln[:1] in edge]
        assert box and len({display_width(ln) for ln in box}) == 1, lang
        flat = "".join(ln[4:-4].strip() if ascii_only else ln[3:-3].strip() for ln in box)
        # nothing is lost: the whole path can still be read off the wrapped lines
        assert (long + "ammonium_nitrate.csv:").replace(" ", "") in flat.replace(" ", "")
        assert "x" * 150 in flat


def test_ascii_fallback_has_no_box_characters():
    text = render_text([_record("extreme", [FENTANYL])], "en", color=False, ascii_only=True)
    assert text.isascii()
    assert "!" * 72 in text
    assert "DO NOT OPEN" in text


def test_ascii_chosen_automatically_for_an_ascii_stream():
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    text = render_text([_record("high", ["ammonium nitrate"])], "en", stream=stream)
    assert text.isascii() and "!!" in text


def test_colour_only_on_a_terminal_without_no_color():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert color_enabled(Tty(), {"TERM": "xterm"})
    assert not color_enabled(Tty(), {"TERM": "xterm", "NO_COLOR": ""})
    assert not color_enabled(Tty(), {"TERM": "dumb"})
    assert not color_enabled(io.StringIO(), {"TERM": "xterm"})
    red = render_text([_record("extreme", [FENTANYL])], "en", color=True)
    assert "\x1b[1;97;41m" in red  # white on red banner
    plain = render_text([_record("extreme", [FENTANYL])], "en", color=False)
    assert "\x1b[" not in plain


def test_low_level_is_a_caution_box_without_alarm():
    rec = _record("low", ["sodium hydroxide"])
    text = render_text([rec], "en", color=True)
    assert "CAUTION: HAZARDOUS SUBSTANCE" in text
    assert "\x1b[1;30;43m" in text and "\x1b[1;97;41m" not in text
    assert not is_hazard(rec)
    assert exit_status([rec]) == 0


def test_unknown_hazard_level_is_treated_as_extreme():
    rec = _record("catastrophic", ["X"])
    assert is_hazard(rec)
    assert "EXTREME" in render_text([rec], "en", color=False)


# -- sections -------------------------------------------------------------------------------------
def test_calibration_line_never_calls_an_unapplied_record_valid():
    base = {"serial": "RUW", "age_days": 0.2, "applied": False}
    cases = {"missing": ("cal-9", "not applied"), "failed": ("cal-8", "FAILED")}
    for state, (ident, word) in cases.items():
        rec = _record(calibration={**base, "state": state, "id": ident}, device_serial="RUW")
        line = next(ln for ln in render_text([rec], "en", color=False).splitlines()
                    if ln.startswith("Calibration"))
        assert word in line and ident in line and "valid" not in line, line
        for lang in i18n.LANGS:
            assert ident in render_text([rec], lang, color=False)
    none = _record(calibration={**base, "state": "missing", "id": None}, device_serial="RUW")
    assert "none on record" in render_text([none], "en", color=False)


def test_candidates_qc_calibration_and_translated_warnings():
    rec = _record(
        "none", verdict="no_match",
        calibration={"state": "stale", "id": "cal-7", "serial": "WP-01990", "age_days": 412.3},
        device_serial="WP-01990", laser_nm=785.0,
        warnings=[{"code": "no_measured_reference_for_class",
                   "substance_class": "fentanyl-class opioid", "message": "english text"},
                  {"code": "non_measured_reference", "entries": ["fentanyl"],
                   "kind": "in-silico", "message": "english text"},
                  "a plain warning string"])
    text = render_text([rec], "es", color=False)
    assert "SIN COINCIDENCIA" in text
    assert "1. lactose" in text and "0,97" in text
    assert "señal/ruido 88,0" in text and "cobertura del eje 95%" in text
    assert "-1,5 cm-1" in text
    assert "CADUCADA (cal-7, antigüedad 412 días)" in text
    assert "WP-01990" in text and "785,0 nm" in text
    assert "opioides del grupo del fentanilo" in text and "NO descarta su presencia" in text
    assert "calculada in silico" in text and "Confírmelo en un laboratorio" in text
    assert "a plain warning string" in text
    assert "english text" not in text  # known codes are translated, not echoed in English
    assert "Biblioteca: 1.2.0 (sha256 ffffffffffff)" in text


def test_simulated_scan_is_labelled():
    text = render_text([_record(simulated=True)], "pt", color=False)
    assert "Exemplo SIMULADO" in text


def test_summary_counts_and_repeats_hazards():
    recs = [_record(), _record("extreme", [FENTANYL], source="b.csv"),
            _record(verdict="inconclusive", candidates=[], source="c.csv")]
    text = render_text(recs, "en", color=False, errors=2)
    line = next(ln for ln in text.splitlines() if ln.startswith("Summary"))
    assert re.search(r"scans: 5 .*identified: 2 .*inconclusive: 1 .*HAZARD: 1 .*unreadable: 2",
                     line)
    tail = text[text.index("Summary"):]
    assert "b.csv: fentanyl" in tail and "parcel-17" not in tail
    assert render_summary([], 1, "en").startswith("Summary - scans: 1")
    # one scan, no error: no summary line
    assert "Summary" not in render_text([_record()], "en", color=False)


# -- exit status and JSON -------------------------------------------------------------------------
def test_exit_status_precedence():
    ok, haz = _record(), _record("high", ["ammonium nitrate"])
    assert exit_status([ok]) == 0
    assert exit_status([ok], input_errors=1) == 1
    assert exit_status([ok, haz]) == 3
    assert exit_status([haz], input_errors=4) == 3  # hazard wins over input error
    assert exit_status([], input_errors=1) == 1
    assert exit_status([]) == 0


def test_json_line_is_one_strict_json_line():
    rec = _record(qc={"snr": np.float32(12.5), "saturation": np.nan, "coverage": np.array([1.0])},
                  shift_cm1=np.float64(np.inf), name="лактоза")
    line = json_line(rec)
    assert "\n" not in line
    back = json.loads(line)
    assert back["qc"] == {"snr": 12.5, "saturation": None, "coverage": [1.0]}
    assert back["shift_cm1"] is None
    assert back["name"] == "лактоза"
    assert to_jsonable((1, np.int64(2))) == [1, 2]


def test_no_match_under_an_alarm_does_not_claim_the_substance_is_absent() -> None:
    from ramanid import i18n
    from ramanid.report import verdict_line

    record = {"verdict": "no_match", "candidates": [{"id": "f", "name": "Fentanyl", "score": 0.9}],
              "hazard": {"level": "extreme", "substances": ["Fentanyl"], "message": "x"}}
    for lang in ("en", "es", "fr", "pt", "ru", "ar"):
        line = verdict_line(record, lang)
        assert line == i18n.t("verdict.no_match_hazard", lang)
        assert line != i18n.t("verdict.no_match", lang)
    quiet = {**record, "hazard": {"level": "none", "substances": [], "message": None}}
    assert verdict_line(quiet, "en") == i18n.t("verdict.no_match", "en")
