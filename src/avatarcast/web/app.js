// The demo page: pick an avatar (or build one), start a stream, watch it, make it speak.
//
// The flow is the one every integrator of the API follows (docs/api.md):
//   createsessionbyasset → poll statsession until 1 → startsession → watch PlayStreamAddr
//   (WHEP) and drive over the command channel → closesession.

import { ApiClient, ApiError, Status, fetchDemoConfig } from "./api.js";
import { Microphone, Utterance, decodeTo16kMono, sendClip } from "./audio.js";
import { loadCompositor } from "./backdrop.js";
import { deleteAvatar, errorText, initBuilder, ownedAvatars } from "./builder.js";
import { CommandChannel } from "./channel.js";
import { JanusPlayer } from "./janus.js";
import { WhepPlayer } from "./whep.js";
import { FINAL_TYPES, STATUS_WORDS, plainReason } from "./words.js";

const POLL_READY_MS = 400;
const READY_TIMEOUT_MS = 45_000;
const WATCH_STATUS_MS = 3_000;
const REFRESH_SESSIONS_MS = 10_000;
const BACKDROPS = ["#2f6bff", "#00b894", "#ffffff", "#111827", "#ff7a59"];

const $ = (id) => document.getElementById(id);

/** Everything about the stream this tab runs; null fields when nothing runs. */
const live = {
  api: null,
  session: null, // {id, protocol, playUrl, alpha}
  player: null,
  channel: null,
  mic: null,
  utterance: null,
  compositor: null,
  clip: null, // AbortController of an audio file being sent
  watchTimer: null,
  labels: new Map(), // ReqId → what sent it ("text", "microphone", file name)
};
let config = null;
let owned = []; // the key's own avatars (customservice list), after the shared ones
let builder = null;
let compositorFactory = null;
let backdrop = BACKDROPS[0];

// ---- small view helpers --------------------------------------------------------------------
function setState(text, kind = text) {
  const pill = $("state");
  pill.textContent = text;
  pill.dataset.state = kind.split(":")[0];
}

function log(text, kind = "info") {
  const item = document.createElement("li");
  item.className = `log-${kind}`;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString([], { hour12: false });
  const body = document.createElement("span");
  body.textContent = text;
  item.append(time, body);
  $("log").prepend(item);
  while ($("log").children.length > 200) $("log").lastChild.remove();
}

function showError(err) {
  const message = err instanceof ApiError ? `${err.code}: ${err.message.replace(/^\S+: /, "")}` : String(err.message || err);
  $("setup-error").textContent = message;
  log(message, "error");
}

function setDriving(enabled) {
  $("drive-card").dataset.enabled = String(enabled);
  for (const id of ["text", "speak", "interrupt", "voice", "talk", "audio-file", "audio-words"]) $(id).disabled = !enabled;
  $("drive-hint").textContent = enabled
    ? "Hold the button and speak; release to finish. Files are decoded here and sent paced like the spec."
    : "Start a stream first.";
  if (enabled && !Microphone.available()) {
    $("talk").disabled = true;
    $("drive-hint").textContent = "The microphone needs https or localhost; text and files work.";
  }
}

// ---- setup: credentials, avatars, protocols, backdrops ------------------------------------
/**
 * The picker: avatars every key may use (config), then this key's own (`owned`, with a
 * Delete button). `select` names the one to check; else the checked one stays checked.
 */
function renderAvatars(select) {
  const box = $("avatars");
  const current = select ?? document.querySelector('input[name="avatar"]:checked')?.value;
  const all = [...config.avatars, ...owned];
  const keep = all.some((a) => a.name === current);
  box.replaceChildren();
  all.forEach((avatar, i) => {
    const label = document.createElement("label");
    label.className = "avatar";
    label.innerHTML = `<input type="radio" name="avatar"><img alt=""><span></span>`;
    const input = label.querySelector("input");
    input.value = avatar.name;
    input.checked = keep
      ? avatar.name === current
      : avatar.name === config.default_avatar || (!config.default_avatar && i === 0);
    input.disabled = Boolean(live.session); // a running stream's avatar is fixed
    label.querySelector("img").src = avatar.thumbnail;
    label.querySelector("span").textContent = avatar.label || avatar.name;
    label.title = avatar.name;
    input.addEventListener("change", () => ($("placeholder-thumb").src = avatar.thumbnail));
    if (input.checked) $("placeholder-thumb").src = avatar.thumbnail;
    if (avatar.owned) label.append(deleteButton(avatar));
    box.append(label);
  });
}

