"""The wire-code table and `public_reason`: what a caller is told about a failure."""

from __future__ import annotations

import logging

import pytest

from avatarcast import errors
from avatarcast.codes import INTERNAL, SESSION_CLOSED, public_reason, wire_code, wire_codes

log = logging.getLogger("test-codes")


def test_most_specific_class_wins_and_unknown_is_internal() -> None:
    assert wire_code(errors.UnknownAvatarError("x")) == 100015  # before InputError's 100001
    assert wire_code(errors.RequestError("x")) == 100001
    assert wire_code(errors.SessionClosed("x")) == SESSION_CLOSED
    assert wire_code(errors.EncoderError("x")) == INTERNAL
    assert wire_code(KeyError("x")) == INTERNAL
    assert {0, INTERNAL, -111004} <= set(wire_codes())


def test_our_error_says_its_message_and_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test-codes")
    code, message = public_reason(errors.SessionNotFound("no session abc"), log, "call failed")
    assert (code, message) == (110018, "no session abc")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "exc", [ValueError("secret detail"), errors.EncoderError("secret detail")], ids=repr
)
def test_a_bug_is_logged_whole_and_told_only_that_it_happened(
    exc: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="test-codes")
    code, message = public_reason(exc, log, "call failed (RequestID r1)", "internal error (r1)")
    assert (code, message) == (INTERNAL, "internal error (r1)")
    assert "secret" not in message
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage() == "call failed (RequestID r1)"
    assert record.exc_info is not None and record.exc_info[1] is exc
