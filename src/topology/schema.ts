/**
 * The configuration schema. It describes the declared topology only: which machines exist, what they run and how
 * failoverd reaches them. Which Redis server is primary is runtime state discovered from the servers, never config.
 *
 * Every object is strict (an unknown key is an error: a typo must not silently disable a setting).
 */
import { CronTime } from "cron";
import { z } from "zod";

const HOST_NAME = /^[a-z][a-z0-9-]{0,62}$/;

export const port = z
  .number({ error: (iss) => `${show(iss.input)} is not a port (a whole number from 1 to 65535)` })
  .int({ error: (iss) => `${show(iss.input)} is not a port (a whole number from 1 to 65535)` })
  .min(1, { error: (iss) => `${show(iss.input)} is not a port (a whole number from 1 to 65535)` })
  .max(65535, { error: (iss) => `${show(iss.input)} is not a port (a whole number from 1 to 65535)` });

/** A port written as a YAML mapping key ("8001": 9001) arrives as a string. */
const portKey = z.string().refine((s) => /^\d+$/.test(s) && Number(s) >= 1 && Number(s) <= 65535, {
  error: (iss) => `${show(iss.input)} is not a port (a whole number from 1 to 65535)`,
});

const ipv4 = z.ipv4({ error: (iss) => `${show(iss.input)} is not an IPv4 address` });

const hostName = z.string().regex(HOST_NAME, {
  error: (iss) => `${show(iss.input)} is not a host name (lower-case letters, digits and '-', starting with a letter)`,
});

const millis = (min: number, max: number) =>
  z
    .number({ error: (iss) => `${show(iss.input)} is not a duration in milliseconds` })
    .int({ error: (iss) => `${show(iss.input)} is not a whole number of milliseconds` })
    .min(min, { error: `must be at least ${min} ms` })
    .max(max, { error: `must be at most ${max} ms` });

