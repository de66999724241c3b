/**
 * The configuration schema. It describes the declared topology only: which machines exist, what they run and how
 * failoverd reaches them. Which Redis server is primary is runtime state discovered from the servers, never config.
 *
 * Every object is strict (an unknown key is an error: a typo must not silently disable a setting).
 */
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

const checks = z.strictObject({
  intervalMs: millis(10, 3_600_000).default(1000),
  timeoutMs: millis(5, 60_000).default(500),
  fall: count(1, 100).default(3),
  rise: count(1, 100).default(2),
  /** After a first failure, re-check this often until the target is confirmed down or up again (HAProxy's fastinter). */
  fastIntervalMs: millis(10, 3_600_000).optional(),
});

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
});

const localProvider = z.strictObject({
  kind: z.literal("local"),
  /** Every process, config, log and pid file of the sandbox lives under this directory. */
  runDir: z.string().min(1).default(".failoverd/sandbox"),
  redisServer: z.string().min(1).default("redis-server"),
  haproxy: z.string().min(1).default("haproxy"),
  /** Replacement machines get addresses from this pool (one per launch, never reused within a run). */
  addressPool: z.strictObject({ redis: z.array(ipv4).min(1), haproxy: z.array(ipv4).min(1) }).optional(),
});

const awsProvider = z.strictObject({
  kind: z.literal("aws"),
  region: z.string().min(1),
  imageId: z.string().regex(/^ami-[0-9a-f]+$/, { error: "imageId must look like ami-0123456789abcdef0" }).optional(),
  launchTemplate: z
    .strictObject({ id: z.string().min(1).optional(), name: z.string().min(1).optional(), version: z.string().optional() })
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
});

export const providerSchema = z.discriminatedUnion("kind", [localProvider, awsProvider], {
  error: "kind must be one of local, aws",
});

const redisAuth = z.strictObject({
  username: z.string().min(1).optional(),
  password: secretRef.optional(),
  tls: z.boolean().default(false),
});

export const configSchema = z.strictObject({
  /** The topology's name: tags managed machines and names the state directory. */
  topology: hostName,
  hosts: z.record(hostName, hostSchema).refine((h) => Object.keys(h).length > 0, { error: "no hosts are declared" }),
  /** Each pair is two Redis hosts whose servers replicate port by port. */
  pairs: z.array(z.tuple([hostName, hostName])).min(1, { error: "declare at least one Redis pair" }),
  checks: checks.prefault({}),
  recovery: recovery.prefault({}),
  redis: redisAuth.prefault({}),
  provider: providerSchema.default({ kind: "local", runDir: ".failoverd/sandbox", redisServer: "redis-server", haproxy: "haproxy" }),
  /** Where the daemon keeps its journal and runtime state. */
  stateDir: z.string().min(1).default(".failoverd/state"),
});

export type Config = z.infer<typeof configSchema>;
export type HostConfig = z.infer<typeof hostSchema>;
export type RedisHostConfig = z.infer<typeof redisHost>;
export type HaproxyHostConfig = z.infer<typeof haproxyHost>;
export type AppHostConfig = z.infer<typeof appHost>;
export type ProviderConfig = z.infer<typeof providerSchema>;
export type LocalProviderConfig = z.infer<typeof localProvider>;
export type AwsProviderConfig = z.infer<typeof awsProvider>;
export type SecretRef = z.infer<typeof secretRef>;

function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (typeof v === "object") return Array.isArray(v) ? "a list" : "a mapping";
  return String(v);
}
