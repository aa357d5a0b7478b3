"""CssCustomPushUrl may push only to allowed hosts (the ingest's host unless the operator
lists others): a key holder must not make the server connect to any address it can reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarcast.codes import wire_code
from avatarcast.errors import RequestError
from avatarcast.settings import Settings
from avatarcast.stream.rtmp import push_url
from avatarcast.stream.target import OutputTarget


def _session(url: str) -> OutputTarget:
    return OutputTarget("s1", "u", {"CssCustomPushUrl": url})


@pytest.fixture
def ingest(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, rtmp_ingest_url="rtmp://ingest.example:1935/live")


@pytest.mark.parametrize(
    "url",
    [
        "rtmp://169.254.169.254/latest",  # a cloud metadata address
        "rtmp://127.0.0.1:6379/x",  # a local service
        "rtmp://ingest.example@10.0.0.5/live/x",  # user info naming the ingest, another host
        "rtmp://ingest.example.evil.test/live/x",
        "rtmps://[::1]/live",
    ],
)
def test_other_hosts_are_refused_with_100001(ingest: Settings, url: str) -> None:
    with pytest.raises(RequestError, match="rtmp_push_hosts") as info:
        push_url(_session(url), ingest)
    assert wire_code(info.value) == 100001


@pytest.mark.parametrize(
    "url", ["rtmp://ingest.example/live/k?secret=1", "rtmp://INGEST.example.:1935/other/k"]
)
def test_the_ingest_host_is_allowed_by_default(ingest: Settings, url: str) -> None:
    assert push_url(_session(url), ingest) == url


def test_listed_hosts_and_ports(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, rtmp_push_hosts="cdn.example, relay.example:1936")
    assert push_url(_session("rtmp://cdn.example:2000/a/b"), s)  # any port of a bare host
    assert push_url(_session("rtmp://relay.example:1936/a/b"), s)
    with pytest.raises(RequestError):
        push_url(_session("rtmp://relay.example/a/b"), s)  # 1935 is not the listed port
    anything = Settings(data_dir=tmp_path, rtmp_push_hosts="*")
    assert push_url(_session("rtmp://10.1.2.3/x"), anything)


def test_without_an_ingest_nothing_is_allowed_unless_listed(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match="allowed hosts: none"):
        push_url(_session("rtmp://cdn.example/a/b"), Settings(data_dir=tmp_path))


def test_a_bad_port_is_100001(ingest: Settings) -> None:
    with pytest.raises(RequestError, match="not a valid URL"):
        push_url(_session("rtmp://ingest.example:99999/x"), ingest)
