// AudioWorklet processor: hands the microphone's samples to the page in blocks of 2048
// (about 43 ms at 48 kHz), so the main thread is woken 20-odd times a second, not 375.

const BLOCK = 2048;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.filled = 0;
  }

  process(inputs) {
    const samples = inputs[0]?.[0];
    if (samples) {
      let offset = 0;
      while (offset < samples.length) {
        const n = Math.min(samples.length - offset, BLOCK - this.filled);
        this.block.set(samples.subarray(offset, offset + n), this.filled);
        this.filled += n;
        offset += n;
        if (this.filled === BLOCK) {
          this.port.postMessage(this.block);
          this.block = new Float32Array(BLOCK);
          this.filled = 0;
        }
      }
    }
    return true; // keep running while the node is connected
  }
}

registerProcessor("avatarcast-capture", CaptureProcessor);
