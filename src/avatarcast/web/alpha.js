// alpha.js — show a transparent-background avatar stream over any backdrop. No dependencies.
//
// A session created with ExtraInfo.AlphaChannelEnable streams frames twice as wide as the
// avatar (docs/outputs.md, "Transparent background"):
//
//   +-----------+-----------+
//   |  colour   |   matte   |   left: the picture; right: alpha as luma (limited range,
//   |           |  (grey)   |   so the browser's decoder hands back R = G = B = alpha)
//   +-----------+-----------+
//
// API (import from "/web/alpha.js"):
//
//   const view = attachAlphaVideo(videoEl, canvasEl, { backdrop, mode });
//     videoEl   a playing <video> of the packed stream (WHEP, LiveKit, HLS, a file...)
//     canvasEl  the <canvas> to draw on; it is sized to the avatar (half the video's width)
//               and can be scaled with CSS
//     backdrop  a CSS colour ("#203040", "rgb(...)"), an image (<img>, ImageBitmap,
//               <canvas>, drawn "cover"), or "transparent"/null: the canvas itself is then
//               transparent and whatever the page puts behind it shows through. Default "#000".
//     mode      "auto" (WebGL when available, else 2D), "webgl" or "2d"
//   view.setBackdrop(b)  change the backdrop (same kinds as above)
//   view.stop()          stop drawing (the video keeps playing)
//   view.mode            "webgl" or "2d": what is actually used
//   view.canvas          the canvas drawn on: canvasEl, or (only if WebGL failed after taking
//                        canvasEl's context) a fresh copy that replaced it in the page
//
// One frame is drawn per decoded video frame (requestVideoFrameCallback where the browser
// has it, else once per animation frame when the video time moved). Images and videos must
// be same-origin or CORS-enabled: a canvas cannot read tainted pixels.
//
// `compositeRgba(packed, out, width, height, background)` is the per-pixel rule of the 2D
// path, exported for tests and for non-DOM uses.

/** Composite one packed RGBA frame (2*width x height) into `out` (width x height RGBA).
 *  `out` holds the backdrop already, or is ignored when `background` is "transparent". */
export function compositeRgba(packed, out, width, height, background = "opaque") {
  const transparent = background === "transparent";
  for (let y = 0; y < height; y++) {
    let o = y * width * 4;
    let c = y * width * 8; // colour pixel: packed rows are twice as long
    let m = c + width * 4; // its matte pixel, half a packed row further
    for (let x = 0; x < width; x++, o += 4, c += 4, m += 4) {
      // Average the grey: chroma upsampling can tint R or B by a level near edges.
      const a = (packed[m] + 2 * packed[m + 1] + packed[m + 2]) / 1020;
      if (transparent) {
        out[o] = packed[c];
        out[o + 1] = packed[c + 1];
        out[o + 2] = packed[c + 2];
        out[o + 3] = Math.round(a * 255); // ImageData is not premultiplied
      } else if (a > 0) {
        const b = 1 - a;
        out[o] = packed[c] * a + out[o] * b;
        out[o + 1] = packed[c + 1] * a + out[o + 1] * b;
        out[o + 2] = packed[c + 2] * a + out[o + 2] * b;
        out[o + 3] = 255;
      }
    }
  }
}

const isTransparent = (b) => b == null || b === "transparent";
const isImage = (b) => b != null && typeof b === "object";
const imageSize = (img) => [img.naturalWidth || img.width, img.naturalHeight || img.height];

/** "cover" placement of an image in a width x height box: [x, y, w, h]. */
function cover(img, width, height) {
  const [iw, ih] = imageSize(img);
  const s = Math.max(width / iw, height / ih);
  return [(width - iw * s) / 2, (height - ih * s) / 2, iw * s, ih * s];
}

/** A CSS colour as [r, g, b] in 0..1 (the browser parses it: any CSS syntax works). */
const parsed = new Map();
function cssRgb(colour) {
  if (!parsed.has(colour)) parsed.set(colour, parseCss(colour));
  return parsed.get(colour);
}

