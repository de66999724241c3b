/**
 * An HAProxy Runtime API client over a TCP (or unix) socket. HAProxy answers one line per connection and closes;
 * this client writes the line and reads to the end, under a deadline. A line may hold several commands separated by
 * `;`: HAProxy runs them all, in order, and ends each reply with an empty line, so the changes of a whole recovery
 * step (16 ports: 32 commands) go to an HAProxy on one connection. Every reply is parsed: a reply that is not the
 * documented success becomes a HaproxyCommandError, because the API prints errors as plain text with no status code.
 */
import { createConnection } from "node:net";
import { HaproxyCommandError, ProbeError } from "../errors.ts";

export type AdminState = "ready" | "maint" | "drain";

export interface ServerState {
  readonly backend: string;
  readonly server: string;
  readonly address: string;
  readonly port: number;
  /** 0 = down, 2 = running (1 = going up, 3 = going down). */
  readonly opState: number;
  /** Bitmask: 1 forced maint, 2 inherited maint, 4 maint from the config (`disabled`), 8 forced drain, 16 inherited drain, 32 maint via DNS resolution. */
  readonly adminState: number;
  /** True when the server is in any maintenance mode. */
  readonly inMaint: boolean;
  /** True when the server is drained (forced or inherited): it takes no new connection, its checks go on. */
  readonly inDrain: boolean;
  readonly isUp: boolean;
}

export interface StatRow {
  readonly proxy: string;
  readonly server: string;
  readonly status: string;
  readonly currentSessions: number;
  readonly checkStatus: string;
  readonly address: string;
}

/** One change to one server of an HAProxy, sent with `HaproxyAdminClient.apply`. */
export type ServerCommand =
  | { readonly op: "state"; readonly backend: string; readonly server: string; readonly state: AdminState }
  /** A forced health result: temporary (the next checks override it), used to skip `rise` after a verified change. */
  | { readonly op: "health"; readonly backend: string; readonly server: string; readonly health: "up" | "down" }
  | { readonly op: "shutdown-sessions"; readonly backend: string; readonly server: string }
  | { readonly op: "addr"; readonly backend: string; readonly server: string; readonly address: string; readonly port: number };

/** Builders of ServerCommands: `cmd.state("be_redis_9001", "redis1", "maint")`. */
export const cmd = {
  state: (backend: string, server: string, state: AdminState): ServerCommand => ({ op: "state", backend, server, state }),
  health: (backend: string, server: string, health: "up" | "down"): ServerCommand => ({ op: "health", backend, server, health }),
  shutdownSessions: (backend: string, server: string): ServerCommand => ({ op: "shutdown-sessions", backend, server }),
  addr: (backend: string, server: string, address: string, port: number): ServerCommand => ({ op: "addr", backend, server, address, port }),
};

/** The Runtime API text of a command. */
export function commandText(c: ServerCommand): string {
  const at = `${c.backend}/${c.server}`;
  switch (c.op) {
    case "state":
      return `set server ${at} state ${c.state}`;
    case "health":
      return `set server ${at} health ${c.health}`;
    case "shutdown-sessions":
      return `shutdown sessions server ${at}`;
    case "addr":
      if (!Number.isInteger(c.port) || c.port < 1 || c.port > 65535) throw new Error(`refusing port ${c.port} for ${at}`);
      return `set server ${at} addr ${c.address} port ${c.port}`;
  }
}

/** Replies that mean "done" for `set server ... addr` (which prints a sentence even on success). */
const ADDR_OK = /^(IP changed from|no need to change the addr|port changed from|IP and port changed)/i;

/** Null when `reply` is the documented success of `c`; else the reply, as the error to report. */
function replyError(c: ServerCommand, reply: string): string | null {
  const text = reply.trim();
  if (text === "") return null;
  if (c.op === "addr" && ADDR_OK.test(text)) return null;
  return text;
}

/**
 * Splits the reply to a `;`-separated line into one reply per command. Each reply is its text and an empty line: a
 * command that succeeds silently answers a lone newline; the last reply may end with the connection instead. Null when
 * the replies do not add up to `count`.
 */
export function splitReplies(text: string, count: number): string[] | null {
  const out: string[] = [];
  let pos = 0;
  while (out.length < count) {
    if (pos >= text.length) return null;
    if (text[pos] === "\n") {
      out.push("");
      pos += 1;
      continue;
    }
    const end = text.indexOf("\n\n", pos);
    if (end < 0) {
      // The last reply may end with the connection instead of an empty line.
      if (out.length !== count - 1) return null;
      out.push(text.slice(pos));
      pos = text.length;
      break;
    }
    out.push(text.slice(pos, end + 1));
    pos = end + 2;
  }
  return text.slice(pos).trim() === "" ? out : null;
}

/** A `;`-separated line stays well under HAProxy's CLI buffer (`tune.bufsize`, 16 KiB by default). */
const MAX_LINE = 8192;

export type AdminTarget = { readonly address: string; readonly port: number } | { readonly socketPath: string };

const targetName = (t: AdminTarget) => ("socketPath" in t ? t.socketPath : `${t.address}:${t.port}`);

export class HaproxyAdminClient {
  constructor(
    readonly target: AdminTarget,
    private readonly timeoutMs: number,
  ) {}

  get name(): string {
    return targetName(this.target);
  }

