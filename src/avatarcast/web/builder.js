// "Build your own avatar": the customservice flow of docs/api.md, from the browser.
//
//   upload (the file's raw bytes) → make (MaterialId, VirtualmanName, Background, Size,
//   Transcript)
//   → poll getprogress (SUBMIT → PROCESS → TRAIN → CONFIRM) → customerconfirm
//
// and the key's own avatars for the picker (`list`, `delete`). An avatar made through the
// API belongs to the key that made it: its thumbnail URL is signed with that key (the server
// refuses it unsigned, see api/web.py), so the page signs each <img> URL here.

import { ApiError } from "./api.js";

const POLL_MS = 700;
const MAX_POLL_ERRORS = 5; // network hiccups tolerated in a row while polling
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,39}$/;
const VIDEO_EXT = /\.(mp4|m4v|mov|webm|mkv)$/i;

/** What each stage means, in plain words (photo, video). */
const STAGE_WORDS = {
  UPLOAD: ["uploading", "uploading"],
  SUBMIT: ["waiting for the builder to start", "waiting for the builder to start"],
  PROCESS: ["checking the photo and finding the face", "checking the video and tracking the face"],
  TRAIN: ["building the face: mouth shapes and blinks", "cutting the idle loop and building the mouth shapes"],
  CONFIRM: ["built; registering it", "built; registering it"],
  END: ["ready", "ready"],
};
const STAGE_ORDER = ["UPLOAD", "SUBMIT", "PROCESS", "TRAIN", "CONFIRM"];

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const mb = (bytes) => (bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0);

/** "CODE: message" of an error (ApiError already reads that way). */
export function errorText(err) {
  return err instanceof ApiError ? err.message : String(err?.message || err);
}

export function isVideo(file) {
  return Boolean(file) && (file.type.startsWith("video/") || VIDEO_EXT.test(file.name));
}

/** A name the server accepts, suggested from a file name ("My Photo.JPG" → "my-photo"). */
export function suggestName(fileName) {
  const stem = fileName.replace(/\.[^.]*$/, "").toLowerCase();
  return stem.replace(/[^a-z0-9_-]+/g, "-").replace(/^[-_]+|-+$/g, "").slice(0, 40);
}

/**
 * The key's own avatars (customservice `list`) as picker entries, thumbnails signed by the
 * key: {name: AssetVirtualmanKey, label: VirtualmanName, kind, thumbnail, owned: true}.
 */
export async function ownedAvatars(api) {
  const { Avatars } = await api.custom("list");
  return Promise.all(Avatars.map(async (a) => ({
    name: a.AssetVirtualmanKey,
    label: a.VirtualmanName,
    kind: a.Kind,
    owned: true,
    thumbnail: await api.signedUrl(`/v2/demo/avatars/${encodeURIComponent(a.AssetVirtualmanKey)}/thumbnail.png`),
  })));
}

/** customservice `delete` of one of the key's avatars (refused while a session streams it). */
export async function deleteAvatar(api, assetKey) {
  await api.custom("delete", { AssetVirtualmanKey: assetKey });
}

/**
 * Wires the panel. `getApi()` is the signed client (null before credentials), `log(text,
 * kind)` the page's activity log, `onBuilt(assetKey)` runs once an avatar is confirmed,
 * `uploadLimitMb()` is the server's upload limit (MiB; none known: null).
 */
