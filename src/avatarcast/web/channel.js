// The command channel (docs/protocol.md): one WebSocket per session. Upstream commands go
// out as {"Header": {}, "Payload": {ReqId, SessionId, Command, Data}}; downstream status
// messages (Type 3) and errors (Type 9) come back as flat JSON objects.

import { newReqId } from "./api.js";

const HEARTBEAT_MS = 30_000;
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 5000];

export class CommandChannel {
  /**
   * `urlFor()` returns a freshly signed WebSocket URL (signatures expire after 300 s, so a
   * reconnect must sign again). `onMessage(msg)` gets each downstream message; `onState(s)`
   * gets "open", "reconnecting" or "closed".
   */
  constructor(sessionId, urlFor, { onMessage = () => {}, onState = () => {} } = {}) {
    this.sessionId = sessionId;
    this.urlFor = urlFor;
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.closed = false;
    this.attempt = 0;
    this.outbox = []; // messages sent while (re)connecting, flushed on open
    this.seen = new Set(); // "(ReqId, Seq)" of Type 3 messages: the server replays on reconnect
    this.heartbeat = setInterval(() => this.send("SEND_HEARTBEAT", { Text: "PING" }), HEARTBEAT_MS);
  }

  async open() {
    if (this.closed) return;
    const ws = new WebSocket(await this.urlFor());
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.onState("open");
      for (const text of this.outbox.splice(0)) ws.send(text);
    };
    ws.onmessage = (event) => this.#receive(event.data);
    ws.onclose = (event) => {
      if (ws !== this.ws || this.closed) return;
      // 1008: the server refused the channel (closed, unknown or not started session): its
      // Type 9 message says why, and retrying cannot help.
      if (event.code === 1008) {
        this.close();
        return;
      }
      const delay = RECONNECT_DELAYS_MS[Math.min(this.attempt, RECONNECT_DELAYS_MS.length - 1)];
      this.attempt += 1;
      this.onState("reconnecting");
      // A failed attempt closes its own socket, which schedules the next one.
      setTimeout(() => this.open().catch(() => {}), delay);
    };
    return new Promise((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("close", () => reject(new Error("command channel closed")), { once: true });
    });
  }

  #receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.Type === 3) {
      const key = `${msg.ReqId}/${msg.Seq}`;
      if (this.seen.has(key)) return; // a replay after a reconnect: already shown
      this.seen.add(key);
    }
    this.onMessage(msg);
  }

  /** Sends one command; returns its ReqId (pass `reqId` to continue an utterance). */
  send(command, data, reqId = newReqId()) {
    if (this.closed) return reqId;
    const text = JSON.stringify({
      Header: {},
      Payload: { ReqId: reqId, SessionId: this.sessionId, Command: command, Data: data },
    });
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(text);
    else if (command !== "SEND_HEARTBEAT") this.outbox.push(text);
    return reqId;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.ws?.close(1000);
    this.onState("closed");
  }
}
