/**
 * Durations an operator types (`--for 2h`, `--since 7d`, `"for": "30m"` in the HTTP API), parsed by `ms`: a number
 * with a unit (ms, s, m, h, d, w; `1.5h`, `90 minutes`). A bare number is refused: `--for 2` is a typo, not two
 * milliseconds.
 */
import ms from "ms";

/** Milliseconds, or why not (a sentence naming the expected form). */
export function parseDuration(text: string): number | { readonly error: string } {
  const t = text.trim();
  const n = /^\d+(\.\d+)?\s*[a-z]+$/i.test(t) ? ms(t as ms.StringValue) : undefined;
  if (n === undefined || !Number.isFinite(n) || n <= 0) return { error: `'${text}' is not a duration (a number and a unit: 30m, 2h, 7d)` };
  return Math.round(n);
}

/** A point in time: a duration before `now` (`2h`: two hours ago) or an ISO 8601 date (`2026-12-01T03:00:00Z`). */
export function parseSince(text: string, now: number): number | { readonly error: string } {
  const d = parseDuration(text);
  if (typeof d === "number") return now - d;
  const t = /^\d{4}-\d{2}-\d{2}/.test(text.trim()) ? Date.parse(text.trim()) : Number.NaN;
  if (Number.isNaN(t)) return { error: `'${text}' is neither a duration (2h, 7d) nor a date (2026-12-01 or 2026-12-01T03:00:00Z)` };
  return t;
}
