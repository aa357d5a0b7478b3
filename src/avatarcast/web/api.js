// The IVH API from the browser: request signing and the session calls.
//
// Signature (docs/api.md): every query parameter except `signature`, sorted by name, joined
// as `k=v&k=v` with raw values; HMAC-SHA256 with the accesstoken; Base64; URL-encoded in the
// query. The body is not signed.

import { hmacSha256 } from "./sha256.js";

export const SESSION_BASE = "/v2/ivh/sessionmanager/sessionmanagerservice/";
export const CUSTOM_BASE = "/v2/ivh/assetmanager/customservice/";
export const COMMAND_CHANNEL_PATH = "/v2/ws/ivh/interactdriver/interactdriverservice/commandchannel";
export const Status = Object.freeze({ READY: 1, CLOSED: 2, PREPARING: 3, FAILED: 4 });

const encoder = new TextEncoder();

/** A fresh ReqId: 32 lowercase hex characters. */
export function newReqId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** "k=v&k=v" of every parameter except `signature`, sorted by name, raw values. */
export function stringToSign(params) {
  return Object.keys(params)
    .filter((k) => k !== "signature")
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join("&");
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/** Base64(HMAC-SHA256(accesstoken, stringToSign(params))), with WebCrypto when available. */
export async function sign(params, accesstoken) {
  const message = encoder.encode(stringToSign(params));
  if (globalThis.crypto?.subtle) {
    const key = await crypto.subtle.importKey(
      "raw", encoder.encode(accesstoken), { name: "HMAC", hash: "SHA-256" }, false, ["sign"],
    );
    return base64(new Uint8Array(await crypto.subtle.sign("HMAC", key, message)));
  }
  return signSync(params, accesstoken);
}

/** The same signature computed synchronously (plain JS; for non-secure contexts, pagehide). */
export function signSync(params, accesstoken) {
  return base64(hmacSha256(encoder.encode(accesstoken), encoder.encode(stringToSign(params))));
}

export class ApiError extends Error {
  constructor(code, message, requestId = "") {
    super(`${code}: ${message}`);
    this.code = code;
    this.requestId = requestId;
  }
}

/** Calls the session API as one key. */
export class ApiClient {
  constructor(appkey, accesstoken, baseUrl = location.origin) {
    this.appkey = appkey;
    this.accesstoken = accesstoken;
    this.baseUrl = baseUrl.replace(/\/$/, "");
  }

  #query(extra) {
    // A fresh nonce on every URL: required by a server with replay protection on (setting
    // replay_nonce), signed and ignored otherwise.
    const nonce = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
      b.toString(16).padStart(2, "0"),
    ).join("");
    return {
      appkey: this.appkey,
      timestamp: String(Math.floor(Date.now() / 1000)),
      nonce,
      ...extra,
    };
  }

  static #url(base, path, params, signature) {
    const query = new URLSearchParams({ ...params, signature });
    return `${base}${path}?${query}`;
  }

  /** The signed URL of an API path (extra query parameters are signed too). */
  async signedUrl(path, extra = {}) {
    const params = this.#query(extra);
    return ApiClient.#url(this.baseUrl, path, params, await sign(params, this.accesstoken));
  }

  /** The same, synchronously: usable where no promise may be awaited (pagehide). */
  signedUrlSync(path, extra = {}) {
    const params = this.#query(extra);
    return ApiClient.#url(this.baseUrl, path, params, signSync(params, this.accesstoken));
  }

  /** The command channel's WebSocket URL for a session (ws: or wss: like the page). */
  async channelUrl(sessionId) {
    const url = await this.signedUrl(COMMAND_CHANNEL_PATH, { requestid: sessionId });
    return url.replace(/^http/, "ws");
  }

  /** POST one session call; resolves to its Payload, rejects with ApiError on Code != 0. */
  async call(name, fields = {}) {
    return this.post(SESSION_BASE + name, fields);
  }

  /** POST one customservice call (the avatar builder: make, getprogress, list, ...). */
  async custom(name, fields = {}) {
    return this.post(CUSTOM_BASE + name, fields);
  }

  /** POST `fields` (plus a fresh ReqId) to an API path; its Payload, or ApiError. */
  async post(path, fields = {}) {
    const url = await this.signedUrl(path);
    const body = JSON.stringify({ Header: {}, Payload: { ReqId: newReqId(), ...fields } });
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
    });
    const answer = await response.json().catch(() => null);
    return payloadOf(response.status, response.statusText, answer);
  }

  /**
   * customservice `upload`: the file's raw bytes as the body (application/octet-stream),
   * the query signed like every call (the body is not signed). XMLHttpRequest rather than
   * fetch because only it reports upload progress: `onProgress(sentBytes, totalBytes)`.
   * Resolves to the Payload ({MaterialId, Size}); rejects with ApiError.
   */
  async upload(file, onProgress = () => {}) {
    const url = await this.signedUrl(CUSTOM_BASE + "upload");
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.responseType = "json";
      xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
      xhr.onload = () => {
        try {
          resolve(payloadOf(xhr.status, xhr.statusText, xhr.response));
        } catch (err) {
          reject(err);
        }
      };
      xhr.onerror = () => reject(new ApiError(0, "the upload failed (network error)"));
      xhr.onabort = () => reject(new ApiError(0, "the upload was aborted"));
      xhr.send(file);
    });
  }

  /**
   * closesession that survives the page going away. `keepalive` lets the request outlive the
   * document; sendBeacon cannot set a JSON content type. Signed synchronously because a
   * `pagehide` handler cannot wait for WebCrypto's promise.
   */
  closeOnUnload(sessionId) {
    const url = this.signedUrlSync(SESSION_BASE + "closesession");
    const body = JSON.stringify({ Header: {}, Payload: { ReqId: newReqId(), SessionId: sessionId } });
    fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
      keepalive: true,
    }).catch(() => {});
  }
}

/** An answer's Payload; ApiError for an HTTP error or a Header.Code other than 0. */
function payloadOf(status, statusText, answer) {
  if (status < 200 || status >= 300 || !answer?.Header) {
    throw new ApiError(status, answer?.error || statusText || "no answer");
  }
  const { Code, Message, RequestID } = answer.Header;
  if (Code !== 0) throw new ApiError(Code, Message, RequestID);
  return answer.Payload;
}

/** The page's configuration: protocols, avatars, and (on loopback only) the dev key. */
export async function fetchDemoConfig() {
  const response = await fetch("/v2/demo/config", { cache: "no-store" });
  if (!response.ok) throw new Error(`demo config: HTTP ${response.status}`);
  return response.json();
}
