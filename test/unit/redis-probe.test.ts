/**
 * The Redis probe connection (src/admin/redis-probe.ts) and the check built on it, against an in-process server that
 * speaks just enough RESP: replies split across packets, error replies, AUTH on a new connection, overlapping
 * probes, a server that never answers, one that is not there. No redis-server needed.
 */
import assert from "node:assert/strict";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { after, describe, test } from "node:test";
import { parseReply, RedisProbe } from "../../src/admin/redis-probe.ts";
import { checkRedis, infoField } from "../../src/checks/redis.ts";
import { ProbeError } from "../../src/errors.ts";

const PRIMARY_INFO =
  "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.1.2,port=9001,state=online,offset=42,lag=0\r\n" +
  "master_failover_state:no-failover\r\nmaster_replid:abc\r\nmaster_repl_offset:42\r\nsecond_repl_offset:-1\r\n";
const REPLICA_INFO =
  "# Replication\r\nrole:slave\r\nmaster_host:127.0.1.1\r\nmaster_port:9001\r\nmaster_link_status:down\r\n" +
  "master_last_io_seconds_ago:-1\r\nmaster_sync_in_progress:0\r\nslave_read_repl_offset:40\r\nslave_repl_offset:40\r\n";

const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;

/** How the fake server answers: per command line (PING, INFO, AUTH), what to send back; null = never answer. */
type Script = (command: string[], socket: Socket) => string | null;

function fakeRedis(script: Script): Promise<{ server: Server; port: number; commands: string[][] }> {
  const commands: string[][] = [];
  const server = createServer((socket) => {
    let pending = "";
    socket.on("data", (d) => {
      pending += d.toString("latin1");
      let out = "";
      for (;;) {
        const parsed = parseCommand(pending);
        if (!parsed) break;
        pending = pending.slice(parsed.used);
        commands.push(parsed.args);
        out += script(parsed.args, socket) ?? "";
      }
      // The replies in two writes, cut mid-reply, to exercise the probe's reassembly.
      if (out !== "" && !socket.destroyed) {
        const cut = Math.floor(out.length / 2);
        socket.write(out.slice(0, cut));
        setTimeout(() => socket.destroyed || socket.write(out.slice(cut)), 2);
      }
    });
    socket.on("error", () => {});
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as AddressInfo).port, commands })));
}

/** One RESP array of bulk strings (`*2\r\n$4\r\nINFO\r\n...`), or null when incomplete. */
function parseCommand(text: string): { args: string[]; used: number } | null {
  const head = /^\*(\d+)\r\n/.exec(text);
  if (!head) return null;
  let at = head[0].length;
  const args: string[] = [];
  for (let i = 0; i < Number(head[1]); i++) {
    const len = /^\$(\d+)\r\n/.exec(text.slice(at));
    if (!len) return null;
    at += len[0].length;
    if (text.length < at + Number(len[1]) + 2) return null;
    args.push(text.slice(at, at + Number(len[1])));
    at += Number(len[1]) + 2;
  }
  return { args, used: at };
}

const healthy =
  (info: string, server = "# Server\r\nredis_version:7.0.15\r\nrun_id:0123456789abcdef0123456789abcdef01234567\r\n", keyspace = "# Keyspace\r\ndb0:keys=12,expires=0,avg_ttl=0\r\ndb3:keys=5,expires=0,avg_ttl=0\r\n"): Script =>
  ([cmd, section]) =>
    cmd === "PING"
      ? "+PONG\r\n"
      : cmd === "INFO"
        ? bulk(section === "server" ? server : section === "keyspace" ? keyspace : info)
        : "-ERR unknown\r\n";

describe("parseReply", () => {
  test("simple string, error, integer, bulk and null bulk", () => {
    const buf = Buffer.from(`+PONG\r\n-LOADING Redis is loading\r\n:42\r\n${bulk("a\r\nb")}$-1\r\n`);
    const out: unknown[] = [];
    let at = 0;
    for (;;) {
      const r = parseReply(buf, at);
      if (!r) break;
      out.push(r.reply);
      at = r.next;
    }
    assert.equal(out.length, 5);
    assert.equal(out[0], "PONG");
    assert.ok(out[1] instanceof ProbeError && out[1].kind === "loading");
    assert.equal(out[2], 42);
    assert.equal(out[3], "a\r\nb");
    assert.equal(out[4], null);
  });

  test("an incomplete reply is left for the next packet", () => {
    assert.equal(parseReply(Buffer.from("$10\r\nabc"), 0), undefined);
    assert.equal(parseReply(Buffer.from("+PON"), 0), undefined);
  });

  test("an unknown reply type is a protocol error", () => {
    const r = parseReply(Buffer.from("*1\r\n"), 0);
    assert.ok(r?.reply instanceof ProbeError && r.reply.kind === "protocol");
  });
});