function parseCss(colour) {
  const c = document.createElement("canvas");
  c.width = c.height = 1;
  const ctx = c.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillStyle = colour;
  ctx.fillRect(0, 0, 1, 1);
  const [r, g, b] = ctx.getImageData(0, 0, 1, 1).data;
  return [r / 255, g / 255, b / 255];
}

// ---- 2D canvas path ------------------------------------------------------------------------
function create2d(canvas) {
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const scratch = document.createElement("canvas");
  const sctx = scratch.getContext("2d", { willReadFrequently: true });
  return {
    mode: "2d",
    canvas,
    draw(video, backdrop, width, height) {
      if (scratch.width !== 2 * width || scratch.height !== height) {
        scratch.width = 2 * width;
        scratch.height = height;
      }
      sctx.drawImage(video, 0, 0);
      const packed = sctx.getImageData(0, 0, 2 * width, height).data;
      if (isTransparent(backdrop)) {
        const out = ctx.createImageData(width, height);
        compositeRgba(packed, out.data, width, height, "transparent");
        ctx.putImageData(out, 0, 0);
        return;
      }
      if (isImage(backdrop)) {
        ctx.fillStyle = "#000";
        ctx.fillRect(0, 0, width, height);
        ctx.drawImage(backdrop, ...cover(backdrop, width, height));
      } else {
        ctx.fillStyle = backdrop;
        ctx.fillRect(0, 0, width, height);
      }
      const out = ctx.getImageData(0, 0, width, height);
      compositeRgba(packed, out.data, width, height);
      ctx.putImageData(out, 0, 0);
    },
  };
}

// ---- WebGL path ----------------------------------------------------------------------------
const VERTEX = `
attribute vec2 pos;
varying vec2 uv;
void main() { uv = vec2(pos.x * 0.5 + 0.5, 0.5 - pos.y * 0.5); gl_Position = vec4(pos, 0.0, 1.0); }`;

// Samples are clamped half a texel inside each half, so linear filtering never mixes the
// colour picture with the matte at the seam.
const FRAGMENT = `
precision mediump float;
varying vec2 uv;
uniform sampler2D packed, backdrop;
uniform float halfTexel;
uniform int kind;          // 0 colour, 1 image, 2 transparent
uniform vec3 colour;
uniform vec4 placement;    // image "cover": uv -> backdrop uv = (uv - xy) / zw
void main() {
  vec3 c = texture2D(packed, vec2(min(uv.x * 0.5, 0.5 - halfTexel), uv.y)).rgb;
  vec3 m = texture2D(packed, vec2(max(0.5 + uv.x * 0.5, 0.5 + halfTexel), uv.y)).rgb;
  float a = clamp(dot(m, vec3(0.25, 0.5, 0.25)), 0.0, 1.0);
  if (kind == 2) { gl_FragColor = vec4(c * a, a); return; }  // premultiplied canvas
  vec3 bg = kind == 1 ? texture2D(backdrop, (uv - placement.xy) / placement.zw).rgb : colour;
  gl_FragColor = vec4(mix(bg, c, a), 1.0);
}`;

