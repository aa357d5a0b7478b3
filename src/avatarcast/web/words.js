// What the page says about sessions and requests, in plain words.

export const STATUS_WORDS = { 1: "ready", 2: "closed", 3: "preparing", 4: "failed" };
export const FINAL_TYPES = { 1: "done", 2: "timed out", 3: "interrupted" };

/**
 * A statsession ErrorMessage for people: "closed: idle for 601 s" → "closed: idle for 10
 * minutes" (the server reports the idle time it measured, a little over the limit).
 */
export function plainReason(message) {
  return message.replace(/idle for (\d+(?:\.\d+)?) s\b/, (whole, seconds) => {
    const minutes = Math.floor(Number(seconds) / 60);
    if (minutes < 1) return whole;
    return `idle for ${minutes} minute${minutes === 1 ? "" : "s"}`;
  });
}