describe("infoField", () => {
  test("finds a key by its line, not a key that merely ends with it", () => {
    assert.equal(infoField(PRIMARY_INFO, "\nmaster_repl_offset:"), "42");
    assert.equal(infoField(PRIMARY_INFO, "\nrole:"), "master");
    assert.equal(infoField(PRIMARY_INFO, "\nrepl_offset:"), undefined);
  });
});

describe("RedisProbe against a fake server", () => {
  const servers: Server[] = [];
  const probes: RedisProbe[] = [];
  after(() => {
    for (const p of probes) p.close();
    for (const s of servers) s.close();
  });
  async function serve(script: Script) {
    const f = await fakeRedis(script);
    servers.push(f.server);
    return f;
  }
  function probeOf(port: number, auth = {}) {
    const p = new RedisProbe({ address: "127.0.0.1", port }, auth);
    probes.push(p);
    return p;
  }

  test("a primary: PING, INFO replication and INFO keyspace in one round trip (INFO server ahead, once per connection)", async () => {
    const f = await serve(healthy(PRIMARY_INFO));
    const p = probeOf(f.port);
    const o = await checkRedis({ host: "redis1", port: 9001, address: "127.0.0.1" }, p, 1000);
    assert.equal(o.ok, true, o.failure?.message);
    assert.equal(o.role, "primary");
    assert.equal(o.offset, 42);
    assert.equal(o.runId, "0123456789abcdef0123456789abcdef01234567");
    assert.equal(o.keys, 17, "the keys of every database");
    assert.deepEqual(o.replicas, [{ address: "127.0.1.2", port: 9001, offset: 42, online: true, lag: 0 }]);
    assert.deepEqual(f.commands, [["INFO", "server"], ["PING"], ["INFO", "replication"], ["INFO", "keyspace"]]);
    const again = await checkRedis({ host: "redis1", port: 9001, address: "127.0.0.1" }, p, 1000);
    assert.equal(again.runId, o.runId, "the connection's run_id is kept");
    assert.deepEqual(f.commands.slice(4), [["PING"], ["INFO", "replication"], ["INFO", "keyspace"]], "INFO server only on a new connection");
  });

  test("a restarted server is a new connection, and its new run_id is read", async () => {
    let runId = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const f = await serve((args, socket) => healthy(PRIMARY_INFO, `# Server\r\nrun_id:${runId}\r\n`)(args, socket));
    const p = probeOf(f.port);
    const first = await checkRedis({ host: "r", port: 1, address: "127.0.0.1" }, p, 1000);
    assert.equal(first.runId, runId);
    p.close();
    runId = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const second = await checkRedis({ host: "r", port: 1, address: "127.0.0.1" }, p, 1000);
    assert.equal(second.runId, runId);
  });

  test("a server that refuses INFO server or INFO keyspace is still checked; its identity and key count are unknown", async () => {
    const f = await serve(([cmd, section]) => (cmd === "PING" ? "+PONG\r\n" : section === "replication" ? bulk(PRIMARY_INFO) : "-NOPERM this user has no permissions\r\n"));
    const o = await checkRedis({ host: "r", port: 1, address: "127.0.0.1" }, probeOf(f.port), 1000);
    assert.equal(o.ok, true, o.failure?.message);
    assert.equal(o.runId, undefined);
    assert.equal(o.keys, undefined);
  });

  test("a replica: its primary, link and offset; the connection is kept for the next probe", async () => {
    const f = await serve(healthy(REPLICA_INFO));
    const p = probeOf(f.port);
    const target = { host: "redis2", port: 9001, address: "127.0.0.1" };
    const o = await checkRedis(target, p, 1000);
    assert.equal(o.role, "replica");
    assert.equal(o.primaryAddress, "127.0.1.1");
    assert.equal(o.primaryPort, 9001);
    assert.equal(o.linkUp, false);
    assert.equal(o.syncing, false);
    assert.equal(o.offset, 40);
    const again = await checkRedis(target, p, 1000);
    assert.equal(again.ok, true);
    assert.equal(f.commands.length, 7, "4 on the new connection, 3 on the kept one");
  });

  test("AUTH goes first on a new connection; a refused AUTH is an error reply", async () => {
    const f = await serve(([cmd, ...args], socket) =>
      cmd === "AUTH" ? (args.at(-1) === "s3cret" ? "+OK\r\n" : "-WRONGPASS invalid password\r\n") : healthy(PRIMARY_INFO)([cmd!], socket),
    );
    const ok = await probeOf(f.port, { username: "probe", password: "s3cret" }).probe(1000);
    assert.equal(ok[0], "PONG");
    assert.deepEqual(f.commands[0], ["AUTH", "probe", "s3cret"]);
    await assert.rejects(probeOf(f.port, { password: "nope" }).probe(1000), (e: unknown) => e instanceof ProbeError && e.kind === "error-reply" && /AUTH.*WRONGPASS/.test(e.message));
  });

  test("LOADING and NOAUTH replies to PING are incorrect responses, with their kind", async () => {
    const loading = await serve(([cmd]) => (cmd === "PING" ? "-LOADING Redis is loading the dataset in memory\r\n" : bulk(PRIMARY_INFO)));
    const o = await checkRedis({ host: "r", port: 1, address: "127.0.0.1" }, probeOf(loading.port), 1000);
    assert.equal(o.failure?.kind, "loading");
    const noauth = await serve(() => "-NOAUTH Authentication required.\r\n");
    const n = await checkRedis({ host: "r", port: 1, address: "127.0.0.1" }, probeOf(noauth.port), 1000);
    assert.equal(n.failure?.kind, "error-reply");
    assert.match(n.failure?.message ?? "", /^PING on 127\.0\.0\.1:\d+: NOAUTH/);
  });

  test("a role other than master or slave is wrong-role", async () => {
    const f = await serve(healthy("# Replication\r\nrole:sentinel\r\n"));
    const o = await checkRedis({ host: "r", port: 1, address: "127.0.0.1" }, probeOf(f.port), 1000);
    assert.equal(o.failure?.kind, "wrong-role");
  });

  test("overlapping probes on one connection get their own replies, in order", async () => {
    let n = 0;
    const f = await serve(([cmd, section]) =>
      cmd === "PING" ? "+PONG\r\n" : section === "replication" ? bulk(`# Replication\r\nrole:master\r\nmaster_repl_offset:${++n}\r\n`) : bulk("# Other\r\n"),
    );
    const p = probeOf(f.port);
    const [a, b, c] = await Promise.all([p.probe(1000), p.probe(1000), p.probe(1000)]);
    assert.deepEqual([a[1], b[1], c[1]].map((x) => infoField(String(x), "\nmaster_repl_offset:")), ["1", "2", "3"]);
  });

  test("a server that never answers: timeout within the deadline, and the next probe opens a new connection", async () => {
    let silent = true;
    const connections: Socket[] = [];
    const f = await serve((args, socket) => {
      if (!connections.includes(socket)) connections.push(socket);
      return silent ? null : healthy(PRIMARY_INFO)(args, socket);
    });
    const p = probeOf(f.port);
    const start = Date.now();
    await assert.rejects(p.probe(150), (e: unknown) => e instanceof ProbeError && e.kind === "timeout");
    assert.ok(Date.now() - start < 1000);
    silent = false;
    const r = await p.probe(1000);
    assert.equal(r[0], "PONG");
    assert.equal(connections.length, 2);
  });

  test("nothing listening: refused", async () => {
    const f = await serve(healthy(PRIMARY_INFO));
    const port = f.port;
    await new Promise<void>((resolve) => f.server.close(() => resolve()));
    await assert.rejects(probeOf(port).probe(1000), (e: unknown) => e instanceof ProbeError && e.kind === "refused");
  });

  test("the server closes the connection: reset", async () => {
    const f = await serve((_args, socket) => {
      socket.destroy();
      return null;
    });
    await assert.rejects(probeOf(f.port).probe(1000), (e: unknown) => e instanceof ProbeError && e.kind === "reset");
  });
});

