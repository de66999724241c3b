/**
 * The checks against servers that answer badly: a fake Redis (127.74.0.1) that answers each command of a pipeline
 * with RESP bytes chosen per test, and a fake HAProxy Runtime API (127.74.0.2) that answers each command with text
 * chosen per test. checkRedis (on the ioredis admin client and on the daemon's own probe connection) and
 * checkHaproxy never throw and never hang past their timeout: every bad answer is an observation with ok false and
 * the failure kind that keeps the evidence. The admin client's ROLE parsing (promotion is confirmed by it) rejects
 * bad ROLE replies with the right kind. Well-formed answers give ok true, so the fakes are proven faithful.
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { HaproxyAdminClient } from "../../src/admin/haproxy.ts";
import { RedisAdminClient } from "../../src/admin/redis.ts";
import { type ProbeConnection, RedisProbe } from "../../src/admin/redis-probe.ts";
import { checkHaproxy, type HaproxyTarget } from "../../src/checks/haproxy.ts";
import type { HaproxyObservation, RedisObservation } from "../../src/checks/observation.ts";
import { checkRedis, type RedisTarget } from "../../src/checks/redis.ts";
import { HaproxyCommandError, ProbeError, type ProbeFailureKind } from "../../src/errors.ts";
import { whyNotFree } from "../../src/providers/local/processes.ts";

const REDIS_ADDRESS = "127.74.0.1";
const HAPROXY_ADDRESS = "127.74.0.2";
const TIMEOUT_MS = 300;
/** A check must return within its timeout plus this margin. */
const MARGIN_MS = 300;
/** The node:test deadline of one test: a hung check fails the test instead of hanging the file. */
const TEST_TIMEOUT = { timeout: 10_000 };

/** The first free port from `from` on `address`. */
async function freePort(address: string, from: number): Promise<number> {
  for (let port = from; port < from + 50; port++) if ((await whyNotFree(address, port)) === null) return port;
  throw new Error(`no free port on ${address} from ${from}`);
}

function listen(server: Server, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: address, port, exclusive: true }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** Every socket the fakes accepted, destroyed at the end whatever happens. */
const sockets = new Set<Socket>();
function track(socket: Socket): void {
  sockets.add(socket);
  socket.on("close", () => sockets.delete(socket));
  socket.on("error", () => {});
}

// ----- RESP ------------------------------------------------------------------------------------------------------

const simple = (s: string): string => `+${s}\r\n`;
const error = (s: string): string => `-${s}\r\n`;
const integer = (n: number): string => `:${n}\r\n`;
const bulk = (s: string): string => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const array = (...items: string[]): string => `*${items.length}\r\n${items.join("")}`;
const NIL = "$-1\r\n";

const PRIMARY_ROLE = array(bulk("master"), integer(1234), array(array(bulk("127.74.0.9"), bulk("9001"), bulk("1200"))));
const PRIMARY_INFO = bulk(
  [
    "# Replication",
    "role:master",
    "connected_slaves:1",
    "slave0:ip=127.74.0.9,port=9001,state=online,offset=1200,lag=0",
    "master_repl_offset:1234",
    "",
    "# Persistence",
    "loading:0",
    "",
  ].join("\r\n"),
);
const REPLICA_ROLE = array(bulk("slave"), bulk("127.74.0.8"), integer(9001), bulk("connected"), integer(999));
const REPLICA_INFO = bulk(
  ["# Replication", "role:slave", "master_host:127.74.0.8", "master_port:9001", "master_link_status:up", "master_sync_in_progress:0", "slave_repl_offset:999", "", "# Persistence", "loading:0", ""].join("\r\n"),
);

/** What the fake Redis answers to one command: RESP bytes, or null to stay silent. */
type Answer = string | null;

interface RedisBehaviour {
  /** Called when a connection is accepted; may write to it or close it. */
  readonly onConnect?: (socket: Socket) => void;
  /** The answer to each command, by upper-case name; CLIENT (ioredis' handshake) is +OK unless given. */
  readonly answers?: Partial<Record<"PING" | "ROLE" | "INFO" | "CLIENT", Answer>>;
}