/** Delete in two clicks ("Delete" → "Sure?" within 4 s): no dialog, no accidents. */
function deleteButton(avatar) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "delete";
  button.textContent = "Delete";
  button.title = `Delete ${avatar.name} (the files on the server)`;
  let disarm = null;
  button.addEventListener("click", async (event) => {
    event.preventDefault(); // not a click on the radio around it
    if (button.dataset.armed !== "true") {
      button.dataset.armed = "true";
      button.textContent = "Sure?";
      disarm = setTimeout(() => {
        button.dataset.armed = "false";
        button.textContent = "Delete";
      }, 4000);
      return;
    }
    clearTimeout(disarm);
    button.disabled = true;
    $("setup-error").textContent = "";
    try {
      await deleteAvatar(live.api, avatar.name);
      log(`avatar ${avatar.name} deleted`);
    } catch (err) {
      showError(err); // e.g. 100001: … used by 1 open session(s) …; close them first
    }
    await refreshOwned();
  });
  return button;
}

/** This key's own avatars into the picker (after sign-in, a build, a delete). */
async function refreshOwned(select) {
  if (!live.api) return;
  try {
    owned = await ownedAvatars(live.api);
  } catch (err) {
    owned = [];
    log(`cannot list your avatars: ${errorText(err)}`, "error");
  }
  renderAvatars(select);
}

function renderProtocols() {
  const select = $("protocol");
  select.replaceChildren(
    ...config.protocols.map((p) => new Option(p.label, p.name)),
  );
}

function renderVoices() {
  $("voice").replaceChildren(...(config.voices ?? []).map((v) => new Option(v.label, v.name)));
}

function renderBackdrops() {
  const box = $("swatches");
  for (const colour of BACKDROPS) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "swatch";
    button.style.background = colour;
    button.title = colour;
    button.dataset.colour = colour;
    button.setAttribute("aria-checked", String(colour === backdrop));
    button.addEventListener("click", () => chooseBackdrop(colour));
    box.append(button);
  }
  $("backdrop-color").addEventListener("input", (e) => chooseBackdrop(e.target.value));
  $("backdrop-image").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const image = new Image();
    image.src = URL.createObjectURL(file);
    await image.decode();
    chooseBackdrop(image);
  });
  $("transparent").addEventListener("change", () => {
    $("backdrops").hidden = !$("transparent").checked;
  });
}

function chooseBackdrop(next) {
  backdrop = next;
  for (const s of $("swatches").children) s.setAttribute("aria-checked", String(s.dataset.colour === next));
  const custom = typeof next === "string" && !BACKDROPS.includes(next);
  $("backdrop-color").parentElement.setAttribute("aria-checked", String(custom));
  $("screen").style.setProperty("--backdrop", typeof next === "string" ? next : "#000");
  if (!live.compositor) return;
  if (typeof live.compositor.setBackdrop === "function") {
    live.compositor.setBackdrop(next);
  } else {
    // A helper without setBackdrop: attach it again with the new backdrop.
    stopCompositor(live.compositor);
    live.compositor = compositorFactory($("video"), $("alpha-canvas"), { backdrop: next });
  }
}

/** Stops a compositor, whichever way its helper offers (a handle or a cleanup function). */
function stopCompositor(compositor) {
  if (typeof compositor === "function") compositor();
  else (compositor?.stop ?? compositor?.detach)?.call(compositor);
}

/** While a stream runs, its setup cannot change: those choices are made at creation. */
function lockSetup(locked) {
  for (const el of document.querySelectorAll("#avatars input, #protocol, #transparent")) el.disabled = locked;
}

function useCredentials(appkey, accesstoken, note) {
  live.api = new ApiClient(appkey, accesstoken);
  $("credential-note").textContent = note;
  $("start").disabled = false;
  builder?.enable();
  refreshSessions();
  refreshOwned();
}

function setupCredentials() {
  if (config.credentials) {
    const { appkey, accesstoken } = config.credentials;
    useCredentials(appkey, accesstoken, "development key (loopback)");
    return;
  }
  // Other hosts: the person types a key; it stays in this tab (sessionStorage), never sent
  // anywhere but as signatures.
  $("credentials-card").hidden = false;
  const saved = JSON.parse(sessionStorage.getItem("avatarcast-key") || "null");
  if (saved) {
    $("appkey").value = saved.appkey;
    $("accesstoken").value = saved.accesstoken;
    useCredentials(saved.appkey, saved.accesstoken, `key ${saved.appkey.slice(0, 6)}…`);
  }
  $("credentials-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const appkey = $("appkey").value.trim();
    const accesstoken = $("accesstoken").value.trim();
    sessionStorage.setItem("avatarcast-key", JSON.stringify({ appkey, accesstoken }));
    useCredentials(appkey, accesstoken, `key ${appkey.slice(0, 6)}…`);
  });
}

