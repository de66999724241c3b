/**
 * The commands failoverd runs on an HAProxy or application host, in one place: SshProxies runs them, and `failoverd
 * render sudoers` grants exactly them, so the two cannot drift apart.
 *
 * One command runs as the SSH user, without privileges: the upload of the new file to a staging path of its own.
 * Every other one is a fixed command line run through `sudo -n`: no shell, no `tee` or `cp` to a path of the caller's
 * choosing. The staged file is first copied by root to a candidate next to failoverd's file, so what `haproxy -c`
 * checks (against the host's main config) is exactly what is moved into place: the SSH user cannot change it in
 * between. The move is a rename, so HAProxy never reads a half-written file.
 */
import { dirname } from "node:path";
import type { HostHaproxyConfig } from "../topology/schema.ts";

export interface HostCommands {
  /** Where the SSH user uploads the new file. */
  readonly staging: string;
  /** Root's copy of it, next to failoverd's file; checked, then renamed into place. */
  readonly candidate: string;
  /** Shell line run as the SSH user, the new file on stdin. */
  readonly upload: string;
  /** Each a command's words, run as `sudo -n <words>`. */
  readonly install: readonly string[];
  readonly check: readonly string[];
  readonly move: readonly string[];
  readonly reload: readonly string[];
  readonly start: readonly string[];
}

export function stagingPathOf(h: HostHaproxyConfig, sshUser: string): string {
  return h.stagingPath ?? `/home/${sshUser}/.failoverd/failoverd.cfg`;
}

export function hostCommands(h: HostHaproxyConfig, sshUser: string): HostCommands {
  const staging = stagingPathOf(h, sshUser);
  const candidate = `${h.config}.new`;
  return {
    staging,
    candidate,
    // The paths are plain words (schema): no quoting needed. umask 077: nobody else reads the file (it may hold the
    // Redis password of the health check).
    upload: `umask 077 && mkdir -p ${dirname(staging)} && cat > ${staging}`,
    // Mode 600, root's: the file may hold the Redis password; HAProxy reads it as root before dropping privileges.
    install: [h.install, "-m", "600", "-o", "root", "-g", "root", staging, candidate],
    check: [h.haproxy, "-c", "-f", h.mainConfig, "-f", candidate],
    move: [h.mv, "-f", candidate, h.config],
    reload: h.reload,
    start: h.start,
  };
}

/** A privileged command as it is sent over SSH. */
export function sudoLine(words: readonly string[]): string {
  return `sudo -n ${words.join(" ")}`;
}

/** The privileged commands, each once, in the order a configuration change runs them. */
export function privilegedCommands(c: HostCommands): readonly (readonly string[])[] {
  return [c.install, c.check, c.move, c.reload, c.start];
}

/**
 * The sudoers drop-in for the SSH user: exactly the privileged commands, with their arguments (sudo then refuses any
 * other argument), as root, without a password. `visudo -c -f` accepts it.
 */
export function renderSudoers(o: { topology: string; user: string; host: HostHaproxyConfig }): string {
  const c = hostCommands(o.host, o.user);
  const alias = `FAILOVERD_${o.topology.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
  const cmds = privilegedCommands(c).map((w) => w.join(" "));
  return [
    `# failoverd (topology ${o.topology}): the commands it runs on HAProxy and application hosts, and only them.`,
    "# Rendered by `failoverd render sudoers`. Install it as /etc/sudoers.d/failoverd (root, mode 0440) after",
    "# `visudo -c -f <file>`. Without privileges failoverd also runs, as this user, the upload of its new file:",
    `#   ${c.upload}`,
    `# ${o.host.config} is failoverd's own file (HAProxy loads it after ${o.host.mainConfig}, which it never writes).`,
    `Cmnd_Alias ${alias} = \\`,
    ...cmds.map((l, i) => `    ${l}${i < cmds.length - 1 ? ", \\" : ""}`),
    `${o.user} ALL = (root) NOPASSWD: ${alias}`,
    "",
  ].join("\n");
}