const HEALTHY_PRIMARY: Required<RedisBehaviour>["answers"] = { PING: simple("PONG"), ROLE: PRIMARY_ROLE, INFO: PRIMARY_INFO };

/** Commands a buffer holds in full (RESP arrays of bulk strings, as ioredis sends them), and what is left over. */
function takeCommands(buffer: Buffer): { commands: string[][]; rest: Buffer } {
  const commands: string[][] = [];
  let pos = 0;
  const line = (from: number): { text: string; end: number } | null => {
    const i = buffer.indexOf("\r\n", from);
    return i < 0 ? null : { text: buffer.toString("latin1", from, i), end: i + 2 };
  };
  for (;;) {
    const head = line(pos);
    if (!head) break;
    if (!head.text.startsWith("*")) throw new Error(`the fake Redis expects RESP arrays, got ${JSON.stringify(head.text)}`);
    const count = Number(head.text.slice(1));
    const args: string[] = [];
    let p = head.end;
    let complete = true;
    for (let i = 0; i < count; i++) {
      const len = line(p);
      if (!len) {
        complete = false;
        break;
      }
      const n = Number(len.text.slice(1));
      if (buffer.length < len.end + n + 2) {
        complete = false;
        break;
      }
      args.push(buffer.toString("utf8", len.end, len.end + n));
      p = len.end + n + 2;
    }
    if (!complete) break;
    commands.push(args);
    pos = p;
  }
  return { commands, rest: buffer.subarray(pos) };
}

let redisBehaviour: RedisBehaviour = {};
/** Every command the fake Redis received (upper-case name first), oldest first. */
const redisReceived: string[][] = [];

const fakeRedis = createServer((socket) => {
  track(socket);
  const b = redisBehaviour;
  b.onConnect?.(socket);
  if (socket.destroyed) return;
  let pending: Buffer = Buffer.alloc(0);
  socket.on("data", (data: Buffer) => {
    const { commands, rest } = takeCommands(Buffer.concat([pending, data]));
    pending = rest;
    for (const [name = "", ...args] of commands) {
      const command = name.toUpperCase();
      redisReceived.push([command, ...args]);
      const answers: Record<string, Answer | undefined> = { CLIENT: simple("OK"), ...b.answers };
      const answer = answers[command] === undefined ? error(`ERR unknown command '${name}'`) : answers[command];
      if (answer !== null && socket.writable) socket.write(answer);
    }
  });
});

// ----- HAProxy Runtime API ---------------------------------------------------------------------------------------

/** What the fake HAProxy does with one command: answer and close, answer in part and hang, or reset. */
type HaproxyBehaviour = (command: string, socket: Socket) => void;
const answerAndClose =
  (text: string): HaproxyBehaviour =>
  (_command, socket) => {
    socket.end(text);
  };

let haproxyBehaviour: HaproxyBehaviour = answerAndClose("");
const haproxyReceived: string[] = [];

// allowHalfOpen: the client half-closes after its command; the fake decides when its side ends.
const fakeHaproxy = createServer({ allowHalfOpen: true }, (socket) => {
  track(socket);
  const behave = haproxyBehaviour;
  let text = "";
  let commanded = false;
  socket.on("data", (data: Buffer) => {
    text += data.toString("utf8");
    const nl = text.indexOf("\n");
    if (nl < 0 || commanded) return;
    commanded = true;
    const command = text.slice(0, nl);
    haproxyReceived.push(command);
    behave(command, socket);
  });
  // A connection that only tests the port (a frontend check) sends no command: close it when the client does.
  socket.on("end", () => {
    if (!commanded) socket.end();
  });
});

const SERVERS_STATE = [
  "1",
  "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port",
  "3 redis_9001 1 redis1 127.0.1.1 2 0 1 1 100 6 3 4 6 0 0 0 - 9001 - 0 0 - - 0",
  "3 redis_9001 2 redis2 127.0.1.2 0 1 1 1 100 6 3 0 6 0 0 0 - 9001 - 0 0 - - 0",
  "",
  "",
].join("\n");

