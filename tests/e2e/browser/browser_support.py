"""What the browser tests' conftest and test module share: paths, flags, small types."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NETNS_ENV = "AVATARCAST_BROWSER_NETNS"
IN_NETNS = os.environ.get(NETNS_ENV) == "1"
CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts" / "browser"
HERE = Path(__file__).resolve().parent
RUNNER = "test_suite_in_loopback_namespace"

# Chromium keeps only the last --disable-features switch, and Playwright passes its own list
# first, so ours must repeat what Playwright disables along with what WebRTC needs.
DISABLED_FEATURES = [
    "WebRtcHideLocalIpsWithMdns",  # offer 127.0.0.1 itself, not an mDNS name
    # Playwright's own (chromiumSwitches.ts):
    "AvoidUnnecessaryBeforeUnloadCheckSync",
    "DestroyProfileOnBrowserClose",
    "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable",
    "LensOverlay",
    "MediaRouter",
    "PaintHolding",
    "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect",
    "OptimizationHints",
    "NetworkTimeServiceQuerying",
    "Translate",
]


def chromium_args(fake_audio: Path) -> list[str]:
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--allow-loopback-in-peer-connection",
        f"--disable-features={','.join(DISABLED_FEATURES)}",
        # A fake microphone that plays a speech file, granted without a prompt.
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_audio}",
    ]


@dataclass
class Server:
    base_url: str
    appkey: str
    accesstoken: str


@dataclass
class PageUnderTest:
    page: Any  # playwright.sync_api.Page
    errors: list[str]


Box = tuple[int, int, int, int]  # y0, y1, x0, x1 in video pixels