/** One UserId per tab: creating again from this tab replaces this tab's earlier stream. */
function userId() {
  let id = sessionStorage.getItem("avatarcast-user");
  if (!id) {
    id = `web-${crypto.getRandomValues(new Uint32Array(1))[0].toString(16)}`;
    sessionStorage.setItem("avatarcast-user", id);
  }
  return id;
}

// ---- the stream's life ---------------------------------------------------------------------
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitReady(sessionId) {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const stat = await live.api.call("statsession", { SessionId: sessionId });
    if (stat.SessionStatus === Status.READY) return stat;
    if (stat.SessionStatus === Status.FAILED || stat.SessionStatus === Status.CLOSED) {
      throw new Error(`the stream did not start: ${stat.ErrorMessage || "closed"} (${stat.ErrorCode})`);
    }
    await sleep(POLL_READY_MS);
  }
  throw new Error("the stream did not become ready in 45 s");
}

async function startStream() {
  $("setup-error").textContent = "";
  $("start").disabled = true;
  lockSetup(true);
  const avatar = document.querySelector('input[name="avatar"]:checked')?.value;
  const protocol = $("protocol").value;
  const alpha = $("transparent").checked;
  try {
    setState("creating session", "connecting");
    const created = await live.api.call("createsessionbyasset", {
      AssetVirtualmanKey: avatar,
      UserId: userId(),
      Protocol: protocol,
      DriverType: 3,
      ExtraInfo: { AlphaChannelEnable: alpha },
    });
    const id = created.SessionId;
    live.session = { id, protocol, alpha, playUrl: created.PlayStreamAddr };
    log(`session ${id.slice(0, 8)} created (${avatar}, ${protocol}${alpha ? ", transparent" : ""})`);
    setState("preparing", "connecting");
    const ready = await waitReady(id);
    live.session.playUrl = ready.PlayStreamAddr || live.session.playUrl;
    await live.api.call("startsession", { SessionId: id });
    log(`session ${id.slice(0, 8)} started`);
    showSession();
    await openChannel();
    play();
    live.watchTimer = setInterval(watchStatus, WATCH_STATUS_MS);
    $("stop").disabled = false;
    setDriving(true);
  } catch (err) {
    showError(err);
    if (live.session) await stopStream({ reason: "closed: did not start" });
    else setState("not started", "idle");
    $("start").disabled = false;
    lockSetup(false);
  }
  refreshSessions();
}

function showSession() {
  const { id, protocol, playUrl } = live.session;
  $("session-meta").innerHTML = "";
  const strong = document.createElement("strong");
  strong.textContent = "Session ";
  const code = document.createElement("code");
  code.textContent = id;
  $("session-meta").append(strong, code);
  $("play-url-text").textContent = playUrl;
  $("play-url").hidden = false;
  $("play-url-hint").textContent = {
    webrtc: "A WHEP URL: this page plays it; OBS, GStreamer whepsrc or any WHEP player can too.",
    rtmp: "Play it with VLC or ffplay; this page cannot play RTMP.",
    trtc: "Join the LiveKit room with this URL and token (LiveKit's Meet or SDKs).",
    janus: "Janus's API, room and feed: this page subscribes through Janus (web/janus.js), as any number of viewers can.",
  }[protocol] || "";
}

function play() {
  const { protocol, playUrl, alpha } = live.session;
  $("screen").dataset.mode = alpha ? "alpha" : "video";
  const viaJanus = protocol === "janus" && config.janus_url;
  if (protocol !== "webrtc" && !viaJanus) {
    $("screen").dataset.mode = "external";
    setState("streaming elsewhere", "playing");
    return;
  }
  const video = $("video");
  // the stage takes the stream's shape: 9:16 for most avatars, 16:9 for a wide video avatar
  // (a transparent stream carries the matte beside the picture: half its width shows)
  video.onresize = () => {
    if (!video.videoWidth || !video.videoHeight) return;
    const width = alpha ? video.videoWidth / 2 : video.videoWidth;
    $("screen").style.aspectRatio = `${width} / ${video.videoHeight}`;
  };
  const Player = viaJanus ? JanusPlayer : WhepPlayer;
  live.player = new Player(playUrl, video, (state, detail) => {
    if (state === "stopped") return;
    setState(state);
    if (detail) log(`video: ${state} (${detail})`, "warn");
  });
  live.player.start();
  $("unmute").hidden = false;
  if (alpha) {
    live.compositor = compositorFactory(video, $("alpha-canvas"), { backdrop });
  }
}