let redisPort = 0;
let haproxyPort = 0;

before(async () => {
  redisPort = await freePort(REDIS_ADDRESS, 16_380);
  haproxyPort = await freePort(HAPROXY_ADDRESS, 16_390);
  await listen(fakeRedis, REDIS_ADDRESS, redisPort);
  await listen(fakeHaproxy, HAPROXY_ADDRESS, haproxyPort);
});

after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all([fakeRedis, fakeHaproxy].map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
});

// ----- Redis -----------------------------------------------------------------------------------------------------

const redisTarget = (): RedisTarget => ({ host: "fake", port: redisPort, address: REDIS_ADDRESS });

/** Both connections checkRedis is given: the admin client (ioredis) and the daemon's own probe connection. */
const CONNECTIONS = {
  RedisAdminClient: (): ProbeConnection => new RedisAdminClient({ address: REDIS_ADDRESS, port: redisPort }, TIMEOUT_MS),
  RedisProbe: (): ProbeConnection => new RedisProbe({ address: REDIS_ADDRESS, port: redisPort }),
} as const;
type ConnectionKind = keyof typeof CONNECTIONS;
const CONNECTION_KINDS = Object.keys(CONNECTIONS) as ConnectionKind[];

/** One check of the fake Redis behaving as `b`, on a fresh connection; how long it took. */
async function probeRedis(kind: ConnectionKind, b: RedisBehaviour): Promise<{ obs: RedisObservation; elapsed: number }> {
  redisBehaviour = b;
  redisReceived.length = 0;
  const connection = CONNECTIONS[kind]();
  const started = performance.now();
  try {
    const obs = await checkRedis(redisTarget(), connection, TIMEOUT_MS);
    return { obs, elapsed: performance.now() - started };
  } finally {
    connection.close();
  }
}

function assertWithinDeadline(elapsed: number): void {
  assert.ok(elapsed <= TIMEOUT_MS + MARGIN_MS, `took ${Math.round(elapsed)} ms (timeout ${TIMEOUT_MS} ms)`);
}

/** ok false, one of the `kinds`, a message, no role; within the timeout plus the margin. */
function assertRedisFailure(r: { obs: RedisObservation; elapsed: number }, kinds: readonly ProbeFailureKind[], message?: RegExp): void {
  const detail = JSON.stringify(r.obs);
  assert.equal(r.obs.ok, false, detail);
  assert.ok(r.obs.failure, `a failed observation keeps its failure: ${detail}`);
  assert.ok(kinds.includes(r.obs.failure.kind), `kind ${r.obs.failure.kind}, expected ${kinds.join(" or ")}: ${detail}`);
  assert.ok(r.obs.failure.message.length > 0, detail);
  if (message) assert.match(r.obs.failure.message, message, detail);
  assert.equal(r.obs.role, undefined, detail);
  assert.equal(r.obs.target, `fake:${redisPort}`);
  assertWithinDeadline(r.elapsed);
}

const LOADING = error("LOADING Redis is loading the dataset in memory");
const NOAUTH = error("NOAUTH Authentication required.");
const HTTP = "HTTP/1.1 200 OK\r\n\r\n";

