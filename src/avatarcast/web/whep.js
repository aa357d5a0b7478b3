// Watching a session over WHEP (docs/outputs.md): a recvonly RTCPeerConnection, the offer
// POSTed to PlayStreamAddr, the answer applied. Reconnects on its own while the session lives.

const GATHER_TIMEOUT_MS = 2000;
export const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000]; // the Janus player's too

/** Prefer H.264 for video: the server only sends H.264 and refuses offers without it. */
function preferH264(transceiver) {
  const caps = globalThis.RTCRtpReceiver?.getCapabilities?.("video");
  if (!caps || !transceiver.setCodecPreferences) return;
  const h264 = caps.codecs.filter((c) => c.mimeType.toLowerCase() === "video/h264");
  const rest = caps.codecs.filter((c) => !/video\/(h264|vp8|vp9|av1)/i.test(c.mimeType));
  if (h264.length) transceiver.setCodecPreferences([...h264, ...rest]);
}

/** Resolves once ICE gathering is complete (or after a bound): WHEP here has no trickle
 * (nor does the Janus player, which uses it too). */
export function gatheringDone(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/**
 * Plays `playUrl` into `video`. `onState(state, detail)` gets "connecting", "playing",
 * "reconnecting" or "stopped". Call `stop()` to leave (the server resource is DELETEd).
 */
export class WhepPlayer {
  constructor(playUrl, video, onState = () => {}) {
    this.playUrl = playUrl;
    this.video = video;
    this.onState = onState;
    this.pc = null;
    this.resource = null;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.video.addEventListener("playing", this.#onPlaying);
  }

  #onPlaying = () => {
    if (!this.stopped && this.pc?.connectionState === "connected") this.#setState("playing");
  };

  #setState(state, detail = "") {
    if (state !== this.state || detail) {
      this.state = state;
      this.onState(state, detail);
    }
  }

  async start() {
    this.#setState(this.attempt ? "reconnecting" : "connecting");
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    const stream = new MediaStream();
    this.video.srcObject = stream;
    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      // Autoplay may need a gesture in some browsers; the video is muted until unmuted.
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc || this.stopped) return;
      const s = pc.connectionState;
      if (s === "connected") {
        this.attempt = 0;
        if (!this.video.paused && this.video.readyState >= 2) this.#setState("playing");
      } else if (s === "disconnected") {
        this.#setState("reconnecting");
      } else if (s === "failed" || s === "closed") {
        this.#retry("connection lost");
      }
    };
    preferH264(pc.addTransceiver("video", { direction: "recvonly" }));
    pc.addTransceiver("audio", { direction: "recvonly" });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringDone(pc);
      const response = await fetch(this.playUrl, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
      });
      if (response.status === 404) {
        // The session is gone: nothing to retry. The app learns why from statsession.
        this.stop();
        return;
      }
      if (response.status !== 201) throw new Error(`WHEP ${response.status}: ${await response.text()}`);
      const location = response.headers.get("Location");
      this.resource = location ? new URL(location, this.playUrl).href : null;
      if (pc !== this.pc) return;
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    } catch (err) {
      if (pc === this.pc && !this.stopped) this.#retry(String(err.message || err));
    }
  }

  #retry(why) {
    if (this.stopped || this.retryTimer) return;
    this.#teardown();
    const delay = RETRY_DELAYS_MS[Math.min(this.attempt, RETRY_DELAYS_MS.length - 1)];
    this.attempt += 1;
    this.#setState("reconnecting", why);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.start();
    }, delay);
  }

  #teardown() {
    const { pc, resource } = this;
    this.pc = null;
    this.resource = null;
    const deleted = resource
      ? fetch(resource, { method: "DELETE", keepalive: true }).then(() => {}, () => {})
      : Promise.resolve();
    // Hang up only once the server has the DELETE (at most 1 s): a hang-up that arrives
    // first makes the server drop the viewer, and the DELETE then 404s (a console error).
    if (pc) {
      const timeout = new Promise((resolve) => setTimeout(resolve, 1000));
      Promise.race([deleted, timeout]).then(() => pc.close());
    }
    return deleted;
  }

  /** Leave; resolves once the server has the DELETE (close the session only after it, or
   * the DELETE finds no resource and the browser logs a 404). */
  stop() {
    if (this.stopped) return Promise.resolve();
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.video.removeEventListener("playing", this.#onPlaying);
    const deleted = this.#teardown();
    this.video.srcObject = null;
    this.#setState("stopped");
    return deleted;
  }
}