function createGl(canvas) {
  const gl = canvas.getContext("webgl", { premultipliedAlpha: true, alpha: true });
  if (!gl) return null;
  const shader = (type, src) => {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  };
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FRAGMENT));
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
  gl.useProgram(prog);
  const buf = gl.createBuffer();
  gl.bindBuffer(gl.ARRAY_BUFFER, buf);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
  const pos = gl.getAttribLocation(prog, "pos");
  gl.enableVertexAttribArray(pos);
  gl.vertexAttribPointer(pos, 2, gl.FLOAT, false, 0, 0);
  const u = (name) => gl.getUniformLocation(prog, name);
  const texture = (unit) => {
    const t = gl.createTexture();
    gl.activeTexture(gl.TEXTURE0 + unit);
    gl.bindTexture(gl.TEXTURE_2D, t);
    // Video and photo sizes are rarely powers of two: WebGL 1 then needs clamp + no mipmaps.
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    return t;
  };
  const videoTex = texture(0);
  const backTex = texture(1);
  gl.uniform1i(u("packed"), 0);
  gl.uniform1i(u("backdrop"), 1);
  let uploaded = null; // the backdrop image now in backTex
  return {
    mode: "webgl",
    canvas,
    draw(video, backdrop, width, height) {
      gl.viewport(0, 0, width, height);
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D, videoTex);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGB, gl.RGB, gl.UNSIGNED_BYTE, video);
      gl.uniform1f(u("halfTexel"), 0.5 / (2 * width));
      if (isTransparent(backdrop)) {
        gl.uniform1i(u("kind"), 2);
      } else if (isImage(backdrop)) {
        if (uploaded !== backdrop) {
          gl.activeTexture(gl.TEXTURE1);
          gl.bindTexture(gl.TEXTURE_2D, backTex);
          gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGB, gl.RGB, gl.UNSIGNED_BYTE, backdrop);
          uploaded = backdrop;
        }
        const [x, y, w, h] = cover(backdrop, width, height);
        gl.uniform4f(u("placement"), x / width, y / height, w / width, h / height);
        gl.uniform1i(u("kind"), 1);
      } else {
        gl.uniform3fv(u("colour"), cssRgb(backdrop));
        gl.uniform1i(u("kind"), 0);
      }
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    },
  };
}

// ---- the helper ----------------------------------------------------------------------------
export function attachAlphaVideo(video, canvas, { backdrop = "#000", mode = "auto" } = {}) {
  let painter = null;
  let triedGl = false;
  if (mode !== "2d") {
    triedGl = true;
    try {
      painter = createGl(canvas);
    } catch (err) {
      console.warn("alpha.js: WebGL set-up failed, using a 2D canvas:", err);
    }
    if (!painter && mode === "webgl") throw new Error("alpha.js: WebGL is not available");
  }
  // A canvas that gave out a WebGL context cannot give a 2D one: draw 2D on a fresh canvas.
  if (!painter) {
    painter = create2d(triedGl && canvas.getContext("webgl") ? swapCanvas(canvas) : canvas);
  }
  let current = backdrop;
  let running = true;
  let lastTime = -1;

  function draw() {
    const width = Math.floor(video.videoWidth / 2);
    const height = video.videoHeight;
    if (!width || !height) return;
    if (isImage(current) && !imageSize(current)[0]) return; // image still loading
    const target = painter.canvas;
    if (target.width !== width || target.height !== height) {
      target.width = width;
      target.height = height;
    }
    try {
      painter.draw(video, current, width, height);
    } catch (err) {
      console.warn("alpha.js: drawing failed (cross-origin video or backdrop?):", err);
      running = false;
    }
  }

  const frameCallback = "requestVideoFrameCallback" in HTMLVideoElement.prototype;
  function tick() {
    if (!running) return;
    if (video.readyState >= 2 && (frameCallback || video.currentTime !== lastTime)) {
      lastTime = video.currentTime;
      draw();
    }
    if (frameCallback) video.requestVideoFrameCallback(tick);
    else requestAnimationFrame(tick);
  }
  tick();

  return {
    mode: painter.mode,
    canvas: painter.canvas,
    setBackdrop(next) {
      current = next;
      if (isImage(next) && next instanceof HTMLImageElement && !next.complete) {
        next.addEventListener("load", () => current === next && draw(), { once: true });
      }
      if (video.readyState >= 2) draw();
    },
    stop() {
      running = false;
    },
  };
}

/** Replace `canvas` in the page by a fresh one with the same id/class/style; return it. */
function swapCanvas(canvas) {
  const fresh = canvas.cloneNode(false);
  canvas.replaceWith(fresh);
  return fresh;
}
