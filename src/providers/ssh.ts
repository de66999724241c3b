/**
 * Remote configuration over SSH (node-ssh): a RemoteShell with key authentication and verified host keys, the
 * HAProxy of a machine as a ProxyConfigurator (upload failoverd's own file, check it with `haproxy -c` beside the
 * host's main config, move it into place, reload), and a Redis machine's preparation commands run in order.
 *
 * Every connection and command has a deadline: the shell's own timeouts and the step's AbortSignal.
 */
import { readFileSync } from "node:fs";
import { NodeSSH } from "node-ssh";
import { errorMessage, ProviderError } from "../errors.ts";
import type { HostHaproxyConfig } from "../topology/schema.ts";
import { type HostCommands, hostCommands, sudoLine } from "./host-commands.ts";
import { type HostKeyVerdict, knownHostsName, knownKeyTypes, parseKnownHosts, verifyHostKey } from "./ssh-hostkeys.ts";
import type { CommandResult, Machine, ProxyConfigurator, RemoteShell } from "./types.ts";

export interface SshShellOptions {
  readonly user: string;
  readonly port: number;
  /** Resolved at the first connection, so commands that never connect (validate, plan) need no key. */
  readonly privateKey: () => string;
  readonly passphrase?: () => string | undefined;
  readonly knownHostsFile?: string | undefined;
  readonly fingerprints: readonly string[];
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
}

type Run = (command: string, options?: { stdin?: string }) => Promise<CommandResult>;

export class SshShell implements RemoteShell {
  constructor(readonly options: SshShellOptions) {}

  run(machine: Machine, command: string, signal: AbortSignal, options?: { stdin?: string }): Promise<CommandResult> {
    return this.session(machine, signal, (run) => run(command, options));
  }

  /** One connection for a sequence of commands; closed when `fn` settles. */
  async session<T>(machine: Machine, signal: AbortSignal, fn: (run: Run) => Promise<T>): Promise<T> {
    const ssh = await this.connect(machine, signal);
    try {
      return await fn((command, options) => this.exec(ssh, machine, command, signal, options));
    } finally {
      ssh.dispose();
    }
  }

  /** Where and as whom, for messages and dry-run: `admin@10.0.2.11:22`. */
  target(machine: Machine): string {
    return `${this.options.user}@${machine.address}:${this.options.port}`;
  }

  /** How host keys are verified, for messages and dry-run. */
  trust(): string {
    const o = this.options;
    const parts = [o.knownHostsFile ? `known_hosts ${o.knownHostsFile}` : "", o.fingerprints.length > 0 ? `${o.fingerprints.length} pinned fingerprint(s)` : ""];
    return parts.filter(Boolean).join(" or ");
  }

  private async connect(machine: Machine, signal: AbortSignal): Promise<NodeSSH> {
    signal.throwIfAborted();
    const o = this.options;
    const where = `${machine.host} (${this.target(machine)})`;
    const knownHosts = o.knownHostsFile ? readKnownHosts(o.knownHostsFile) : undefined;
    const policy = { knownHosts, knownHostsFile: o.knownHostsFile, fingerprints: o.fingerprints };
    let refused: Extract<HostKeyVerdict, { ok: false }> | undefined;
    // With known_hosts only, ask the server for a key type known_hosts has (as OpenSSH does).
    const types = knownHosts !== undefined && o.fingerprints.length === 0 ? knownKeyTypes(parseKnownHosts(knownHosts), knownHostsName(machine.address, o.port)) : [];
    let privateKey: string;
    let passphrase: string | undefined;
    try {
      privateKey = o.privateKey();
      passphrase = o.passphrase?.();
    } catch (e) {
      throw new ProviderError(`SSH to ${where}: ${errorMessage(e)}`, false, "NoPrivateKey");
    }
    const ssh = new NodeSSH();
    const abort = () => ssh.connection?.end();
    signal.addEventListener("abort", abort, { once: true });
    try {
      await ssh.connect({
        host: machine.address,
        port: o.port,
        username: o.user,
        privateKey,
        ...(passphrase !== undefined ? { passphrase } : {}),
        readyTimeout: o.connectTimeoutMs,
        tryKeyboard: false,
        ...(types.length > 0 ? { algorithms: { serverHostKey: hostKeyAlgorithms(types) } } : {}),
        hostVerifier: (key: Buffer) => {
          const v = verifyHostKey(key, machine.address, o.port, policy);
          if (!v.ok) refused = v;
          return v.ok;
        },
      });
    } catch (e) {
      ssh.dispose();
      if (refused) throw new ProviderError(`refusing SSH to ${where}: ${refused.why}`, false, "HostKeyMismatch");
      if (signal.aborted) throw new ProviderError(`SSH to ${where} did not connect before the step's deadline`, true, "Deadline");
      throw sshError(e, where, o.connectTimeoutMs);
    } finally {
      signal.removeEventListener("abort", abort);
    }
    // node-ssh stops listening for errors once connected; a later socket error must not crash the daemon.
    ssh.connection?.on("error", () => {});
    return ssh;
  }

