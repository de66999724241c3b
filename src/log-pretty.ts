/**
 * A readable form of failoverd's pino lines for a person at a terminal: `12:00:01.234 WARN  message  key=value`.
 * journald and files get the JSON lines untouched; this is used only when stdout is a TTY. Colours only on a TTY and
 * never when NO_COLOR is set to anything but the empty string (https://no-color.org).
 */
import { Writable } from "node:stream";

const LEVEL_COLOR: Record<string, string> = { trace: "90", debug: "36", info: "32", warn: "33", error: "31", fatal: "35" };
const HIDDEN = new Set(["level", "time", "msg", "app", "pid", "hostname"]);

export function formatLine(line: string, color: boolean): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof o["time"] === "string" ? o["time"].slice(11, 23) : "";
  const level = String(o["level"] ?? "info");
  const tag = level.toUpperCase().padEnd(5);
  const paint = (code: string | undefined, s: string) => (color && code ? `\u001b[${code}m${s}\u001b[0m` : s);
  const fields = Object.entries(o)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${paint("90", time)} ${paint(LEVEL_COLOR[level], tag)} ${String(o["msg"] ?? "")}${fields ? `  ${paint("90", fields)}` : ""}`;
}

/** A stream for pino that writes each JSON line formatted to `out`. */
export function prettyStream(out: NodeJS.WritableStream & { isTTY?: boolean }): Writable {
  let pending = "";
  return new Writable({
    write(chunk: Buffer | string, _enc, done) {
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      const color = out.isTTY === true && !noColor();
      for (const l of lines) if (l !== "") out.write(`${formatLine(l, color)}\n`);
      done();
    },
  });
}

/** NO_COLOR present and not empty: no ANSI colour anywhere. */
export function noColor(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env["NO_COLOR"] ?? "") !== "";
}
