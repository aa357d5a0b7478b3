// Watching a `janus` session through Janus (docs/outputs.md): its PlayStreamAddr is
// `<janus_url>?room=R&feed=F`. Speaks Janus's HTTP API: create a session, attach the
// VideoRoom plugin, join as a subscriber of feed F, answer Janus's offer, start; a long poll
// brings the events, a keepalive keeps the session. Retries while the session lives (the
// publisher republishes after a Janus restart). Same interface as WhepPlayer.

import { RETRY_DELAYS_MS, gatheringDone } from "./whep.js";

const KEEPALIVE_MS = 25000;

function txn() {
  return Math.random().toString(36).slice(2, 14);
}

export class JanusPlayer {
  constructor(playUrl, video, onState = () => {}) {
    const u = new URL(playUrl);
    this.room = Number(u.searchParams.get("room"));
    this.feed = Number(u.searchParams.get("feed"));
    u.search = "";
    this.api = u.href.replace(/\/$/, "");
    this.video = video;
    this.onState = onState;
    this.stopped = false;
    this.attempt = 0;
    this.run = null; // {session, pc, waiters, timer}
    this.retryTimer = null;
    this.video.addEventListener("playing", this.#onPlaying);
  }

  #onPlaying = () => {
    if (!this.stopped && this.run?.pc?.connectionState === "connected") this.#setState("playing");
  };

  #setState(state, detail = "") {
    if (state !== this.state || detail) {
      this.state = state;
      this.onState(state, detail);
    }
  }

  async #post(path, body) {
    const r = await fetch(this.api + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ transaction: txn(), ...body }),
    });
    const answer = await r.json();
    if (answer.janus === "error") throw new Error(`Janus ${answer.error.code}: ${answer.error.reason}`);
    return answer;
  }

  /** A plugin message whose answer comes as an event (join, start): resolves with it. */
  async #ask(run, handle, body, jsep) {
    const transaction = txn();
    const answer = new Promise((resolve, reject) => run.waiters.set(transaction, { resolve, reject }));
    await this.#post(`/${run.session}/${handle}`, { janus: "message", transaction, body, jsep });
    const event = await answer;
    const data = event.plugindata?.data || {};
    if (data.error_code) throw new Error(`Janus ${data.error_code}: ${data.error}`);
    return event;
  }

  async #poll(run) {
    while (this.run === run) {
      let events;
      try {
        // Aborted by #teardown before it destroys the session: a long-poll still pending on a
        // session Janus no longer has can come back as an HTTP error, which the browser's
        // console shows (a suspected cause of one "404" seen in CI; not reproduced).
        const r = await fetch(`${this.api}/${run.session}?maxev=10&rid=${Date.now()}`, {
          signal: run.polling.signal,
        });
        events = await r.json();
      } catch (err) {
        this.#retry(`Janus unreachable (${err.message || err})`, run);
        return;
      }
      for (const ev of Array.isArray(events) ? events : [events]) {
        const waiter = run.waiters.get(ev.transaction);
        if (waiter && ev.janus !== "ack") {
          run.waiters.delete(ev.transaction);
          waiter.resolve(ev);
        } else if (ev.janus === "error" && ev.error?.code === 458) {
          this.#retry("Janus forgot the session", run);
          return;
        } else if (ev.janus === "hangup") {
          this.#retry("Janus hung up", run);
          return;
        } else if (ev.plugindata?.data?.videoroom === "event" && ev.plugindata.data.left) {
          this.#retry("the avatar left the room", run);
          return;
        }
      }
    }
  }

  async start() {
    this.#setState(this.attempt ? "reconnecting" : "connecting");
    const run = { session: null, pc: null, waiters: new Map(), timer: null, polling: new AbortController() };
    this.run = run;
    try {
      run.session = (await this.#post("", { janus: "create" })).data.id;
      const handle = (await this.#post(`/${run.session}`, { janus: "attach", plugin: "janus.plugin.videoroom" })).data.id;
      this.#poll(run);
      run.timer = setInterval(() => {
        this.#post(`/${run.session}`, { janus: "keepalive" }).catch(() => {});
      }, KEEPALIVE_MS);
      const joined = await this.#ask(run, handle, {
        request: "join",
        ptype: "subscriber",
        room: this.room,
        streams: [{ feed: this.feed }],
      });
      const pc = new RTCPeerConnection({ iceServers: [] });
      run.pc = pc;
      const stream = new MediaStream();
      this.video.srcObject = stream;
      pc.ontrack = (event) => {
        stream.addTrack(event.track);
        this.video.play().catch(() => {});
      };
      pc.onconnectionstatechange = () => {
        if (this.run !== run) return;
        const s = pc.connectionState;
        if (s === "connected") {
          this.attempt = 0;
          if (!this.video.paused && this.video.readyState >= 2) this.#setState("playing");
        } else if (s === "failed" || s === "closed") {
          this.#retry("connection lost", run);
        }
      };
      await pc.setRemoteDescription(joined.jsep);
      await pc.setLocalDescription(await pc.createAnswer());
      await gatheringDone(pc);
      const answer = { type: "answer", sdp: pc.localDescription.sdp, trickle: false };
      await this.#ask(run, handle, { request: "start" }, answer);
    } catch (err) {
      this.#retry(String(err.message || err), run);
    }
  }

  #retry(why, run) {
    if (this.stopped || this.run !== run || this.retryTimer) return;
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
    const run = this.run;
    this.run = null;
    if (!run) return Promise.resolve();
    clearInterval(run.timer);
    run.polling.abort();
    for (const w of run.waiters.values()) w.reject(new Error("closed"));
    run.pc?.close();
    if (run.session === null) return Promise.resolve();
    return this.#post(`/${run.session}`, { janus: "destroy" }).then(() => {}, () => {});
  }

  /** Leave: the Janus session is destroyed. */
  stop() {
    if (this.stopped) return Promise.resolve();
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.video.removeEventListener("playing", this.#onPlaying);
    const done = this.#teardown();
    this.video.srcObject = null;
    this.#setState("stopped");
    return done;
  }
}