  /** Sends one command and returns the whole reply. Rejects with a ProbeError on connect failure or deadline. */
  raw(command: string): Promise<string> {
    if (/[\n;]/.test(command)) return Promise.reject(new Error(`refusing a multi-command string: ${command}`));
    return this.send(command, `'${command}'`);
  }

  /**
   * Sends the commands on as few connections as fit (one, for any recovery step), in order, and checks every reply.
   * HAProxy runs every command of a line even after one fails; the first failure is then thrown.
   */
  async apply(commands: readonly ServerCommand[]): Promise<void> {
    const texts = commands.map(commandText);
    const bad = texts.find((t) => /[\n;]/.test(t));
    if (bad !== undefined) throw new Error(`refusing a command with a separator in it: ${bad}`);
    let first = 0;
    while (first < texts.length) {
      let end = first + 1;
      let length = texts[first]!.length;
      while (end < texts.length && length + 1 + texts[end]!.length <= MAX_LINE) length += 1 + texts[end++]!.length;
      const line = texts.slice(first, end).join(";");
      const label = end - first === 1 ? `'${line}'` : `${end - first} commands ('${texts[first]}'...)`;
      const replies = splitReplies(await this.send(line, label), end - first);
      if (!replies) throw new HaproxyCommandError(line, "the replies do not match the commands (connection closed early?)");
      for (let i = 0; i < replies.length; i++) {
        const error = replyError(commands[first + i]!, replies[i]!);
        if (error !== null) throw new HaproxyCommandError(texts[first + i]!, error);
      }
      first = end;
    }
  }

  private send(line: string, label: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket =
        "socketPath" in this.target
          ? createConnection({ path: this.target.socketPath })
          : createConnection({ host: this.target.address, port: this.target.port });
      const chunks: Buffer[] = [];
      let settled = false;
      const finish = (err: Error | null, value?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve(value ?? "");
      };
      const timer = setTimeout(
        () => finish(new ProbeError("timeout", `HAProxy ${this.name}: no answer to ${label} within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      socket.on("connect", () => socket.end(`${line}\n`));
      socket.on("data", (d: Buffer) => chunks.push(d));
      socket.on("end", () => finish(null, Buffer.concat(chunks).toString("utf8")));
      socket.on("error", (e: NodeJS.ErrnoException) => {
        const kind = e.code === "ECONNREFUSED" || e.code === "ENOENT" ? "refused" : "reset";
        finish(new ProbeError(kind, `HAProxy ${this.name}: ${e.code ?? e.message} on ${label}`));
      });
    });
  }

  async showServersState(backend?: string): Promise<ServerState[]> {
    const cmd = backend ? `show servers state ${backend}` : "show servers state";
    return parseServersState(await this.raw(cmd), cmd);
  }

  async showStat(): Promise<StatRow[]> {
    return parseStat(await this.raw("show stat"));
  }

  setState(backend: string, server: string, state: AdminState): Promise<void> {
    return this.apply([cmd.state(backend, server, state)]);
  }

  setAddr(backend: string, server: string, address: string, port: number): Promise<void> {
    return this.apply([cmd.addr(backend, server, address, port)]);
  }
}

export function parseServersState(text: string, command = "show servers state"): ServerState[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (lines.length === 0) throw new HaproxyCommandError(command, "(empty reply)");
  if (!/^\d+$/.test(lines[0]!.trim())) throw new HaproxyCommandError(command, lines[0]!);
  const header = lines[1]?.replace(/^#\s*/, "").split(/\s+/) ?? [];
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new HaproxyCommandError(command, `no column ${name} in the reply`);
    return i;
  };
  const [cB, cS, cA, cO, cAd, cP] = [
    col("be_name"),
    col("srv_name"),
    col("srv_addr"),
    col("srv_op_state"),
    col("srv_admin_state"),
    col("srv_port"),
  ];
  return lines.slice(2).map((line) => {
    const f = line.split(/\s+/);
    const adminState = Number(f[cAd]);
    const opState = Number(f[cO]);
    return {
      backend: f[cB] ?? "",
      server: f[cS] ?? "",
      address: f[cA] ?? "",
      port: Number(f[cP]),
      opState,
      adminState,
      inMaint: (adminState & (1 | 2 | 4 | 32)) !== 0,
      inDrain: (adminState & (8 | 16)) !== 0,
      isUp: opState === 2,
    };
  });
}

export function parseStat(text: string): StatRow[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const head = lines[0];
  if (!head?.startsWith("# ")) throw new HaproxyCommandError("show stat", head ?? "(empty reply)");
  const header = head.slice(2).split(",");
  const idx = (n: string) => header.indexOf(n);
  const [px, sv, st, sc, cs, ad] = [
    idx("pxname"),
    idx("svname"),
    idx("status"),
    idx("scur"),
    idx("check_status"),
    idx("addr"),
  ];
  return lines.slice(1).map((line) => {
    const f = line.split(",");
    return {
      proxy: f[px] ?? "",
      server: f[sv] ?? "",
      status: f[st] ?? "",
      currentSessions: Number(f[sc] ?? 0),
      checkStatus: (f[cs] ?? "").replace(/^\* /, ""),
      address: ad >= 0 ? (f[ad] ?? "") : "",
    };
  });
}