async function openChannel() {
  const { id } = live.session;
  live.channel = new CommandChannel(id, () => live.api.channelUrl(id), {
    onMessage: showMessage,
    onState: (s) => {
      if (s === "reconnecting") log("command channel: reconnecting", "warn");
    },
  });
  await live.channel.open();
}

function showMessage(msg) {
  const who = live.labels.get(msg.ReqId) || "request";
  if (msg.Type === 9) {
    log(`${who}: error ${msg.ErrorCode} ${msg.ErrorMessage}`, "error");
    return;
  }
  const final = msg.FinalType ? ` (${FINAL_TYPES[msg.FinalType] || msg.FinalType})` : "";
  log(`${who}: ${msg.SpeakStatus}${final}`, /^(Audio|Text|Sentence)Start$/.test(msg.SpeakStatus) ? "start" : "status");
}

/** Notices a session that ended on the server's side (idle, replaced, shut down). */
async function watchStatus() {
  if (!live.session) return;
  try {
    const stat = await live.api.call("statsession", { SessionId: live.session.id });
    if (stat.SessionStatus === Status.CLOSED || stat.SessionStatus === Status.FAILED) {
      await stopStream({ reason: plainReason(stat.ErrorMessage || "closed"), remote: true });
    }
  } catch (err) {
    if (err instanceof ApiError && err.code === 110018) {
      await stopStream({ reason: "closed: the session is gone", remote: true });
    }
  }
}

async function stopStream({ reason = "closed", remote = false } = {}) {
  const session = live.session;
  if (!session) return;
  live.session = null;
  clearInterval(live.watchTimer);
  live.clip?.abort();
  // the WHEP resource goes before the session (a DELETE after closesession would 404);
  // a stuck DELETE does not hold the close up for more than a second
  const left = Promise.race([live.player?.stop(), new Promise((ok) => setTimeout(ok, 1000))]);
  live.channel?.close();
  live.mic?.close();
  if (live.compositor) stopCompositor(live.compositor);
  lockSetup(false);
  Object.assign(live, { player: null, channel: null, mic: null, compositor: null, utterance: null });
  setDriving(false);
  $("stop").disabled = true;
  $("start").disabled = false;
  $("unmute").hidden = true;
  $("screen").dataset.mode = "idle";
  $("screen").style.aspectRatio = "";
  if (!remote) {
    await left;
    try {
      await live.api.call("closesession", { SessionId: session.id });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 110013)) log(`close: ${err.message}`, "warn");
    }
  }
  setState(reason.startsWith("closed") ? reason : `closed: ${reason}`, "closed");
  log(`session ${session.id.slice(0, 8)} ${reason}`);
  refreshSessions();
}

// ---- driving -------------------------------------------------------------------------------
function sendText(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text || !live.channel) return;
  const data = { Text: text, Interrupt: false };
  if ($("voice").value) data.Voice = $("voice").value; // ours: the voice of this request
  const reqId = live.channel.send("SEND_TEXT", data);
  live.labels.set(reqId, "text");
}

function interrupt() {
  if (!live.channel) return;
  live.clip?.abort();
  const reqId = live.channel.send("SEND_TEXT", { Text: "", Interrupt: true });
  live.labels.set(reqId, "interrupt");
  log("interrupt sent");
}

async function talkStart(event) {
  event.preventDefault();
  if (!live.channel || live.utterance) return;
  $("talk").setAttribute("aria-pressed", "true");
  $("talk-label").textContent = "Listening… release to send";
  // Barge-in, like a person: the first chunk stops whatever the avatar is saying.
  const utterance = new Utterance(live.channel, {
    interrupt: true,
    onStart: (reqId) => live.labels.set(reqId, "microphone"),
  });
  live.utterance = utterance;
  try {
    live.mic ??= new Microphone();
    await live.mic.begin((samples) => utterance.push(samples));
    if (live.utterance !== utterance) live.mic.end(); // released before the mic was ready
  } catch (err) {
    log(`microphone: ${err.message}`, "error");
    talkEnd();
  }
}

function talkEnd() {
  const utterance = live.utterance;
  if (!utterance) return;
  live.utterance = null;
  live.mic?.end();
  $("talk").setAttribute("aria-pressed", "false");
  $("talk-label").textContent = "Hold to talk";
  utterance.finish();
}

