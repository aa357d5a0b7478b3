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


def collect_errors(page: Any) -> list[str]:
    """The page's console errors and uncaught exceptions, as they come. "Failed to load
    resource" names no URL in its text: the message's location does, so it is appended."""
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(f"{m.text} [{m.location.get('url', '')}]") if m.type == "error" else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    return errors


Box = tuple[int, int, int, int]  # y0, y1, x0, x1 in video pixels


# Mean absolute luma change of the mouth box between consecutive video frames, sampled in the
# page per frame (window.__mouth.samples: [time, change]; window.__mouth.frames: frames seen).
MOUTH_SAMPLER = """([y0, y1, x0, x1]) => {
  const video = document.getElementById('video');
  const w = x1 - x0, h = y1 - y0;
  const canvas = document.createElement('canvas');
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const out = window.__mouth = {samples: [], frames: 0};
  let previous = null;
  function tick() {
    ctx.drawImage(video, x0, y0, w, h, 0, 0, w, h);
    const px = ctx.getImageData(0, 0, w, h).data;
    const luma = new Float32Array(w * h);
    for (let i = 0; i < luma.length; i++) {
      luma[i] = 0.299 * px[4 * i] + 0.587 * px[4 * i + 1] + 0.114 * px[4 * i + 2];
    }
    if (previous) {
      let sum = 0;
      for (let i = 0; i < luma.length; i++) sum += Math.abs(luma[i] - previous[i]);
      out.samples.push([performance.now(), sum / luma.length]);
    }
    previous = luma;
    out.frames += 1;
    video.requestVideoFrameCallback(tick);
  }
  video.requestVideoFrameCallback(tick);
}"""