const redisCases: readonly { name: string; behaviour: RedisBehaviour; kinds: ProbeFailureKind[]; message?: RegExp }[] = [
  { name: "PING answering +NOTPONG", behaviour: { answers: { ...HEALTHY_PRIMARY, PING: simple("NOTPONG") } }, kinds: ["error-reply"], message: /NOTPONG/ },
  { name: "INFO answering an integer", behaviour: { answers: { ...HEALTHY_PRIMARY, INFO: integer(1) } }, kinds: ["protocol"], message: /INFO/ },
  { name: "INFO answering nil", behaviour: { answers: { ...HEALTHY_PRIMARY, INFO: NIL } }, kinds: ["protocol"], message: /INFO/ },
  {
    name: "INFO saying role:sentinel",
    behaviour: { answers: { ...HEALTHY_PRIMARY, INFO: bulk("# Replication\r\nrole:sentinel\r\n") } },
    kinds: ["wrong-role"],
    message: /sentinel/,
  },
  {
    name: "INFO of a primary without master_repl_offset",
    behaviour: { answers: { ...HEALTHY_PRIMARY, INFO: bulk("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n") } },
    kinds: ["protocol"],
    message: /master_repl_offset/,
  },
  {
    name: "INFO of a replica whose master_port is not a port",
    behaviour: { answers: { ...HEALTHY_PRIMARY, INFO: bulk("# Replication\r\nrole:slave\r\nmaster_host:127.74.0.8\r\nmaster_port:99999\r\n") } },
    kinds: ["protocol"],
    message: /master_port/,
  },
  {
    name: "INFO cut off mid-reply, then silence",
    behaviour: { answers: { ...HEALTHY_PRIMARY, INFO: PRIMARY_INFO.slice(0, 30) } },
    kinds: ["timeout"],
  },
  {
    name: "INFO cut off mid-reply, then the connection closes",
    behaviour: {
      // The fake's own answers are silent; this listener answers PING and half of INFO, then closes.
      answers: { PING: null, INFO: null },
      onConnect: (socket) => {
        socket.on("data", (d: Buffer) => {
          if (d.includes("INFO")) socket.end(`+PONG\r\n${PRIMARY_INFO.slice(0, 30)}`);
        });
      },
    },
    kinds: ["reset", "protocol"],
  },
  { name: "-LOADING to every command", behaviour: { answers: { PING: LOADING, ROLE: LOADING, INFO: LOADING } }, kinds: ["loading"], message: /LOADING/ },
  {
    name: "a dataset loading (PING refused with -LOADING, INFO says loading:1)",
    behaviour: { answers: { PING: LOADING, INFO: bulk("# Replication\r\nrole:master\r\nmaster_repl_offset:0\r\n\r\n# Persistence\r\nloading:1\r\n") } },
    kinds: ["loading"],
    message: /LOADING/,
  },
  {
    name: "-MISCONF (a primary that cannot persist refuses PING)",
    behaviour: {
      answers: { ...HEALTHY_PRIMARY, PING: error("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk") },
    },
    kinds: ["error-reply"],
    message: /MISCONF/,
  },
  {
    name: "-NOAUTH to every command (the handshake too)",
    behaviour: { answers: { CLIENT: NOAUTH, PING: NOAUTH, ROLE: NOAUTH, INFO: NOAUTH } },
    kinds: ["error-reply"],
    message: /NOAUTH/,
  },
  { name: "a server that closes right after accepting", behaviour: { onConnect: (socket) => socket.destroy() }, kinds: ["reset"] },
  {
    name: "a server that sends HTTP on accept",
    behaviour: { onConnect: (socket) => socket.write(HTTP), answers: { ...HEALTHY_PRIMARY } },
    kinds: ["protocol", "reset"],
  },
  {
    name: "a server that answers every command with HTTP",
    behaviour: { answers: { CLIENT: HTTP, PING: HTTP, ROLE: HTTP, INFO: HTTP } },
    kinds: ["protocol", "reset"],
  },
  { name: "a server that never answers (not even a handshake)", behaviour: { answers: { CLIENT: null, PING: null, INFO: null } }, kinds: ["timeout"] },
  { name: "a server that answers PING, then never again", behaviour: { answers: { PING: simple("PONG"), INFO: null } }, kinds: ["timeout"] },
];

