/**
 * An HAProxy Runtime API client over a TCP (or unix) socket. HAProxy answers one command per connection and closes;
 * this client writes `cmd\n` and reads to the end, under a deadline. Every reply is parsed: a reply that is not the
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
  /** Bitmask: 1 forced maint, 2 inherited maint, 4 maint from the config (`disabled`), 8 forced drain, 32 maint via DNS resolution. */
  readonly adminState: number;
  /** True when the server is in any maintenance mode. */
  readonly inMaint: boolean;
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

export type AdminTarget = { readonly address: string; readonly port: number } | { readonly socketPath: string };

const targetName = (t: AdminTarget) => ("socketPath" in t ? t.socketPath : `${t.address}:${t.port}`);

/** Replies that mean "done" for `set server ... addr` (which prints a sentence even on success). */
const ADDR_OK = /^(IP changed from|no need to change the addr|port changed from|IP and port changed)/i;

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
        () => finish(new ProbeError("timeout", `HAProxy ${this.name}: no answer to '${command}' within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      socket.on("connect", () => socket.end(`${command}\n`));
      socket.on("data", (d: Buffer) => chunks.push(d));
      socket.on("end", () => finish(null, Buffer.concat(chunks).toString("utf8")));
      socket.on("error", (e: NodeJS.ErrnoException) => {
        const kind = e.code === "ECONNREFUSED" || e.code === "ENOENT" ? "refused" : "reset";
        finish(new ProbeError(kind, `HAProxy ${this.name}: ${e.code ?? e.message} on '${command}'`));
      });
    });
  }

  /** Runs a command whose success reply is empty; anything else is an error. */
  async exec(command: string): Promise<void> {
    const reply = await this.raw(command);
    if (reply.trim() !== "") throw new HaproxyCommandError(command, reply);
  }

  async showServersState(backend?: string): Promise<ServerState[]> {
    const cmd = backend ? `show servers state ${backend}` : "show servers state";
    return parseServersState(await this.raw(cmd), cmd);
  }

  async showStat(): Promise<StatRow[]> {
    return parseStat(await this.raw("show stat"));
  }

  setState(backend: string, server: string, state: AdminState): Promise<void> {
    return this.exec(`set server ${backend}/${server} state ${state}`);
  }

  /** A forced health result: temporary (the next checks override it), used to skip `rise` after a verified change. */
  setHealth(backend: string, server: string, health: "up" | "down"): Promise<void> {
    return this.exec(`set server ${backend}/${server} health ${health}`);
  }

  shutdownSessions(backend: string, server: string): Promise<void> {
    return this.exec(`shutdown sessions server ${backend}/${server}`);
  }

  async setAddr(backend: string, server: string, address: string, port: number): Promise<void> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`refusing port ${port} for ${backend}/${server}`);
    const cmd = `set server ${backend}/${server} addr ${address} port ${port}`;
    const reply = (await this.raw(cmd)).trim();
    if (reply !== "" && !ADDR_OK.test(reply)) throw new HaproxyCommandError(cmd, reply);
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