export function initBuilder({ getApi, log, onBuilt, uploadLimitMb = () => null }) {
  let running = false;
  // An upload that a refused `make` left unused (bad name, name in use): a retry with the
  // same file reuses it instead of uploading again (the server keeps it for an hour).
  let unused = null; // {file, materialId}
  const form = $("build-form");
  const fileInput = $("build-file");

  function setRunning(on) {
    running = on;
    for (const el of form.querySelectorAll("input, select, button")) el.disabled = on;
    if (!on) $("build").disabled = !getApi();
    $("build").textContent = on ? "Building…" : "Build avatar";
  }

  function showKind() {
    const video = isVideo(fileInput.files[0]);
    $("build-size-field").hidden = !video;
    $("build-transcript-field").hidden = !video;
  }

  function fail(text) {
    $("build-error").textContent = text;
    log(`build: ${text}`, "error");
  }

  function showStage(stage, percent, words, failed = false) {
    $("build-progress").hidden = false;
    const at = STAGE_ORDER.indexOf(stage === "END" ? "CONFIRM" : stage);
    for (const item of $("build-stages").children) {
      const i = STAGE_ORDER.indexOf(item.dataset.stage);
      item.dataset.state = i < at ? "done" : i === at ? (failed ? "failed" : "current") : "todo";
    }
    if (stage === "CONFIRM" || stage === "END") {
      for (const item of $("build-stages").children) item.dataset.state = "done";
    }
    $("build-bar").value = percent;
    $("build-progress").dataset.stage = stage;
    $("build-status").textContent = words;
  }

  async function poll(api, taskId, name, kindIndex) {
    let errors = 0;
    let last = "";
    for (;;) {
      let p;
      try {
        p = await api.custom("getprogress", { TaskId: taskId });
        errors = 0;
      } catch (err) {
        // A coded answer (or an HTTP 4xx) is final; a network hiccup or a 5xx is tried again.
        const transient = !(err instanceof ApiError) || err.code === 0 || (err.code >= 500 && err.code < 600);
        if (!transient) throw err;
        if (++errors >= MAX_POLL_ERRORS) throw err;
        await sleep(POLL_MS);
        continue;
      }
      const words = STAGE_WORDS[p.StageV2]?.[kindIndex] || p.StageV2;
      if (p.Status === "FAIL") {
        showStage(p.StageV2, p.Progress, `failed while ${words}`, true);
        return p;
      }
      showStage(p.StageV2, p.Progress, `${words} — ${p.Progress}%`);
      if (p.StageV2 !== last) log(`build ${name}: ${p.StageV2} (${words})`);
      last = p.StageV2;
      if (p.Status === "SUCCESS") return p;
      await sleep(POLL_MS);
    }
  }

  async function upload(api, file, name) {
    showStage("UPLOAD", 0, `uploading ${mb(file.size)} MB`);
    log(`build ${name}: uploading ${file.name} (${mb(file.size)} MB)`);
    const { MaterialId } = await api.upload(file, (sent, total) => {
      const pct = total ? Math.round((100 * sent) / total) : 0;
      showStage("UPLOAD", pct, `uploading ${mb(sent)} of ${mb(total)} MB (${pct}%)`);
    });
    unused = { file, materialId: MaterialId };
    return MaterialId;
  }

  /** upload (or reuse an unused upload of this file) → make → TaskId. */
  async function submit(api, file, name, fields) {
    const reuse = unused?.file === file ? unused.materialId : null;
    if (reuse) log(`build ${name}: using the upload of ${file.name} made before`);
    try {
      const { TaskId } = await api.custom("make", { MaterialId: reuse ?? (await upload(api, file, name)), ...fields });
      unused = null; // consumed by the build
      return TaskId;
    } catch (err) {
      // The kept upload expired meanwhile: upload again, once.
      if (!(reuse && err instanceof ApiError && /upload/i.test(err.message))) throw err;
      unused = null;
      const { TaskId } = await api.custom("make", { MaterialId: await upload(api, file, name), ...fields });
      unused = null;
      return TaskId;
    }
  }

  async function build(event) {
    event.preventDefault();
    const api = getApi();
    const file = fileInput.files[0];
    const name = $("build-name").value.trim();
    $("build-error").textContent = "";
    if (!api || running) return;
    if (!file) return fail("pick a photo (PNG, JPEG) or a video (MP4, MOV, WebM) first");
    if (!NAME_RE.test(name) || name === "default") {
      return fail("the name must be 1–40 lowercase letters, digits, - or _, starting with a letter or digit (not \"default\")");
    }
    const limit = uploadLimitMb();
    if (limit && file.size > limit * 2 ** 20) {
      return fail(`${file.name} is ${mb(file.size)} MB; this server takes files up to ${limit} MiB`);
    }
    const video = isVideo(file);
    const kindIndex = video ? 1 : 0;
    const fields = { VirtualmanName: name, Background: $("build-background").value };
    if (video && $("build-size").value) fields.Size = $("build-size").value;
    const transcript = $("build-transcript").value.trim();
    if (video && transcript) fields.Transcript = transcript;

    setRunning(true);
    $("build-progress").hidden = false;
    $("build-progress").dataset.result = "running";
    $("build-result").hidden = true;
    try {
      const TaskId = await submit(api, file, name, fields);
      log(`build ${name}: task ${TaskId} submitted`);
      showStage("SUBMIT", 0, STAGE_WORDS.SUBMIT[kindIndex]);
      const done = await poll(api, TaskId, name, kindIndex);
      if (done.Status === "FAIL") {
        const reason = done.FailReason ? ` (${done.FailReason})` : "";
        fail(`${name} was not built: ${done.FailMessage || "the build failed"}${reason}`);
        $("build-progress").dataset.result = "failed";
        return;
      }
      const confirmed = await api.custom("customerconfirm", { TaskId });
      const key = confirmed.AssetVirtualmanKey;
      showStage("END", 100, `ready: ${key}`);
      $("build-progress").dataset.result = "done";
      log(`build ${name}: ready as ${key}`, "start");
      $("build-result").hidden = false;
      // the build went on despite these; each says how a new recording would do better
      const tips = (done.Warnings || []).map((w) => w.Message);
      $("build-result").textContent =
        `Built "${name}". It is selected in the picker above: press Start stream.` +
        (tips.length ? ` To make it better: ${tips.join("; ")}.` : "");
      for (const tip of tips) log(`build ${name}: ${tip}`);
      await onBuilt(key);
    } catch (err) {
      fail(errorText(err));
      $("build-progress").dataset.result = "failed";
      for (const item of $("build-stages").children) {
        if (item.dataset.state === "current") item.dataset.state = "failed";
      }
      $("build-status").textContent = "stopped: see the message below";
    } finally {
      setRunning(false);
    }
  }

  fileInput.addEventListener("change", () => {
    showKind();
    const file = fileInput.files[0];
    if (file && !$("build-name").value) $("build-name").value = suggestName(file.name);
  });
  form.addEventListener("submit", build);
  showKind();
  return {
    /** Credentials arrived (or changed): the button becomes usable. */
    enable() {
      if (!running) $("build").disabled = !getApi();
    },
  };
}