for (const kind of CONNECTION_KINDS) {
  describe(`checkRedis on a ${kind} against a fake Redis`, () => {
    test("a primary's replies give ok true, the role, the offset and the replicas (the fake is faithful)", TEST_TIMEOUT, async () => {
      const r = await probeRedis(kind, { answers: HEALTHY_PRIMARY });
      assert.equal(r.obs.ok, true, JSON.stringify(r.obs));
      assert.equal(r.obs.failure, undefined);
      assert.equal(r.obs.role, "primary");
      assert.equal(r.obs.offset, 1234);
      assert.deepEqual(r.obs.replicas, [{ address: "127.74.0.9", port: 9001, offset: 1200, online: true, lag: 0 }]);
      const names = redisReceived.map((c) => c[0]);
      for (const name of ["PING", "INFO"]) assert.ok(names.includes(name), `the fake received ${name}: ${JSON.stringify(redisReceived)}`);
    });

    test("a replica's replies give ok true with its primary and link", TEST_TIMEOUT, async () => {
      const r = await probeRedis(kind, { answers: { PING: simple("PONG"), ROLE: REPLICA_ROLE, INFO: REPLICA_INFO } });
      assert.equal(r.obs.ok, true, JSON.stringify(r.obs));
      assert.equal(r.obs.role, "replica");
      assert.equal(r.obs.primaryAddress, "127.74.0.8");
      assert.equal(r.obs.primaryPort, 9001);
      assert.equal(r.obs.linkUp, true);
      assert.equal(r.obs.syncing, false);
      assert.equal(r.obs.offset, 999);
    });

    for (const c of redisCases) {
      test(`${c.name}: ok false, ${c.kinds.join(" or ")}`, TEST_TIMEOUT, async () => {
        assertRedisFailure(await probeRedis(kind, c.behaviour), c.kinds, c.message);
      });
    }

    test("a timeout takes the whole deadline (no early give-up), then the next check on the same connection works", TEST_TIMEOUT, async () => {
      redisBehaviour = { answers: { CLIENT: null, PING: null, INFO: null } };
      const connection = CONNECTIONS[kind]();
      try {
        const started = performance.now();
        const hung = await checkRedis(redisTarget(), connection, TIMEOUT_MS);
        const elapsed = performance.now() - started;
        assertRedisFailure({ obs: hung, elapsed }, ["timeout"]);
        assert.ok(elapsed >= TIMEOUT_MS - 20, `gave up after ${Math.round(elapsed)} ms`);
        redisBehaviour = { answers: HEALTHY_PRIMARY };
        const healthy = await checkRedis(redisTarget(), connection, TIMEOUT_MS);
        assert.equal(healthy.ok, true, `a timed-out connection is dropped and the next check opens a new one: ${JSON.stringify(healthy)}`);
      } finally {
        connection.close();
      }
    });
  });
}

describe("the fake Redis", () => {
  test("its request parser splits a pipeline written in pieces", () => {
    const wire = Buffer.from("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n*1\r\n$4\r\nRO");
    const { commands, rest } = takeCommands(wire);
    assert.deepEqual(commands, [["PING"], ["INFO", "replication"]]);
    assert.equal(rest.toString(), "*1\r\n$4\r\nRO");
  });
});

describe("RedisAdminClient.role() against a fake Redis: a bad ROLE reply is a ProbeError of the right kind", () => {
  const roleCases: readonly { name: string; answer: string; kind: ProbeFailureKind; message: RegExp }[] = [
    { name: "an integer", answer: integer(1), kind: "protocol", message: /not a list/ },
    { name: "a truncated array (master without offset or replicas)", answer: array(bulk("master")), kind: "protocol", message: /malformed primary reply/ },
    { name: "a truncated replica array", answer: array(bulk("slave"), bulk("127.74.0.8")), kind: "protocol", message: /malformed replica reply/ },
    { name: "an array cut off mid-reply, then silence", answer: "*3\r\n$6\r\nmaster\r\n:12", kind: "timeout", message: /ROLE/ },
    { name: "sentinel", answer: array(bulk("sentinel"), array(bulk("mymaster"))), kind: "wrong-role", message: /sentinel/ },
    { name: "-LOADING", answer: LOADING, kind: "loading", message: /LOADING/ },
  ];

  test("a well-formed ROLE is parsed (the fake is faithful)", TEST_TIMEOUT, async () => {
    redisBehaviour = { answers: { ...HEALTHY_PRIMARY, ROLE: REPLICA_ROLE } };
    const client = new RedisAdminClient({ address: REDIS_ADDRESS, port: redisPort }, TIMEOUT_MS);
    try {
      assert.deepEqual(await client.role(), { role: "replica", primary: { address: "127.74.0.8", port: 9001 }, linkState: "connected", offset: 999 });
    } finally {
      client.close();
    }
  });

  for (const c of roleCases) {
    test(`ROLE answering ${c.name}: ${c.kind}`, TEST_TIMEOUT, async () => {
      redisBehaviour = { answers: { ...HEALTHY_PRIMARY, ROLE: c.answer } };
      const client = new RedisAdminClient({ address: REDIS_ADDRESS, port: redisPort }, TIMEOUT_MS);
      const started = performance.now();
      try {
        await assert.rejects(client.role(), (e: unknown) => {
          assert.ok(e instanceof ProbeError, `a ProbeError, not ${String(e)}`);
          assert.equal(e.kind, c.kind, e.message);
          assert.match(e.message, c.message);
          return true;
        });
        assertWithinDeadline(performance.now() - started);
      } finally {
        client.close();
      }
    });
  }
});

