// Transparent background: show the avatar over a backdrop the page picks.
//
// A transparent-background stream packs colour on the left half and the matte (alpha as
// luma) on the right half of each frame (docs/outputs.md, render/alpha.py). The project's
// helper `attachAlphaVideo(video, canvas, {backdrop})` in /web/alpha.js composites it; when
// the server does not ship that helper, `fallbackAttach` below does the same, more slowly,
// with a 2D canvas.

/**
 * The compositor to use: the shipped helper when the server has it, else the fallback.
 * Returns {name, attach}; `name` is "alpha.js" or "fallback".
 */
export async function loadCompositor(helperUrl) {
  if (helperUrl) {
    try {
      const module = await import(helperUrl);
      if (typeof module.attachAlphaVideo === "function") {
        return { name: "alpha.js", attach: module.attachAlphaVideo };
      }
    } catch (err) {
      console.warn("alpha helper did not load, using the fallback:", err);
    }
  }
  return { name: "fallback", attach: fallbackAttach };
}

function paintBackdrop(ctx, backdrop, width, height) {
  if (backdrop instanceof HTMLImageElement || backdrop instanceof ImageBitmap) {
    // "cover": fill the canvas, keep the image's proportions, crop what sticks out.
    const scale = Math.max(width / backdrop.width, height / backdrop.height);
    const w = backdrop.width * scale;
    const h = backdrop.height * scale;
    ctx.drawImage(backdrop, (width - w) / 2, (height - h) / 2, w, h);
  } else {
    ctx.fillStyle = backdrop || "#000";
    ctx.fillRect(0, 0, width, height);
  }
}

/**
 * Composites each new frame of `video` (colour | matte) over `backdrop` (a CSS colour or
 * an image) onto `canvas`. Returns {setBackdrop(b), stop()}.
 */
export function fallbackAttach(video, canvas, { backdrop = "#000" } = {}) {
  const source = document.createElement("canvas");
  const sourceCtx = source.getContext("2d", { willReadFrequently: true });
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  let current = backdrop;
  let running = true;
  let lastTime = -1;

  function draw() {
    const width = Math.floor(video.videoWidth / 2);
    const height = video.videoHeight;
    if (!width || !height) return;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    if (source.width !== width * 2 || source.height !== height) {
      source.width = width * 2;
      source.height = height;
    }
    sourceCtx.drawImage(video, 0, 0);
    const packed = sourceCtx.getImageData(0, 0, width * 2, height).data;
    paintBackdrop(ctx, current, width, height);
    const out = ctx.getImageData(0, 0, width, height);
    const px = out.data;
    for (let y = 0; y < height; y++) {
      let o = y * width * 4;
      let c = y * width * 2 * 4; // colour pixel in the packed row
      let m = c + width * 4; // its matte pixel, half a row further
      for (let x = 0; x < width; x++, o += 4, c += 4, m += 4) {
        const a = packed[m + 1] / 255; // the decoder expanded limited-range luma: G = α
        if (a <= 0) continue;
        px[o] = packed[c] * a + px[o] * (1 - a);
        px[o + 1] = packed[c + 1] * a + px[o + 1] * (1 - a);
        px[o + 2] = packed[c + 2] * a + px[o + 2] * (1 - a);
      }
    }
    ctx.putImageData(out, 0, 0);
  }

  // requestVideoFrameCallback draws once per decoded frame; elsewhere poll per display frame.
  const useFrameCallback = "requestVideoFrameCallback" in HTMLVideoElement.prototype;
  function tick() {
    if (!running) return;
    if (video.readyState >= 2 && (useFrameCallback || video.currentTime !== lastTime)) {
      lastTime = video.currentTime;
      draw();
    }
    if (useFrameCallback) video.requestVideoFrameCallback(tick);
    else requestAnimationFrame(tick);
  }
  tick();

  return {
    setBackdrop(next) {
      current = next;
      if (video.readyState >= 2) draw();
    },
    stop() {
      running = false;
    },
  };
}