async function sendFile(event) {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file || !live.channel) return;
  try {
    const samples = await decodeTo16kMono(await file.arrayBuffer());
    const words = $("audio-words").value.trim();
    log(`${file.name}: ${(samples.length / 16000).toFixed(1)} s decoded, sending${words ? " with its words" : ""}`);
    live.clip?.abort();
    live.clip = new AbortController();
    await sendClip(live.channel, samples, {
      text: words || undefined,
      signal: live.clip.signal,
      onStart: (reqId) => live.labels.set(reqId, file.name),
    });
  } catch (err) {
    log(`${file.name}: cannot decode (${err.message})`, "error");
  }
}

// ---- the session list ----------------------------------------------------------------------
async function refreshSessions() {
  if (!live.api) return;
  let sessions;
  try {
    sessions = (await live.api.call("listsessionofuin")).Sessions;
  } catch (err) {
    $("sessions").replaceChildren(Object.assign(document.createElement("li"), {
      className: "muted", textContent: `cannot list sessions: ${err.message}`,
    }));
    return;
  }
  const list = $("sessions");
  if (!sessions.length) {
    list.replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "None." }));
    return;
  }
  list.replaceChildren(...sessions.map((s) => {
    const item = document.createElement("li");
    const mine = live.session?.id === s.SessionId;
    item.innerHTML = `<div><code></code><span class="who"></span></div><span class="badge"></span><button class="btn small ghost" type="button">Close</button>`;
    item.querySelector("code").textContent = s.SessionId.slice(0, 12) + "…";
    item.querySelector(".who").textContent = ` ${s.UserId}${mine ? " (this tab)" : ""}`;
    item.querySelector(".badge").textContent = STATUS_WORDS[s.SessionStatus] || s.SessionStatus;
    item.querySelector("button").addEventListener("click", async () => {
      if (mine) return stopStream({ reason: "closed" });
      try {
        await live.api.call("closesession", { SessionId: s.SessionId });
        log(`session ${s.SessionId.slice(0, 8)} closed from the list`);
      } catch (err) {
        log(`close: ${err.message}`, "warn");
      }
      refreshSessions();
    });
    return item;
  }));
}

// ---- wiring --------------------------------------------------------------------------------
function wire() {
  builder = initBuilder({
    getApi: () => live.api,
    log,
    onBuilt: (assetKey) => refreshOwned(assetKey),
    uploadLimitMb: () => config?.avatar_upload_max_mb ?? null,
  });
  $("start").addEventListener("click", startStream);
  $("stop").addEventListener("click", () => stopStream({ reason: "closed" }));
  $("text-form").addEventListener("submit", sendText);
  $("interrupt").addEventListener("click", interrupt);
  $("audio-file").addEventListener("change", sendFile);
  $("clear-log").addEventListener("click", () => $("log").replaceChildren());
  $("refresh-sessions").addEventListener("click", refreshSessions);
  $("copy-play-url").addEventListener("click", () => navigator.clipboard?.writeText($("play-url-text").textContent));
  $("unmute").addEventListener("click", () => {
    $("video").muted = false;
    $("video").play().catch(() => {});
    $("unmute").hidden = true;
  });
  // Hold to talk: pointer events cover mouse, touch and pen; keyboard users hold Space/Enter.
  const talk = $("talk");
  talk.addEventListener("pointerdown", (e) => {
    talk.setPointerCapture?.(e.pointerId);
    talkStart(e);
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) talk.addEventListener(type, talkEnd);
  talk.addEventListener("keydown", (e) => {
    if ((e.key === " " || e.key === "Enter") && !e.repeat) talkStart(e);
  });
  talk.addEventListener("keyup", (e) => {
    if (e.key === " " || e.key === "Enter") talkEnd();
  });
  // Closing the tab closes the session, so it does not hold the key's quota for 10 minutes.
  window.addEventListener("pagehide", () => {
    if (live.session) live.api.closeOnUnload(live.session.id);
  });
  setInterval(refreshSessions, REFRESH_SESSIONS_MS);
}

async function main() {
  wire();
  setDriving(false);
  renderBackdrops();
  try {
    config = await fetchDemoConfig();
  } catch (err) {
    showError(err);
    return;
  }
  $("idle-minutes").textContent = String(Math.round(config.idle_timeout_s / 60));
  const compositor = await loadCompositor(config.alpha_helper);
  compositorFactory = compositor.attach;
  document.body.dataset.compositor = compositor.name;
  renderAvatars();
  renderProtocols();
  renderVoices();
  setupCredentials();
  document.body.dataset.ready = "true"; // for tests and for CSS: the page is usable
}

main();
