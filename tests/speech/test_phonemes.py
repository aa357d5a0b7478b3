"""espeak mnemonic → shape tables, the fallback, and coverage on real espeak output."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatarcast.speech.phonemes import (
    CMN_SHAPES,
    EN_SHAPES,
    fallback_shape,
    is_modifier,
    is_pause,
    language_marker,
    shape_for,
    table_language,
)
from avatarcast.speech.tts import get_backend
from avatarcast.speech.visemes import Shape

ENGLISH_TEXT = (
    "The quick brown fox jumps over the lazy dog. Sphinx of black quartz, judge my vow. "
    "She sells seashells; measure the pleasure of leisure and vision. Church, judge, thin, "
    "this, singing. Father, car, bird, her, poor, tour, pure, boy, coin, cow, house, go, "
    "boat, rude, book, good, cup, love. About the sofa, banana, happy, city, little, "
    "bottle, button, rhythm. Air, care, near, here, more, four, start, north, nurse, "
    "thought, cloth, lot, palm, bath, trap, dress, kit, fleece, goose, face, price, choice, "
    "mouth, goat. Genre, beige, azure, loch, hue, huge, news, better water, uh-oh."
)
MANDARIN_TEXT = (
    "你好，欢迎光临。我们是中国人，今天天气很好。北京大学的学生喜欢吃饺子和面条。"
    "请问，洗手间在哪里？日本人热爱和平。这个女孩儿去旅游了，绿色的月亮。春夏秋冬，东南西北。"
    "看开客饭菜草从风发飞法翻粉。水追吹最岁对推贵亏灰谁。女绿旅虐略决缺靴卷圈选君群熏。"
    "瓜夸花抓刷耍。光框黄庄窗双。翁熊兄穷琼用永。儿子耳朵二月。"
)


@pytest.mark.parametrize(
    ("mnemonic", "shape"),
    [
        ("p", Shape.A), ("b", Shape.A), ("m", Shape.A), ("f", Shape.G), ("v", Shape.G),
        ("l", Shape.H), ("w", Shape.F), ("r", Shape.E), ("s", Shape.B), ("tS", Shape.B),
        ("i:", Shape.B), ("a", Shape.C), ("aI", Shape.C), ("A:", Shape.D), ("aU", Shape.D),
        ("O:", Shape.E), ("3:", Shape.E), ("u:", Shape.F), ("oU", Shape.F), ("@", Shape.C),
        ("_", Shape.X), ("_:", Shape.X),
    ],
)  # fmt: skip
def test_english_table(mnemonic: str, shape: Shape) -> None:
    assert shape_for(mnemonic, "en-us") is shape


@pytest.mark.parametrize(
    ("mnemonic", "shape"),
    [
        ("p", Shape.A), ("ph", Shape.A), ("m", Shape.A), ("f", Shape.G), ("l", Shape.H),
        ("tS;h", Shape.B), ("ts.", Shape.B), ("s", Shape.B), ("z.", Shape.E), ("A", Shape.D),
        ("a", Shape.C), ("o-", Shape.C), ("i", Shape.B), ("u", Shape.F), ("y", Shape.F),
        ("@r", Shape.E), ("ong", Shape.F), ("uo", Shape.E), ("_|", Shape.X),
    ],
)  # fmt: skip
def test_mandarin_table(mnemonic: str, shape: Shape) -> None:
    assert shape_for(mnemonic, "cmn") is shape
    assert shape_for(mnemonic, "cmn-latn-pinyin") is shape


def test_tables_are_complete_shapes() -> None:
    for table in (EN_SHAPES, CMN_SHAPES):
        assert all(isinstance(s, Shape) and s is not Shape.X for s in table.values())
    assert table_language("zh") == "cmn" and table_language("en-gb-x-rp") == "en"


def test_helpers() -> None:
    assert is_pause("_") and is_pause("_:") and is_pause("_|") and not is_pause("a")
    assert is_modifier(";") and not is_modifier("_:") and not is_modifier("tS;")
    assert language_marker("(en)") == "en" and language_marker("a") is None


def test_unknown_mnemonic_falls_back_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="avatarcast.speech.phonemes")
    assert shape_for("oQ", "en") is Shape.E  # vowel-ish, rounded first letter
    assert shape_for("oQ", "en") is Shape.E
    assert len([r for r in caplog.records if "oQ" in r.message]) == 1
    assert shape_for("n-", "en") is Shape.B
    assert shape_for("t#", "en") is Shape.B


@pytest.mark.parametrize(
    ("mnemonic", "shape"),
    [
        ("p", Shape.A), ("bh", Shape.A), ("v", Shape.G), ("l^", Shape.H), ("w", Shape.F),
        ("R", Shape.E), ("a:", Shape.D), ("e", Shape.C), ("o", Shape.E), ("y", Shape.F),
        ("i", Shape.B), ("I", Shape.C), ("x", Shape.B), ("kh", Shape.B), ("_!", Shape.X),
    ],
)  # fmt: skip
def test_fallback(mnemonic: str, shape: Shape) -> None:
    assert fallback_shape(mnemonic) is shape
    assert shape_for(mnemonic, "de") is shape  # languages without a table use it


@given(st.text(max_size=8), st.sampled_from(["en", "cmn", "de", "fr", "xx-yy"]))
def test_never_raises(mnemonic: str, language: str) -> None:
    assert isinstance(shape_for(mnemonic, language), Shape)


@pytest.mark.parametrize(("voice", "text"), [("en-us", ENGLISH_TEXT), ("en-gb", ENGLISH_TEXT),
                                             ("cmn", MANDARIN_TEXT)])  # fmt: skip
def test_real_output_is_covered(voice: str, text: str, caplog: pytest.LogCaptureFixture) -> None:
    """Every mnemonic espeak uses for this broad text is in the table: no fallback warnings."""
    caplog.set_level(logging.WARNING, logger="avatarcast.speech.phonemes")
    utt = get_backend().synthesize(text, voice=voice)
    assert not [r.message for r in caplog.records if "not in the shape table" in r.message]
    shapes = {s.shape for s in utt.phonemes}
    assert shapes >= {Shape.A, Shape.B, Shape.C, Shape.D, Shape.E, Shape.F, Shape.G, Shape.H}


@pytest.mark.parametrize(("voice", "text"), [("de", "Guten Morgen, wie geht es Ihnen?"),
                                             ("fr", "Bonjour, comment allez-vous?"),
                                             ("es", "Buenos días, ¿cómo está usted?"),
                                             ("ja", "こんにちは")])  # fmt: skip
def test_other_languages_work(voice: str, text: str) -> None:
    utt = get_backend().synthesize(text, voice=voice)
    shapes = {s.shape for s in utt.phonemes}
    assert Shape.X in shapes and len(shapes) >= 3