const count = (min: number, max: number) =>
  z
    .number({ error: (iss) => `${show(iss.input)} is not a whole number` })
    .int({ error: (iss) => `${show(iss.input)} is not a whole number` })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` });

const secretRef = z
  .strictObject({
    env: z.string().min(1).optional(),
    file: z.string().min(1).optional(),
  })
  .refine((s) => (s.env === undefined) !== (s.file === undefined), {
    error: "give exactly one of env (an environment variable) or file (a path) for a secret; never the secret itself",
  });

const redisHost = z.strictObject({
  role: z.literal("redis"),
  address: ipv4,
  ports: z.array(port).min(1, { error: "a Redis host needs at least one port" }).max(256),
});

const haproxyHost = z.strictObject({
  role: z.literal("haproxy"),
  address: ipv4,
  /** listen port -> Redis port: the frontend on `listen` relays to the current primary's `redis` port. */
  frontends: z.record(portKey, port),
  /** The Runtime API, on a TCP socket at this host's address. */
  adminPort: port,
  /** The DNS record that names this HAProxy (applications and app-side HAProxies follow it). */
  dnsName: z.string().min(1).optional(),
});

const appHost = z.strictObject({
  role: z.literal("app"),
  address: ipv4,
  /** listen port -> HAProxy frontend port. */
  frontends: z.record(portKey, port),
  /** HAProxy hosts in order of preference: the first is used, the others are backups. */
  upstreams: z.array(hostName).min(1, { error: "an app host needs at least one upstream HAProxy" }),
  adminPort: port,
});

export const hostSchema = z.discriminatedUnion("role", [redisHost, haproxyHost, appHost], {
  error: (iss) =>
    iss.code === "invalid_union" ? "role must be one of redis, haproxy, app" : "a host must be a mapping with a role",
});

const checks = z
  .strictObject({
    intervalMs: millis(10, 3_600_000).default(1000),
    /** At most intervalMs (checked with the other rules across fields); absent: 500, or intervalMs when shorter. */
    timeoutMs: millis(5, 60_000).optional(),
    fall: count(1, 100).default(3),
    rise: count(1, 100).default(2),
    /** After a first failure, re-check this often until the target is confirmed down or up again (HAProxy's fastinter). */
    fastIntervalMs: millis(10, 3_600_000).optional(),
  })
  .transform(({ timeoutMs, ...c }) => ({ ...c, timeoutMs: timeoutMs ?? Math.min(500, c.intervalMs) }));

const recovery = z.strictObject({
  enabled: z.boolean().default(true),
  /** After a recovery of a pair, wait this long before the same pair may fail over again. */
  cooldownMs: millis(0, 86_400_000).default(300_000),
  stepTimeoutMs: millis(100, 3_600_000).default(60_000),
  /** How long a rebuilt replica may take to reach sync. */
  syncTimeoutMs: millis(100, 3_600_000).default(600_000),
  /** Refuse to act when more than this fraction of all targets fails at once (the monitor's own network). */
  maxFailingFraction: z.number().gt(0).max(1).default(0.5),
  /** Step attempts for retryable errors (1 = no retry). */
  stepAttempts: count(1, 20).default(3),
  /** A planned switchover's `FAILOVER ... TIMEOUT`: how long the primary waits for its replica to catch up. */
  switchoverTimeoutMs: millis(100, 600_000).default(5000),
  /** The launch step's deadline (a cloud machine takes minutes to boot); stepTimeoutMs when absent. */
  launchTimeoutMs: millis(100, 3_600_000).optional(),
  /**
   * What becomes of the failed machine: terminated, or kept for the post-mortem (stopped, its volumes kept; or
   * quarantined: stopped, no ingress, tagged with the recovery id). Kept machines are released by `failoverd cleanup`.
   * Absent: `stop` (both providers).
   */
  failedMachine: z.enum(["terminate", "stop", "quarantine"], { error: "failedMachine must be one of terminate, stop, quarantine" }).default("stop"),
  /**
   * The promotion guard: an automatic failover is refused (alert only) when the replica to promote misses more than
   * this many bytes of what the failed primary had acknowledged at the last check that reached it...
   */
  maxDataLossBytes: z.number().int().min(0).max(2 ** 40).default(65_536),
  /** ...or more than this much time of writes (beyond 1 KiB of replication pings). `failoverd promote --accept-data-loss` overrides. */
  maxDataLossMs: millis(0, 86_400_000).default(1000),
});

/** Replication health, evaluated every round for every pair: alert-only findings (redundancy lost). */
const replication = z.strictObject({
  /** A replica whose link to its primary has been down this long: ReplicaLinkDown. */
  linkDownAlertMs: millis(0, 86_400_000).default(5000),
  /** A replica this many bytes behind its primary: ReplicaLagging. */
  lagAlertBytes: z.number().int().min(0).max(2 ** 40).default(1_048_576),
  /** A replica whose data is this old (its offset was the primary's that long ago): ReplicaLagging. */
  lagAlertMs: millis(0, 86_400_000).default(5000),
});

/** Warm spares of one role: that many machines launched from the image and prepared, kept `stopped` or `running`. */
const spareSpec = z.strictObject({
  count: count(0, 20),
  state: z.enum(["stopped", "running"], { error: "a spare's state must be stopped or running" }).default("stopped"),
});

const spares = z.strictObject({ redis: spareSpec.optional(), haproxy: spareSpec.optional() });

/**
 * The sandbox's model of a cloud's latencies (ms): each compute or DNS call of the local provider waits this long
 * before it acts. `ec2` is the model of README "The time model"; absent: no added latency.
 */
export const EC2_LATENCY = { launchMs: 28_000, startMs: 5000, stopMs: 1500, terminateMs: 1500, dnsMs: 60_000 } as const;

const latencyFigures = z.strictObject({
  launchMs: millis(0, 600_000).default(0),
  startMs: millis(0, 600_000).default(0),
  stopMs: millis(0, 600_000).default(0),
  terminateMs: millis(0, 600_000).default(0),
  dnsMs: millis(0, 600_000).default(0),
});

const latency = z
  .union([z.literal("ec2"), latencyFigures], { error: "latency must be ec2 or a mapping of launchMs, startMs, stopMs, terminateMs, dnsMs" })
  .transform((l) => (l === "ec2" ? { ...EC2_LATENCY } : l));

const localProvider = z.strictObject({
  kind: z.literal("local"),
  /** Every process, config, log and pid file of the sandbox lives under this directory. */
  runDir: z.string().min(1).default(".failoverd/sandbox"),
  redisServer: z.string().min(1).default("redis-server"),
  haproxy: z.string().min(1).default("haproxy"),
  /** Replacement machines get addresses from this pool (one per launch, never reused within a run). */
  addressPool: z.strictObject({ redis: z.array(ipv4).min(1), haproxy: z.array(ipv4).min(1) }).optional(),
  /** Warm spares per role (taken by `launch`, refilled after a recovery). */
  spares: spares.prefault({}),
  /** The cloud's latencies, modelled (see EC2_LATENCY). */
  latency: latency.optional(),
});

/** SSH to managed machines: key authentication only, and a host key that must match a known_hosts entry or a pin. */
const sshSettings = z
  .strictObject({
    user: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/, { error: (iss) => `${show(iss.input)} is not a user name (letters, digits, ._-; it goes into a sudoers rule)` })
      .default("admin"),
    port: port.default(22),
    privateKey: secretRef,
    passphrase: secretRef.optional(),
    /** OpenSSH known_hosts (plain or hashed names, [address]:port for other ports, @revoked honoured). */
    knownHostsFile: z.string().min(1).optional(),
    /** Accepted host keys as `ssh-keygen -lf` prints them: a replacement launched from the AMI has the AMI's key. */
    hostKeyFingerprints: z
      .array(z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, { error: "a host key fingerprint looks like SHA256:<43 base64 characters>" }))
      .default([]),
    connectTimeoutMs: millis(100, 300_000).default(10_000),
    commandTimeoutMs: millis(100, 3_600_000).default(60_000),
  })
  .refine((s) => s.knownHostsFile !== undefined || s.hostKeyFingerprints.length > 0, {
    error: "give knownHostsFile or hostKeyFingerprints: failoverd never accepts a host key it cannot verify",
  });

/** An absolute path that is one word in a shell and in sudoers (no space, quote, wildcard, `,`, `:`, `=` or `\\`). */
const plainPath = z.string().regex(/^\/[A-Za-z0-9._/+@-]*$/, {
  error: (iss) => `${show(iss.input)} is not an absolute path of letters, digits and ._/+@- (it goes into a sudoers rule)`,
});

/** One argument of a command failoverd runs through sudo: a plain word (sudoers and the shell read it as it is). */
const plainWord = z.string().regex(/^[A-Za-z0-9._/+@%-]+$/, {
  error: (iss) => `${show(iss.input)} is not a plain word (letters, digits and ._/+@%-; it goes into a sudoers rule)`,
});

/** A command as its words, the first an absolute path (sudo matches commands by their full path). */
const fixedCommand = z.tuple([plainPath], plainWord);

/**
 * The HAProxy on a managed machine (HAProxy and app hosts), driven over SSH with exactly the commands of the sudoers
 * rule `failoverd render sudoers` prints. failoverd writes only `config`, its own file, which HAProxy loads after the
 * host's `mainConfig`; the host's file is read by `haproxy -c`, never written.
 */
const hostHaproxy = z.strictObject({
  /** The host's own HAProxy config (the image's): part of every `haproxy -c`, never written. */
  mainConfig: plainPath.default("/etc/haproxy/haproxy.cfg"),
  /** failoverd's file (its frontends, backends and Runtime API socket), loaded after `mainConfig`. */
  config: plainPath.default("/etc/haproxy/failoverd.cfg"),
  /** Where failoverd uploads the new file as the SSH user (its directory is created mode 700); `/home/<ssh.user>/.failoverd/failoverd.cfg` when absent. */
  stagingPath: plainPath.optional(),
  haproxy: plainPath.default("/usr/sbin/haproxy"),
  install: plainPath.default("/usr/bin/install"),
  mv: plainPath.default("/usr/bin/mv"),
  /** Reloads HAProxy with the files in place (the host's unit loads both: see the README). */
  reload: fixedCommand.default(["/usr/bin/systemctl", "reload-or-restart", "haproxy"]),
  /** After a write without reload: starts HAProxy if it is not running (a no-op when it is). */
  start: fixedCommand.default(["/usr/bin/systemctl", "start", "haproxy"]),
});

const awsProvider = z.strictObject({
  kind: z.literal("aws"),
  region: z.string().min(1),
  imageId: z.string().regex(/^ami-[0-9a-f]+$/, { error: "imageId must look like ami-0123456789abcdef0" }).optional(),
  launchTemplate: z
    .strictObject({ id: z.string().min(1).optional(), name: z.string().min(1).optional(), version: z.string().optional() })
    .refine((lt) => (lt.id === undefined) !== (lt.name === undefined), { error: "give exactly one of id or name" })
    .optional(),
  instanceTypes: z.array(z.string().min(1)).min(1).default(["t3.medium"]),
  subnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]+$/, { error: "subnet ids look like subnet-0abc..." })).min(1),
  securityGroupIds: z.array(z.string().regex(/^sg-[0-9a-f]+$/, { error: "security group ids look like sg-0abc..." })),
  keyName: z.string().optional(),
  instanceProfile: z.string().optional(),
  userData: z.string().optional(),
  tags: z.record(z.string(), z.string()).default({}),
  hostedZoneId: z.string().min(1).optional(),
  dnsTtl: count(0, 86_400).default(30),
  elasticIps: z.record(hostName, z.string().regex(/^eipalloc-[0-9a-f]+$/)).default({}),
  /** The deadline of one AWS API request (connection and response); a hung endpoint never stalls a step. */
  apiTimeoutMs: millis(100, 300_000).default(10_000),
  /** How failoverd reaches machines to configure them (required: a replacement HAProxy is configured over SSH). */
  ssh: sshSettings,
  hostHaproxy: hostHaproxy.prefault({}),
  /** Run in order over SSH on a new Redis machine before its ports must answer ({host}, {address}, {ports}). */
  redisPrepareCommands: z.array(z.string().min(1)).default([]),
  /** Warm spares per role (taken by `launch`, refilled after a recovery). */
  spares: spares.prefault({}),
  /** The security group (no ingress rule) a quarantined machine is moved to; required by recovery.failedMachine: quarantine. */
  quarantineSecurityGroupId: z.string().regex(/^sg-[0-9a-f]+$/, { error: "security group ids look like sg-0abc..." }).optional(),
  /**
   * An EC2 machine never has a loopback address, so a host on 127.0.0.0/8 is refused (a sandbox address pasted into a
   * production config). A lab whose "machines" are this host's loopback addresses (failoverd's own tests run sshd,
   * HAProxy and Redis there) sets this to true.
   */
  allowLoopback: z.boolean().default(false),
}).refine((p) => (p.imageId === undefined) !== (p.launchTemplate === undefined), {
  error: "give exactly one of imageId or launchTemplate: what a replacement machine is launched from",
});

export const providerSchema = z.discriminatedUnion("kind", [localProvider, awsProvider], {
  error: "kind must be one of local, aws",
});

const redisAuth = z.strictObject({
  username: z.string().min(1).optional(),
  password: secretRef.optional(),
  /** Present: every Redis connection failoverd makes uses TLS, verified against `ca` (PEM files). */
  tls: z
    .strictObject({
      ca: z.string().min(1).optional(),
      cert: z.string().min(1).optional(),
      key: z.string().min(1).optional(),
      serverName: z.string().min(1).optional(),
    })
    .optional(),
});

/** `ADDR:PORT` split into an IPv4 address and a port (0 to 65535); null when it is not that. */
export function splitListen(s: string): { address: string; port: number } | null {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(s);
  if (!m || m[1]!.split(".").some((o) => Number(o) > 255) || Number(m[2]) > 65535) return null;
  return { address: m[1]!, port: Number(m[2]) };
}

/** `ADDR:PORT`, an IPv4 address and a port (not 0: a config names a fixed port). */
const listenAddress = z.string().refine(
  (s) => (splitListen(s)?.port ?? 0) >= 1,
  { error: (iss) => `${show(iss.input)} is not ADDR:PORT (an IPv4 address and a port, e.g. 127.0.0.1:9464)` },
);

const http = z.strictObject({
  /** Where /metrics, /status, /healthz and the status page listen. Loopback unless said otherwise. */
  listen: listenAddress.default("127.0.0.1:9464"),
  /** The bearer token of the changing requests (POST /pause, /resume, /ack, /switchover): where it is, never itself. */
  token: secretRef.optional(),
});

export const WEBHOOK_EVENTS = ["diagnosis", "resolved", "recovery-start", "step-failed", "recovery-end", "drill"] as const;

const webhookUrl = z
  .url({ protocol: /^https?$/, error: (iss) => `${show(iss.input)} is not an http(s) URL` })
  .refine((u) => !URL.canParse(u) || webhookUrlProblem(u) === null, { error: (iss) => webhookUrlProblem(String(iss.input)) ?? "bad URL" });

/**
 * Null when `url` can be a webhook's; else why not, without the URL (it may carry a secret). fetch refuses a URL
 * with a user or password, and its error would quote the whole URL.
 */
export function webhookUrlProblem(url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "the URL does not parse";
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return "the URL is not http(s)";
  if (u.username !== "" || u.password !== "") return "the URL carries a user or password, which fetch refuses (put the token in the path or query)";
  return null;
}

export const WEBHOOK_FORMATS = ["json", "slack", "pagerduty", "alertmanager"] as const;
/** Where PagerDuty's Events API v2 takes events: a pagerduty webhook's URL unless it names another. */
export const PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue";

const webhook = z
  .strictObject({
    /**
     * An http(s) URL, or where it is (`{env: VAR}`, `{file: PATH}`) when the URL carries a secret (Slack's do).
     * pagerduty: PagerDuty's Events API v2 when absent; alertmanager: Alertmanager's `/api/v2/alerts`.
     */
    url: z.union([webhookUrl, secretRef], { error: "url must be an http(s) URL or {env: VAR} / {file: PATH}" }).optional(),
    /**
     * json: failoverd's own event object; slack: `{"text": ...}` for Slack-compatible incoming webhooks; pagerduty:
     * PagerDuty Events API v2 (trigger and resolve); alertmanager: Alertmanager's v2 alerts (firing and resolved).
     */
    format: z.enum(WEBHOOK_FORMATS, { error: `format must be one of ${WEBHOOK_FORMATS.join(", ")}` }).default("json"),
    /** pagerduty: the integration (routing) key of an Events API v2 integration: where it is, never itself. */
    routingKey: secretRef.optional(),
    /** The events sent to this webhook; all of them when absent. */
    events: z.array(z.enum(WEBHOOK_EVENTS, { error: `an event is one of ${WEBHOOK_EVENTS.join(", ")}` })).min(1).optional(),
    /** A name for logs and metrics (the URL is never logged); `webhooks[i]` when absent. */
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,40}$/, { error: "a webhook name is letters, digits, '_', '.', '-' (at most 40)" }).optional(),
  })
  .superRefine((w, ctx) => {
    if (w.format === "pagerduty" && w.routingKey === undefined) {
      ctx.addIssue({ code: "custom", path: ["routingKey"], message: "a pagerduty webhook needs routingKey: {env: VAR} or {file: PATH} (the integration key of an Events API v2 integration)" });
    }
    if (w.format !== "pagerduty" && w.routingKey !== undefined) {
      ctx.addIssue({ code: "custom", path: ["routingKey"], message: "routingKey is for format: pagerduty only" });
    }
    if (w.format !== "pagerduty" && w.url === undefined) {
      ctx.addIssue({ code: "custom", path: ["url"], message: `${w.format === "alertmanager" ? "an" : "a"} ${w.format} webhook needs a url` });
    }
  });

const notifications = z.strictObject({
  webhooks: z.array(webhook).default([]),
  /** An active, unacknowledged diagnosis is sent again this often. */
  repeatMs: millis(60_000, 7 * 86_400_000).default(3_600_000),
  /** One delivery's deadline. */
  timeoutMs: millis(100, 60_000).default(5000),
  /** Deliveries of one notification before it is dropped (with backoff between them). */
  attempts: count(1, 20).default(5),
});

const drill = z.strictObject({
  /** A cron expression (5 fields, or 6 with seconds first), in the host's time zone. */
  schedule: z.string().refine((s) => CronTime.validateCronExpression(s).valid, {
    error: (iss) => `${show(iss.input)} is not a cron expression (e.g. "0 10 * * 2" for Tuesdays at 10:00)`,
  }),
  /** The Redis pair to drill: its primaries move to the other host. */
  pair: z.tuple([hostName, hostName]),
  action: z.literal("switchover", { error: "action must be switchover" }).default("switchover"),
});

/** An etcd endpoint: http(s)://ADDR:PORT (or a host name). */
const etcdEndpoint = z
  .url({ protocol: /^https?$/, error: (iss) => `${show(iss.input)} is not an etcd endpoint (http://ADDR:PORT or https://ADDR:PORT)` })
  // Not quoted: the user and password would be.
  .refine((u) => !URL.canParse(u) || webhookUrlProblem(u) === null, { error: "an etcd endpoint carries no user or password (give coordination.username and password)" })
  .refine((u) => URL.canParse(u) && new URL(u).port !== "", { error: (iss) => `${show(iss.input)} is not an etcd endpoint: give http(s)://ADDR:PORT` });

/** Several failoverd instances coordinated through etcd (src/coordination/). Absent: one instance acts alone. */
const coordination = z.strictObject({
  /** The etcd cluster's client URLs. */
  endpoints: z.array(etcdEndpoint).min(1, { error: "give at least one etcd endpoint" }),
  /** Where failoverd keeps its keys; `/failoverd/<topology>` when absent. */
  prefix: z
    .string()
    .regex(/^\/[A-Za-z0-9_./-]*[A-Za-z0-9_.-]$/, { error: (iss) => `${show(iss.input)} is not a key prefix (starts with '/', letters, digits, '_', '.', '-', '/')` })
    .optional(),
  /** How many failoverd instances are configured: a failure is confirmed by a majority of them. */
  instances: count(1, 9).default(3),
  /** The lease of each instance (its verdicts, its candidacy, its leadership), in whole seconds; etcd's minimum is about 2. */
  leaseTtlSeconds: count(2, 60).default(3),
  /** This instance's name; the host name when absent (`run --instance` overrides it). */
  instance: hostName.optional(),
  username: z.string().min(1).optional(),
  password: secretRef.optional(),
  /** Present: TLS to etcd, verified against `ca` (PEM files); cert and key for client certificates. */
  tls: z.strictObject({ ca: z.string().min(1).optional(), cert: z.string().min(1).optional(), key: z.string().min(1).optional() }).optional(),
})
  .refine((c) => (c.password === undefined) || c.username !== undefined, { error: "coordination.password needs coordination.username" })
  .refine((c) => (c.tls?.cert === undefined) === (c.tls?.key === undefined), { error: "coordination.tls: give both cert and key, or neither" });

export const configSchema = z.strictObject({
  /** The topology's name: tags managed machines and names the state directory. */
  topology: hostName,
  hosts: z.record(hostName, hostSchema).refine((h) => Object.keys(h).length > 0, { error: "no hosts are declared" }),
  /** Each pair is two Redis hosts whose servers replicate port by port. */
  pairs: z.array(z.tuple([hostName, hostName])).min(1, { error: "declare at least one Redis pair" }),
  checks: checks.prefault({}),
  recovery: recovery.prefault({}),
  replication: replication.prefault({}),
  redis: redisAuth.prefault({}),
  provider: providerSchema.prefault({ kind: "local" }),
  /** Where the daemon keeps its journal and runtime state. */
  stateDir: z.string().min(1).default(".failoverd/state"),
  /** The HTTP API and status page; off unless present (or `run --http`). */
  http: http.optional(),
  notifications: notifications.prefault({}),
  /** Scheduled failover drills (planned switchovers); none by default. */
  drills: z.array(drill).default([]),
  /** Several instances coordinated through etcd; absent: this instance acts alone (single-instance mode). */
  coordination: coordination.optional(),
});

export type Config = z.infer<typeof configSchema>;
export type HostConfig = z.infer<typeof hostSchema>;
export type RedisHostConfig = z.infer<typeof redisHost>;
export type HaproxyHostConfig = z.infer<typeof haproxyHost>;
export type AppHostConfig = z.infer<typeof appHost>;
export type ProviderConfig = z.infer<typeof providerSchema>;
export type LocalProviderConfig = z.infer<typeof localProvider>;
export type AwsProviderConfig = z.infer<typeof awsProvider>;
export type SshSettingsConfig = z.infer<typeof sshSettings>;
export type HostHaproxyConfig = z.infer<typeof hostHaproxy>;
export type SecretRef = z.infer<typeof secretRef>;
export type HttpConfig = z.infer<typeof http>;
export type WebhookConfig = z.infer<typeof webhook>;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];
export type DrillConfig = z.infer<typeof drill>;
export type CoordinationConfig = z.infer<typeof coordination>;
export type SparesConfig = z.infer<typeof spares>;
export type SpareSpec = z.infer<typeof spareSpec>;
export type LatencyModel = z.infer<typeof latencyFigures>;
export type FailedMachineMode = Config["recovery"]["failedMachine"];

function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (typeof v === "object") return Array.isArray(v) ? "a list" : "a mapping";
  return String(v);
}
