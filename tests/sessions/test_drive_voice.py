"""SEND_TEXT with a natural voice (Data.Voice "joe"): spoken sentence by sentence; the channel
is free as soon as the first sentence is queued, so an Interrupt is not held up."""

from __future__ import annotations

import pytest
from drive_harness import REQ, Harness, arun, msg

from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.timeline import Engine
from avatarcast.speech.piper_tts import PiperBackend
from avatarcast.speech.tts import get_backend

pytestmark = pytest.mark.skipif(not PiperBackend().voices(), reason="piper voice not installed")

LONG = (
    "Welcome to the show, everybody. Today we talk about maps and the people who made them. "
    "The first maps were drawn on clay. Later they were printed on paper. "
    "Now they live in our phones, and nobody gets lost any more."
)


@arun
async def test_text_in_the_joe_voice_plays_and_can_be_interrupted() -> None:
    h = Harness(engine=Engine(load_avatar("default"), tts=get_backend("auto")))
    get_backend("piper").synthesize("Hi.", voice="joe")  # load the model outside the timer
    back = await h.send(msg(REQ[0], "SEND_TEXT", {"Text": "Bob made a map.", "Voice": "joe"}))
    assert not [m for m in back if m["Type"] == 9], back
    await h.until_status(REQ[0], "TextOver")
    assert h.statuses(REQ[0]) == [
        ("WaitingTextStart", None),
        ("TextStart", None),
        ("WaitingTextOver", None),
        ("TextOver", 1),
    ]
    played = h.played(REQ[0])
    assert played.size > 0.8 * 16000 and abs(played.astype(float)).max() > 3000
    # Long text: the reply comes once the first sentence is queued; an interrupt then cuts
    # it at the next frame and the rest is never played.
    await h.send(msg(REQ[1], "SEND_TEXT", {"Text": LONG, "Voice": "joe"}))
    await h.until_status(REQ[1], "TextStart")
    await h.step(10)
    await h.send(msg(REQ[2], "SEND_TEXT", {"Text": "", "Interrupt": True}))
    await h.until_status(REQ[1], "TextOver", limit=5)
    assert h.statuses(REQ[1])[-1] == ("TextOver", 3)
    assert h.played(REQ[1]).size < 4 * 16000  # LONG is ~12 s
    # An unknown voice name is a Type 9 (-111005 text input), nothing plays.
    errors = await h.send(msg(REQ[3], "SEND_TEXT", {"Text": "Hi.", "Voice": "en_GB-nobody"}))
    assert [m["ErrorCode"] for m in errors if m["Type"] == 9] == [-111005], errors