// ----- HAProxy ---------------------------------------------------------------------------------------------------

const haproxyTarget = (frontendPorts: readonly number[] = []): HaproxyTarget => ({
  host: "fakeproxy",
  role: "haproxy",
  address: HAPROXY_ADDRESS,
  frontendPorts,
});

function adminClient(): HaproxyAdminClient {
  return new HaproxyAdminClient({ address: HAPROXY_ADDRESS, port: haproxyPort }, TIMEOUT_MS);
}

async function probeHaproxy(b: HaproxyBehaviour, frontendPorts: readonly number[] = []): Promise<{ obs: HaproxyObservation; elapsed: number }> {
  haproxyBehaviour = b;
  haproxyReceived.length = 0;
  const started = performance.now();
  const obs = await checkHaproxy(haproxyTarget(frontendPorts), adminClient(), TIMEOUT_MS);
  return { obs, elapsed: performance.now() - started };
}

function assertHaproxyFailure(r: { obs: HaproxyObservation; elapsed: number }, kinds: readonly ProbeFailureKind[], message?: RegExp): void {
  const detail = JSON.stringify(r.obs);
  assert.equal(r.obs.ok, false, detail);
  assert.ok(r.obs.failure, detail);
  assert.ok(kinds.includes(r.obs.failure.kind), `kind ${r.obs.failure.kind}, expected ${kinds.join(" or ")}: ${detail}`);
  assert.ok(r.obs.failure.message.length > 0, detail);
  if (message) assert.match(r.obs.failure.message, message, detail);
  assert.deepEqual(r.obs.servers, [], "a failed check claims no view of the servers");
  assert.ok(r.elapsed <= TIMEOUT_MS + MARGIN_MS, `the check took ${Math.round(r.elapsed)} ms (timeout ${TIMEOUT_MS} ms)`);
}

