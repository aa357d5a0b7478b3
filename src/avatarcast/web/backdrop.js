// Transparent background: show the avatar over a backdrop the page picks.
//
// A transparent-background stream packs colour on the left half and the matte (alpha as
// luma) on the right half of each frame (docs/outputs.md, render/alpha.py). The helper the
// server names (`attachAlphaVideo(video, canvas, {backdrop})`, normally /web/alpha.js)
// composites it; when the server names none or it does not load, the page falls back to
// this package's own alpha.js on a plain 2D canvas (one compositor, no second copy).

import { attachAlphaVideo } from "./alpha.js";

/**
 * The compositor to use: the helper the server names when it loads, else the fallback.
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

/**
 * Composites each new frame of `video` (colour | matte) over `backdrop` (a CSS colour or
 * an image) onto `canvas`, with alpha.js's 2D path. Returns {setBackdrop(b), stop()}.
 */
export function fallbackAttach(video, canvas, { backdrop = "#000" } = {}) {
  return attachAlphaVideo(video, canvas, { backdrop, mode: "2d" });
}