  private async exec(ssh: NodeSSH, machine: Machine, command: string, signal: AbortSignal, options?: { stdin?: string }): Promise<CommandResult> {
    signal.throwIfAborted();
    const ms = this.options.commandTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const deadline = new Promise<never>((_, reject) => {
      const fail = (why: string) => {
        ssh.dispose();
        reject(new ProviderError(`\`${command}\` on ${machine.host} (${this.target(machine)}) ${why}`, true, "CommandTimeout"));
      };
      timer = setTimeout(() => fail(`did not finish within ${ms} ms (ssh.commandTimeoutMs)`), ms);
      onAbort = () => fail("did not finish before the step's deadline");
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      const r = await Promise.race([ssh.execCommand(command, { noTrim: true, ...(options?.stdin !== undefined ? { stdin: options.stdin } : {}) }), deadline]);
      return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      if (e instanceof ProviderError) throw e;
      throw new ProviderError(`\`${command}\` on ${machine.host} (${this.target(machine)}) failed: ${errorMessage(e)}`, true, "SshError");
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener("abort", onAbort);
    }
  }
}

function readKnownHosts(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new ProviderError(`ssh.knownHostsFile ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`, false, "NoKnownHosts");
  }
}

/** known_hosts key types as SSH host key algorithms (an RSA key is offered with SHA-2 signatures). */
function hostKeyAlgorithms(types: readonly string[]): string[] {
  return types.flatMap((t) => (t === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [t]));
}

function sshError(e: unknown, where: string, timeoutMs: number): ProviderError {
  const msg = errorMessage(e);
  const code = (e as { code?: string }).code ?? (e as { level?: string }).level ?? "";
  if (code === "ECONNREFUSED") return new ProviderError(`SSH to ${where}: connection refused (is sshd running, and ssh.port right?)`, true, "ECONNREFUSED");
  if (/Timed out while waiting for handshake/i.test(msg) || code === "ETIMEDOUT") {
    return new ProviderError(`SSH to ${where}: no SSH handshake within ${timeoutMs} ms (ssh.connectTimeoutMs); check security groups and routes`, true, "ETIMEDOUT");
  }
  if (/authentication methods failed/i.test(msg) || code === "client-authentication") {
    return new ProviderError(`SSH to ${where}: the server refused key authentication for user; check ssh.user and that the key of ssh.privateKey is in its authorized_keys`, false, "AuthFailed");
  }
  if (/privateKey|Cannot parse/i.test(msg)) return new ProviderError(`SSH to ${where}: ssh.privateKey cannot be used: ${msg}`, false, "BadPrivateKey");
  return new ProviderError(`SSH to ${where} failed: ${msg}`, true, code || "SshError");
}

/** A value as one shell word (left as it is when it needs no quoting). */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_.,:/@%+=-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Replaces {name} placeholders with shell-quoted values; `words` are inserted unquoted, to split into words (they
 * are validated numbers). Unknown placeholders are left as they are.
 */
export function fillCommand(template: string, vars: Readonly<Record<string, string>>, words: Readonly<Record<string, string>> = {}): string {
  return template.replace(/\{([a-z]+)\}/g, (m, k: string) => {
    if (Object.hasOwn(words, k)) return words[k]!;
    return Object.hasOwn(vars, k) ? shellQuote(vars[k]!) : m;
  });
}

function lastLines(text: string, n = 3): string {
  return text.trim().split("\n").slice(-n).join(" | ");
}