describe("the HAProxy Runtime API client and check against a fake HAProxy", () => {
  test("a well-formed show servers state gives ok true and the servers (the fake is faithful)", TEST_TIMEOUT, async () => {
    haproxyBehaviour = answerAndClose(SERVERS_STATE);
    const rows = await adminClient().showServersState();
    assert.deepEqual(
      rows.map((s) => [s.backend, s.server, s.address, s.port, s.isUp, s.inMaint]),
      [
        ["redis_9001", "redis1", "127.0.1.1", 9001, true, false],
        ["redis_9001", "redis2", "127.0.1.2", 9001, false, true],
      ],
    );
    // The fake's own port stands for a frontend: it accepts connections.
    const r = await probeHaproxy(answerAndClose(SERVERS_STATE), [haproxyPort]);
    assert.equal(r.obs.ok, true, JSON.stringify(r.obs));
    assert.equal(r.obs.failure, undefined);
    assert.deepEqual(r.obs.closedFrontends, []);
    assert.equal(r.obs.servers.length, 2);
    assert.deepEqual(haproxyReceived, ["show servers state"]);
  });

  const bad: readonly { name: string; behaviour: HaproxyBehaviour; kinds: ProbeFailureKind[]; commandError: boolean; message?: RegExp }[] = [
    { name: "garbage", behaviour: answerAndClose("\u0001\u0002garbage \u00ff\nzzz\n"), kinds: ["protocol"], commandError: true, message: /garbage/ },
    { name: "an empty reply", behaviour: answerAndClose(""), kinds: ["protocol"], commandError: true, message: /empty reply/ },
    {
      name: "a reply missing columns",
      behaviour: answerAndClose("1\n# be_id be_name srv_id srv_name\n3 redis_9001 1 redis1\n\n"),
      kinds: ["protocol"],
      commandError: true,
      message: /no column srv_addr/,
    },
    { name: "Unknown command.", behaviour: answerAndClose("Unknown command.\n"), kinds: ["protocol"], commandError: true, message: /Unknown command/ },
    {
      name: "a partial reply, then a hang",
      behaviour: (_command, socket) => {
        socket.write(SERVERS_STATE.slice(0, 60));
      },
      kinds: ["timeout"],
      commandError: false,
    },
    {
      name: "a connection reset",
      behaviour: (_command, socket) => {
        socket.resetAndDestroy();
      },
      kinds: ["reset"],
      commandError: false,
    },
  ];

  for (const c of bad) {
    test(`show servers state answering ${c.name}: the client rejects, the check is ok false (${c.kinds.join(" or ")})`, TEST_TIMEOUT, async () => {
      haproxyBehaviour = c.behaviour;
      const started = performance.now();
      await assert.rejects(adminClient().showServersState(), (e: unknown) => {
        assert.equal(e instanceof HaproxyCommandError, c.commandError, `got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        if (!c.commandError) assert.ok(e instanceof ProbeError && c.kinds.includes(e.kind), `a ProbeError (${c.kinds.join(" or ")}), got ${String(e)}`);
        return true;
      });
      assert.ok(performance.now() - started <= TIMEOUT_MS + MARGIN_MS);
      assertHaproxyFailure(await probeHaproxy(c.behaviour), c.kinds, c.message);
    });
  }

  test("set server ... state answering 'No such server.' rejects with HaproxyCommandError; an empty reply is success", TEST_TIMEOUT, async () => {
    haproxyBehaviour = answerAndClose("No such server.\n\n");
    haproxyReceived.length = 0;
    await assert.rejects(adminClient().setState("redis_9001", "nosuch", "maint"), (e: unknown) => {
      assert.ok(e instanceof HaproxyCommandError, String(e));
      assert.equal(e.command, "set server redis_9001/nosuch state maint");
      assert.match(e.message, /No such server\./);
      return true;
    });
    assert.deepEqual(haproxyReceived, ["set server redis_9001/nosuch state maint"]);
    haproxyBehaviour = answerAndClose("\n");
    await adminClient().setState("redis_9001", "redis1", "ready");
  });

  test("set server ... addr: a sentence that is not a success rejects; 'IP changed from ...' succeeds", TEST_TIMEOUT, async () => {
    haproxyReceived.length = 0;
    for (const reply of ["Invalid addr.\n", "Require 'addr' or 'port'.\n", "No such server.\n", "IP changed? no.\n"]) {
      haproxyBehaviour = answerAndClose(reply);
      await assert.rejects(adminClient().setAddr("redis_9001", "redis1", "127.0.1.11", 9001), (e: unknown) => {
        assert.ok(e instanceof HaproxyCommandError, `${JSON.stringify(reply)}: ${String(e)}`);
        assert.ok(e.message.includes(reply.trim()), e.message);
        return true;
      });
    }
    haproxyBehaviour = answerAndClose("IP changed from '127.0.1.1' to '127.0.1.11', port changed from '9001' to '9001' by 'stats socket command'\n");
    await adminClient().setAddr("redis_9001", "redis1", "127.0.1.11", 9001);
    assert.equal(haproxyReceived.length, 5);
    assert.ok(haproxyReceived.every((c) => c === "set server redis_9001/redis1 addr 127.0.1.11 port 9001"), JSON.stringify(haproxyReceived));
  });
});
