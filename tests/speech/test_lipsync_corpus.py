"""The training corpus' text handling (tools/lipsync_corpus.py): what reaches the aligner."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import lipsync_corpus


def test_asterisk_prompt_texts_become_alignable_words() -> None:
    words = lipsync_corpus._prompt_words
    assert words("Please press 1 to mute, 2 to lock.") == "please press one to mute two to lock"
    assert words("press * to pause, press # to enter") == "press star to pause press pound to enter"
    assert words("That agent is already logged on.") == "that agent is already logged on"
    # Tones have no words; a longer number's reading is ambiguous ("500": five hundred? five
    # oh oh?), so such prompts are left out rather than aligned to a guess.
    assert words("[ascending tones]") is None
    assert words("dial 500 to attempt a connection") is None
    assert words("a 28.8 kilobit modem") is None


def test_found_speech_list_names_a_package_licence_and_words_for_every_clip() -> None:
    doc = lipsync_corpus._found_doc()
    packages, clips = doc["packages"], doc["clips"]
    assert all(info["version"] and info["licence"] for info in packages.values())
    assert {c["package"] for c in clips} == set(packages)
    assert all(c["speaker"] and c["path"] and c["text_origin"] for c in clips)
    # Texts with a longer number are left out of alignment; nearly all must remain.
    alignable = [c for c in clips if lipsync_corpus._prompt_words(c["text"])]
    assert len(alignable) >= 0.95 * len(clips), (len(alignable), len(clips))