/**
 * HAProxy on a machine over SSH: failoverd's own file and the reload, with exactly the commands of host-commands.ts
 * (the sudoers rule). The host's main config is part of every check and never written.
 */
export class SshProxies implements ProxyConfigurator {
  private readonly commands: HostCommands;

  constructor(
    private readonly shell: SshShell,
    private readonly host: HostHaproxyConfig,
    sshUser: string,
  ) {
    this.commands = hostCommands(host, sshUser);
  }

  async applyConfig(machine: Machine, text: string, signal: AbortSignal, options?: { reload?: boolean }): Promise<void> {
    const c = this.commands;
    const file = this.host.config;
    await this.shell.session(machine, signal, async (run) => {
      const must = async (cmd: string, what: string, stdin?: string) => {
        const r = await run(cmd, stdin !== undefined ? { stdin } : undefined);
        if (r.code !== 0) {
          throw new ProviderError(`${what} on ${machine.host} failed: \`${cmd}\` exited ${r.code}: ${lastLines(`${r.stderr}\n${r.stdout}`)}${sudoHint(r.stderr)}`, false, "CommandFailed");
        }
        return r;
      };
      await must(c.upload, `uploading failoverd's new HAProxy file to ${c.staging}`, text);
      await must(sudoLine(c.install), `copying it to ${c.candidate}`);
      const check = sudoLine(c.check);
      const r = await run(check);
      if (r.code !== 0) {
        const out = `${r.stderr}\n${r.stdout}`;
        const alert = out.split("\n").find((l) => /ALERT|error/i.test(l))?.trim() ?? (lastLines(out) || "no output");
        throw new ProviderError(
          `haproxy -c rejects failoverd's new file beside ${this.host.mainConfig} on ${machine.host} (\`${check}\` exited ${r.code}): ${alert}${sudoHint(r.stderr)}. ${file} is unchanged and HAProxy was not reloaded`,
          false,
          "ConfigRejected",
        );
      }
      await must(sudoLine(c.move), `moving the checked file into place as ${file}`);
      await must(sudoLine(options?.reload === false ? c.start : c.reload), options?.reload === false ? "starting HAProxy (if it is not running)" : "reloading HAProxy");
    });
  }

  describeApply(machine: Machine, text: string, options?: { reload?: boolean }): readonly string[] {
    const c = this.commands;
    return [
      `SSH ${this.shell.target(machine)} (host key checked against ${this.shell.trust()}):`,
      `  ${c.upload} (failoverd's file on stdin, ${text.split("\n").length} lines)`,
      `  ${sudoLine(c.install)}`,
      `  ${sudoLine(c.check)}`,
      `  ${sudoLine(c.move)}`,
      `  ${sudoLine(options?.reload === false ? c.start : c.reload)}`,
    ];
  }
}

/** sudo's refusal, explained: the host lacks the rule `failoverd render sudoers` prints (or an older one). */
function sudoHint(stderr: string): string {
  return /sudo: (a password is required|.*not allowed|.*may not run)/i.test(stderr)
    ? " (sudo refused it: install the rule `failoverd render sudoers` prints for this config on the host)"
    : "";
}

/** Runs a Redis machine's preparation commands in order; the first that fails stops the rest. */
export async function runPreparation(shell: SshShell, machine: Machine, commands: readonly string[], ports: readonly number[], signal: AbortSignal): Promise<void> {
  if (commands.length === 0) return;
  const filled = preparationCommands(machine, commands, ports);
  await shell.session(machine, signal, async (run) => {
    for (const [i, cmd] of filled.entries()) {
      const r = await run(cmd);
      if (r.code !== 0) {
        throw new ProviderError(
          `preparation command ${i + 1}/${filled.length} on ${machine.host} (${machine.id}) exited ${r.code}: \`${cmd}\`: ${lastLines(`${r.stderr}\n${r.stdout}`) || "no output"}. ` +
            "What to do: fix provider.redisPrepareCommands or the AMI; the machine is left running for inspection",
          false,
          "PrepareFailed",
        );
      }
    }
  });
}

export function preparationCommands(machine: Pick<Machine, "host" | "address">, commands: readonly string[], ports: readonly number[]): string[] {
  return commands.map((c) => fillCommand(c, { host: machine.host, address: machine.address }, { ports: ports.join(" ") }));
}
