// Audio for SEND_AUDIO: 16 kHz mono PCM s16le in 160 ms chunks (docs/protocol.md).
// Microphone capture (hold to talk) and decoded files both end up as 16 kHz Float32 samples,
// which `Utterance` cuts into chunks and sends with increasing Seq.

export const RATE_HZ = 16000;
export const CHUNK_SAMPLES = 2560; // 160 ms at 16 kHz = 5120 bytes
const PACE_BURST = 6; // the spec's pacing: the first 6 chunks at once ...
const PACE_MS = 120; // ... then one every 120 ms

// ---- PCM helpers -----------------------------------------------------------------------

/** Float samples (-1..1) → Base64 of signed 16-bit little-endian PCM. */
export function pcm16Base64(samples) {
  const bytes = new Uint8Array(samples.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function concat(a, b) {
  if (!a.length) return b;
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A windowed-sinc low-pass filter; `cutoff` is a fraction of the sample rate. */
function lowPass(cutoff, length) {
  const taps = new Float32Array(length);
  const middle = (length - 1) / 2;
  let sum = 0;
  for (let i = 0; i < length; i++) {
    const x = i - middle;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const hann = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (length - 1));
    taps[i] = sinc * hann;
    sum += taps[i];
  }
  return taps.map((t) => t / sum);
}

/**
 * Streaming resampler: low-pass (when going down, so voices do not alias) then linear
 * interpolation. Feed blocks of any size with `push`; it returns the samples ready so far.
 * Why not an AudioContext at 16 kHz: Firefox refuses to connect a microphone to a context
 * whose rate differs from the device's.
 */
export class Resampler {
  constructor(fromHz, toHz = RATE_HZ) {
    this.step = fromHz / toHz;
    this.taps = fromHz > toHz ? lowPass((0.45 * toHz) / fromHz, 31) : null;
    this.history = new Float32Array(this.taps ? this.taps.length - 1 : 0);
    this.pending = new Float32Array(0); // filtered input not consumed yet
    this.position = 0; // of the next output sample, in input samples into `pending`
  }

  push(input) {
    const data = concat(this.pending, this.taps ? this.#filter(input) : input);
    const count = Math.max(0, Math.ceil((data.length - 1 - this.position) / this.step));
    const out = new Float32Array(count);
    for (let k = 0; k < count; k++) {
      const i = Math.floor(this.position);
      const f = this.position - i;
      out[k] = data[i] * (1 - f) + data[i + 1] * f;
      this.position += this.step;
    }
    const used = Math.floor(this.position);
    this.pending = data.slice(used);
    this.position -= used;
    return out;
  }

  #filter(input) {
    const n = this.taps.length;
    const x = concat(this.history, input);
    const y = new Float32Array(input.length);
    for (let i = 0; i < input.length; i++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += this.taps[k] * x[i + n - 1 - k];
      y[i] = acc;
    }
    this.history = x.slice(x.length - (n - 1));
    return y;
  }
}

// ---- one utterance on the channel ------------------------------------------------------

/** Cuts 16 kHz samples into 160 ms SEND_AUDIO chunks (one ReqId, Seq 1, 2, ...). */
export class Utterance {
  constructor(channel, { interrupt = false, onStart = () => {}, text = undefined } = {}) {
    this.channel = channel;
    this.interrupt = interrupt; // barge-in: the first chunk stops what is speaking
    this.text = text; // ours: the words the audio says, sent as Data.Text on the first chunk
    this.onStart = onStart; // gets the ReqId when the first chunk goes out
    this.reqId = undefined;
    this.seq = 0;
    this.buffer = new Float32Array(0);
  }

  #send(samples, isFinal) {
    this.seq += 1;
    const data = { Audio: pcm16Base64(samples), Seq: this.seq, IsFinal: isFinal };
    if (this.seq === 1 && this.interrupt) data.Interrupt = true;
    if (this.seq === 1 && this.text) data.Text = this.text;
    this.reqId = this.channel.send("SEND_AUDIO", data, this.reqId);
    if (this.seq === 1) this.onStart(this.reqId);
  }

  /** Adds samples; sends every complete chunk. */
  push(samples) {
    this.buffer = concat(this.buffer, samples);
    while (this.buffer.length >= CHUNK_SAMPLES) {
      this.#send(this.buffer.subarray(0, CHUNK_SAMPLES), false);
      this.buffer = this.buffer.slice(CHUNK_SAMPLES);
    }
  }

  /** Sends the rest with IsFinal. An utterance that never had audio sends nothing. */
  finish() {
    if (this.seq === 0 && this.buffer.length === 0) return false;
    this.#send(this.buffer, true);
    this.buffer = new Float32Array(0);
    return true;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * Sends a whole clip paced like the spec: 6 chunks at once, then one every 120 ms, then the
 * final. Deadlines are absolute so timer jitter does not accumulate. Stops early if
 * `signal` aborts (the final packet is still sent so the utterance ends cleanly). `text`:
 * the words the clip says (optional; the server then aligns the mouth to them).
 */
export async function sendClip(channel, samples16k, { signal, onStart, text } = {}) {
  const utterance = new Utterance(channel, { onStart, text });
  const chunks = Math.ceil(samples16k.length / CHUNK_SAMPLES);
  const start = performance.now();
  for (let n = 0; n < chunks && !signal?.aborted; n++) {
    await sleep(start + Math.max(0, n - (PACE_BURST - 1)) * PACE_MS - performance.now());
    utterance.push(samples16k.subarray(n * CHUNK_SAMPLES, (n + 1) * CHUNK_SAMPLES));
  }
  utterance.finish();
  return utterance.reqId;
}

/** Decodes any file the browser can read to 16 kHz mono (the browser resamples). */
export async function decodeTo16kMono(arrayBuffer) {
  const context = new OfflineAudioContext(1, 1, RATE_HZ);
  const decoded = await context.decodeAudioData(arrayBuffer);
  const mono = new Float32Array(decoded.length);
  for (let c = 0; c < decoded.numberOfChannels; c++) {
    const channel = decoded.getChannelData(c);
    for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / decoded.numberOfChannels;
  }
  return mono;
}

// ---- the microphone --------------------------------------------------------------------

/**
 * The microphone, opened once and kept open while a session runs (so pressing "hold to
 * talk" starts at once). `begin(onSamples)` delivers 16 kHz blocks until `end()`.
 */
export class Microphone {
  static available() {
    // getUserMedia exists only in secure contexts (https, or http on localhost).
    return Boolean(navigator.mediaDevices?.getUserMedia);
  }

  async open() {
    if (this.context) return;
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    this.context = new AudioContext();
    const source = this.context.createMediaStreamSource(this.stream);
    const deliver = (block) => {
      if (this.onSamples) this.onSamples(this.resampler.push(block));
    };
    if (this.context.audioWorklet) {
      await this.context.audioWorklet.addModule(new URL("./mic-worklet.js", import.meta.url));
      this.node = new AudioWorkletNode(this.context, "avatarcast-capture");
      this.node.port.onmessage = (event) => deliver(event.data);
      source.connect(this.node);
    } else {
      // Older engines: ScriptProcessor runs on the main thread but works everywhere. It only
      // runs while connected to the destination, so route it through a muted gain.
      this.node = this.context.createScriptProcessor(4096, 1, 1);
      this.node.onaudioprocess = (event) => deliver(event.inputBuffer.getChannelData(0).slice());
      const mute = this.context.createGain();
      mute.gain.value = 0;
      source.connect(this.node).connect(mute).connect(this.context.destination);
    }
  }

  async begin(onSamples) {
    await this.open();
    await this.context.resume();
    this.resampler = new Resampler(this.context.sampleRate);
    this.onSamples = onSamples;
  }

  end() {
    this.onSamples = null;
  }

  close() {
    this.end();
    this.stream?.getTracks().forEach((t) => t.stop());
    this.context?.close().catch(() => {});
    this.context = null;
  }
}
