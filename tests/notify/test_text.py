"""Length arithmetic of the channels: UTF-16 units, clean cuts, SMS encodings and segments."""

from __future__ import annotations

import pytest

from ubot.notify.channels.text import (
    GSM7_BASIC,
    fit_sms,
    sms_encoding,
    sms_segments,
    sms_units,
    truncate,
    utf16_len,
)


def test_utf16_len():
    assert utf16_len("") == 0
    assert utf16_len("abc") == 3
    assert utf16_len("é€ж") == 3  # all in the Basic Multilingual Plane
    assert utf16_len("📈") == 2  # a surrogate pair
    assert utf16_len("👩‍💻") == 5  # woman + zero-width joiner + laptop


def test_truncate_keeps_what_fits():
    assert truncate("short", 5) == "short"
    assert truncate("", 0) == ""


def test_truncate_cuts_at_a_word_with_an_ellipsis():
    text = "Bitcoin crossed its two hundred day moving average today"
    cut = truncate(text, 30)
    assert cut == "Bitcoin crossed its two…"
    assert len(cut) <= 30


def test_truncate_cuts_inside_a_long_word_when_there_is_no_space():
    assert truncate("x" * 100, 10) == "x" * 9 + "…"


def test_truncate_in_utf16_units_never_splits_a_pair():
    cut = truncate("📈" * 10, 7, measure=utf16_len)
    assert cut == "📈📈📈…"
    assert utf16_len(cut) == 7


def test_truncate_keeps_combining_marks_with_their_letter():
    text = "e\u0301" * 10  # é as e + combining acute
    cut = truncate(text, 6)
    assert cut == "e\u0301e\u0301…"  # never an "e" without its accent


def test_gsm7_alphabet():
    assert len(GSM7_BASIC) == 127  # 128 code points minus the escape
    assert sms_encoding("Hello @ £5 [x] {y} €") == "GSM-7"
    assert sms_encoding("Grüße, Ñoño, Ça va") == "GSM-7"
    assert sms_encoding("Ñandú") == "UCS-2"  # ú is not in GSM-7 (ù is)
    assert sms_encoding("naïve") == "UCS-2"  # ï is not in GSM-7
    assert sms_encoding("curly ’quote’") == "UCS-2"
    assert sms_encoding("📈") == "UCS-2"


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        ("", 0, 0),
        ("a", 1, 1),
        ("a" * 160, 160, 1),
        ("a" * 161, 161, 2),
        ("a" * 306, 306, 2),
        ("a" * 307, 307, 3),
        ("€" * 80, 160, 1),  # extension characters take two septets
        ("€" * 81, 162, 2),
        ("a" * 152 + "€" + "a" * 152, 306, 3),  # the escape pair is not split across segments
        ("ж" * 70, 70, 1),
        ("ж" * 71, 71, 2),
        ("ж" * 134, 134, 2),
        ("ж" * 135, 135, 3),
        ("📈" * 35, 70, 1),
        ("ж" * 66 + "📈" + "ж" * 66, 134, 3),  # a surrogate pair is not split across segments
    ],
)
def test_segments(text, units, segments):
    assert (sms_units(text), sms_segments(text)) == (units, segments)


def test_fit_sms_leaves_a_text_that_fits():
    assert fit_sms("a" * 160, 1) == "a" * 160
    assert fit_sms("a" * 459, 3) == "a" * 459


def test_fit_sms_in_gsm7_uses_three_dots():
    text = "Alert: BTC crossed its average. " * 20
    cut = fit_sms(text, 2)
    assert cut.endswith("...") and sms_encoding(cut) == "GSM-7"
    assert sms_segments(cut) == 2
    assert len(cut) > 280  # close to the 306 septets of two segments


def test_fit_sms_in_ucs2_uses_the_ellipsis_character():
    text = "Биткоин вырос на пять процентов. " * 10
    cut = fit_sms(text, 1)
    assert cut.endswith("…") and sms_segments(cut) == 1 and utf16_len(cut) <= 70


def test_fit_sms_drops_trailing_non_gsm_characters_when_that_saves_segments():
    text = "a" * 150 + " 📈📈📈📈📈📈📈📈📈📈"
    cut = fit_sms(text, 1)
    assert sms_encoding(cut) == "GSM-7" and cut.endswith("...") and sms_segments(cut) == 1


def test_fit_sms_with_a_character_cap_stays_in_gsm7():
    cut = fit_sms("word " * 1000, 20, max_chars=1600)
    assert len(cut) <= 1600 and cut.endswith("...") and sms_encoding(cut) == "GSM-7"
