/**
 * The reply parsers (Redis ROLE / INFO, HAProxy `show servers state` / `show stat`), error classification, and the
 * rendered failoverd HAProxy file, validated by the real `haproxy -c`, alone and beside a host's own config. No server
 * is started.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ReplyError } from "ioredis";
import { cmd, commandText, parseServersState, parseStat, splitReplies } from "../../src/admin/haproxy.ts";
import { redisBackendName, relayBackendName, renderForHost, renderHaproxyConfig } from "../../src/admin/haproxy-config.ts";
import { classify, type Endpoint, parseInfo, parseRole } from "../../src/admin/redis.ts";
import { parseReplicas } from "../../src/checks/redis.ts";
import { HaproxyCommandError, ProbeError, type ProbeFailureKind } from "../../src/errors.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import { DEFAULT_CONFIG_PATH, parseTopology } from "../../src/topology/load.ts";

const EP: Endpoint = { address: "127.0.1.1", port: 9001 };

function expectProbeError(fn: () => unknown, kind: ProbeFailureKind): ProbeError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, "expected a ProbeError, but nothing was thrown");
  if (!(caught instanceof ProbeError)) {
    assert.fail(`expected a ProbeError(${kind}), got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  }
  assert.equal(caught.kind, kind, caught.message);
  assert.ok(caught.message.includes("127.0.1.1:9001"), `the message names the endpoint: ${caught.message}`);
  return caught;
}

function expectHaproxyError(fn: () => unknown): HaproxyCommandError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, "expected a HaproxyCommandError, but nothing was thrown");
  if (!(caught instanceof HaproxyCommandError)) {
    assert.fail(`expected a HaproxyCommandError, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  }
  assert.doesNotMatch(caught.message, /\n/, "the message is one line");
  return caught;
}

// ---------------------------------------------------------------------------------------------------------------
// Redis: ROLE
// ---------------------------------------------------------------------------------------------------------------

describe("parseRole", () => {
  test("a primary with two replicas (replica fields are strings)", () => {
    const r = parseRole(
      [
        "master",
        3129659,
        [
          ["127.0.1.2", "9001", "3129242"],
          ["127.0.1.3", "9001", "3129543"],
        ],
      ],
      EP,
    );
    assert.deepEqual(r, {
      role: "primary",
      offset: 3129659,
      replicas: [
        { address: "127.0.1.2", port: 9001, offset: 3129242 },
        { address: "127.0.1.3", port: 9001, offset: 3129543 },
      ],
    });
  });

  test("a primary with no replicas", () => {
    assert.deepEqual(parseRole(["master", 0, []], EP), { role: "primary", offset: 0, replicas: [] });
  });

  test("a connected replica", () => {
    assert.deepEqual(parseRole(["slave", "127.0.1.1", 9001, "connected", 3167038], EP), {
      role: "replica",
      primary: { address: "127.0.1.1", port: 9001 },
      linkState: "connected",
      offset: 3167038,
    });
  });

  test("a replica still connecting (offset -1) and one in handshake", () => {
    const connecting = parseRole(["slave", "127.0.1.1", 9001, "connect", -1], EP);
    assert.equal(connecting.role, "replica");
    assert.equal(connecting.role === "replica" && connecting.linkState, "connect");
    assert.equal(connecting.role === "replica" && connecting.offset, -1);
    const handshake = parseRole(["slave", "127.0.1.1", "9001", "handshake", 0], EP);
    assert.deepEqual(handshake.role === "replica" && handshake.primary, { address: "127.0.1.1", port: 9001 });
  });

  test("a sentinel is a wrong role, not a protocol error", () => {
    const e = expectProbeError(() => parseRole(["sentinel", ["resque-master", "html-fragments-master"]], EP), "wrong-role");
    assert.match(e.message, /'sentinel'/);
  });

  test("any other role word is a wrong role", () => {
    expectProbeError(() => parseRole(["arbiter", 1, []], EP), "wrong-role");
  });

  const garbage: readonly [string, unknown][] = [
    ["a number", 42],
    ["null", null],
    ["undefined", undefined],
    ["a string", "master"],
    ["an OK status", "OK"],
    ["a mapping", { role: "master" }],
    ["an empty list", []],
    ["a list starting with null", [null]],
    ["a list starting with a number", [42, 1, []]],
    ["a list starting with a nested list", [["master"], 1, []]],
    ["a buffer role", [Buffer.from("master"), 1, []]],
    ["master alone", ["master"]],
    ["master with a non-numeric offset", ["master", "abc", []]],
    ["master with an undefined offset", ["master", undefined, []]],
    ["master with a string for the replica list", ["master", 1, "127.0.1.2"]],
    ["master with null for the replica list", ["master", 1, null]],
    ["master with a mapping for the replica list", ["master", 1, { a: 1 }]],
    ["master with a number as a replica entry", ["master", 1, [42]]],
    ["master with null as a replica entry", ["master", 1, [null]]],
    ["master with a string as a replica entry", ["master", 1, ["127.0.1.2:9001"]]],
    ["master with a short replica entry", ["master", 1, [["127.0.1.2", "9001"]]]],
    ["slave alone", ["slave"]],
    ["slave with a numeric primary address", ["slave", 42, 9001, "connected", 1]],
    ["slave with a null primary address", ["slave", null, 9001, "connected", 1]],
    ["slave with a non-numeric port", ["slave", "127.0.1.1", "redis", "connected", 1]],
    ["slave with no port", ["slave", "127.0.1.1"]],
  ];
  for (const [name, reply] of garbage) {
    test(`garbage: ${name} -> ProbeError protocol, never a TypeError`, () => {
      expectProbeError(() => parseRole(reply, EP), "protocol");
    });
  }
});

describe("parseRole: reported src defects (expected behaviour)", () => {
  // src/admin/redis.ts parseRole coerces with Number() and String(), so null, "" and [] become 0 and nested
  // values become strings: these malformed replies are accepted instead of rejected as protocol errors.
  const lenient: readonly [string, unknown][] = [
    ["master with a null offset", ["master", null, []]],
    ["master with an empty-string offset", ["master", "", []]],
    ["master with a list as offset", ["master", [], []]],
    ["master with a replica entry of nulls", ["master", 1, [[null, null, null]]]],
    ["master with a non-numeric replica port", ["master", 1, [["127.0.1.2", "redis", "10"]]]],
    ["master with a nested list as replica address", ["master", 1, [[["127.0.1.2"], "9001", "10"]]]],
    ["slave with a null port", ["slave", "127.0.1.1", null, "connected", 1]],
    ["slave with a non-numeric offset", ["slave", "127.0.1.1", 9001, "connected", "abc"]],
    ["slave with a null link state", ["slave", "127.0.1.1", 9001, null, 1]],
  ];
  for (const [name, reply] of lenient) {
    test(`garbage: ${name} -> ProbeError protocol`, () => {
      expectProbeError(() => parseRole(reply, EP), "protocol");
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Redis: INFO
// ---------------------------------------------------------------------------------------------------------------

const INFO_PRIMARY = [
  "# Replication",
  "role:master",
  "connected_slaves:2",
  "slave0:ip=127.0.1.2,port=9001,state=online,offset=3129242,lag=0",
  "slave1:ip=127.0.1.3,port=9001,state=wait_bgsave,offset=0,lag=1",
  "master_failover_state:no-failover",
  "master_replid:c1b5e3f5b0e4a1f0e4f2a1d5c3b2a1f0e4d3c2b1",
  "master_replid2:0000000000000000000000000000000000000000",
  "master_repl_offset:3129659",
  "second_repl_offset:-1",
  "repl_backlog_active:1",
  "repl_backlog_size:1048576",
  "repl_backlog_first_byte_offset:2081084",
  "repl_backlog_histlen:1048576",
  "",
  "# Persistence",
  "loading:0",
  "async_loading:0",
  "rdb_changes_since_last_save:12",
  "",
].join("\r\n");

const INFO_REPLICA = [
  "# Replication",
  "role:slave",
  "master_host:127.0.1.1",
  "master_port:9001",
  "master_link_status:down",
  "master_last_io_seconds_ago:-1",
  "master_sync_in_progress:0",
  "slave_read_repl_offset:3129242",
  "slave_repl_offset:3129242",
  "master_link_down_since_seconds:4",
  "slave_priority:100",
  "slave_read_only:1",
  "replica_announced:1",
  "connected_slaves:0",
  "master_repl_offset:3129242",
  "",
].join("\r\n");

describe("parseInfo", () => {
  test("a primary's INFO replication and persistence", () => {
    const info = parseInfo(INFO_PRIMARY);
    assert.equal(info["role"], "master");
    assert.equal(info["connected_slaves"], "2");
    assert.equal(info["master_repl_offset"], "3129659");
    assert.equal(info["second_repl_offset"], "-1");
    assert.equal(info["loading"], "0");
    assert.equal(info["slave0"], "ip=127.0.1.2,port=9001,state=online,offset=3129242,lag=0");
    assert.equal(info["# Replication"], undefined, "section headers are skipped");
    assert.equal(Object.keys(info).length, 16);
  });

  test("a replica's INFO replication", () => {
    const info = parseInfo(INFO_REPLICA);
    assert.equal(info["role"], "slave");
    assert.equal(info["master_host"], "127.0.1.1");
    assert.equal(info["master_port"], "9001");
    assert.equal(info["master_link_status"], "down");
    assert.equal(info["master_sync_in_progress"], "0");
    assert.equal(info["slave_repl_offset"], "3129242");
  });

  test("a value that contains ':' keeps everything after the first colon", () => {
    const info = parseInfo("executable:/usr/bin/redis-server\r\nmaster_host:::1\r\nconfig_file:\r\n");
    assert.equal(info["executable"], "/usr/bin/redis-server");
    assert.equal(info["master_host"], "::1");
    assert.equal(info["config_file"], "");
  });

  test("empty text, comments only, and lines without a key give nothing", () => {
    assert.deepEqual(parseInfo(""), {});
    assert.deepEqual(parseInfo("# Replication\r\n\r\n"), {});
    assert.deepEqual(parseInfo("no colon here\r\n:no key\r\n"), {});
  });
});

describe("parseReplicas", () => {
  test("the slaveN lines of a primary's INFO, online or not", () => {
    assert.deepEqual(parseReplicas(parseInfo(INFO_PRIMARY)), [
      { address: "127.0.1.2", port: 9001, offset: 3129242, online: true, lag: 0 },
      { address: "127.0.1.3", port: 9001, offset: 0, online: false, lag: 1 },
    ]);
  });

  test("a replica's INFO (slave_repl_offset, slave_read_only, ...) lists no replicas", () => {
    assert.deepEqual(parseReplicas(parseInfo(INFO_REPLICA)), []);
  });

  test("an IPv6 replica address", () => {
    assert.deepEqual(parseReplicas({ slave0: "ip=::1,port=6380,state=online,offset=7,lag=2" }), [
      { address: "::1", port: 6380, offset: 7, online: true, lag: 2 },
    ]);
  });

  test("missing fields: offset and lag default to 0, a missing state is not online", () => {
    assert.deepEqual(parseReplicas({ slave3: "ip=127.0.1.2,port=9002" }), [
      { address: "127.0.1.2", port: 9002, offset: 0, online: false, lag: 0 },
    ]);
  });

  test("only slaveN keys count", () => {
    assert.deepEqual(
      parseReplicas({ slave: "ip=1.2.3.4,port=1", slaves0: "ip=1.2.3.4,port=1", slave_repl_offset: "5", xslave0: "ip=1.2.3.4,port=1" }),
      [],
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Redis: error classification
// ---------------------------------------------------------------------------------------------------------------

const errno = (code: string, message = `${code} 127.0.1.1:9001`) => Object.assign(new Error(message), { code });

describe("classify", () => {
  const table: readonly [string, unknown, ProbeFailureKind][] = [
    ["a LOADING reply", new ReplyError("LOADING Redis is loading the dataset in memory"), "loading"],
    ["an ERR reply", new ReplyError("ERR unknown command 'FOO', with args beginning with: "), "error-reply"],
    ["a MASTERDOWN reply", new ReplyError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), "error-reply"],
    ["a NOAUTH reply", new ReplyError("NOAUTH Authentication required."), "error-reply"],
    ["a MISCONF reply", new ReplyError("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist"), "error-reply"],
    ["ECONNREFUSED", errno("ECONNREFUSED", "connect ECONNREFUSED 127.0.1.1:9001"), "refused"],
    ["ETIMEDOUT", errno("ETIMEDOUT"), "timeout"],
    ["ioredis' command timeout", new Error("Command timed out"), "timeout"],
    ["a deadline", new Error("PING on 127.0.1.1:9001: deadline exceeded"), "timeout"],
    ["ECONNRESET", errno("ECONNRESET", "read ECONNRESET"), "reset"],
    ["EPIPE", errno("EPIPE", "write EPIPE"), "reset"],
    ["ioredis' closed connection", new Error("Connection is closed."), "reset"],
    ["ioredis' offline queue refusal", new Error("Stream isn't writeable and enableOfflineQueue options is false"), "reset"],
    ["EHOSTUNREACH", errno("EHOSTUNREACH"), "timeout"],
    ["ENETUNREACH", errno("ENETUNREACH"), "timeout"],
    ["EADDRNOTAVAIL", errno("EADDRNOTAVAIL"), "timeout"],
    ["an unknown error", new Error("something odd"), "protocol"],
    ["a thrown string", "boom", "protocol"],
    ["null", null, "protocol"],
    ["undefined", undefined, "protocol"],
  ];
  for (const [name, error, kind] of table) {
    test(`${name} -> ${kind}`, () => {
      const p = classify(error, EP, "PING");
      assert.ok(p instanceof ProbeError);
      assert.equal(p.kind, kind, p.message);
      assert.ok(p.message.startsWith("PING on 127.0.1.1:9001"), p.message);
    });
  }

  test("a ProbeError passes through unchanged", () => {
    const original = new ProbeError("wrong-role", "ROLE on 127.0.1.1:9001 says 'sentinel'");
    assert.equal(classify(original, EP, "ROLE"), original);
  });

  test("an error reply keeps only its first line", () => {
    const p = classify(new ReplyError("ERR first line\nsecond line"), EP, "INFO");
    assert.equal(p.message, "INFO on 127.0.1.1:9001: ERR first line");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// HAProxy Runtime API replies (HAProxy 2.6)
// ---------------------------------------------------------------------------------------------------------------

const STATE_HEADER =
  "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight " +
  "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state " +
  "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr " +
  "srv_agent_addr srv_agent_port";

/** `show servers state` from HAProxy 2.6.12: redis1 running, redis2 rendered `disabled` (admin 5). */
const SERVERS_STATE = [
  "1",
  STATE_HEADER,
  "3 be_redis_9001 1 redis1 127.0.1.1 2 0 1 1 42 6 3 4 6 0 0 0 - 9001 - 0 0 - - 0",
  "3 be_redis_9001 2 redis2 127.0.1.2 0 5 1 1 2 1 0 0 14 0 0 0 - 9001 - 0 0 - - 0",
  "5 be_redis_9002 1 redis1 127.0.1.1 2 1 1 1 3 8 2 0 14 0 0 0 - 9002 - 0 0 - - 0",
  "5 be_redis_9002 2 redis2 127.0.1.2 2 8 1 1 2 6 3 4 6 0 0 0 - 9002 - 0 0 - - 0",
  "",
  "",
].join("\n");

describe("parseServersState", () => {
  test("a full reply: one row per server, with address, port and states", () => {
    assert.deepEqual(parseServersState(SERVERS_STATE), [
      { backend: "be_redis_9001", server: "redis1", address: "127.0.1.1", port: 9001, opState: 2, adminState: 0, inMaint: false, inDrain: false, isUp: true },
      { backend: "be_redis_9001", server: "redis2", address: "127.0.1.2", port: 9001, opState: 0, adminState: 5, inMaint: true, inDrain: false, isUp: false },
      { backend: "be_redis_9002", server: "redis1", address: "127.0.1.1", port: 9002, opState: 2, adminState: 1, inMaint: true, inDrain: false, isUp: true },
      { backend: "be_redis_9002", server: "redis2", address: "127.0.1.2", port: 9002, opState: 2, adminState: 8, inMaint: false, inDrain: true, isUp: true },
    ]);
  });

  const adminTable: readonly [number, boolean][] = [
    [0, false],
    [1, true],
    [2, true],
    [4, true],
    [5, true],
    [8, false],
    [16, false],
    [32, true],
    [9, true],
  ];
  for (const [admin, maint] of adminTable) {
    test(`srv_admin_state ${admin} -> ${maint ? "in maintenance" : "not in maintenance"}`, () => {
      const text = `1\n${STATE_HEADER}\n3 be_redis_9001 1 redis1 127.0.1.1 2 ${admin} 1 1 42 6 3 4 6 0 0 0 - 9001 - 0 0 - - 0\n`;
      const [row] = parseServersState(text);
      assert.equal(row?.adminState, admin);
      assert.equal(row?.inMaint, maint);
    });
  }

  for (const [op, isUp] of [
    [0, false],
    [1, false],
    [2, true],
    [3, false],
  ] as const) {
    test(`srv_op_state ${op} -> ${isUp ? "up" : "not up"}`, () => {
      const [row] = parseServersState(`1\n${STATE_HEADER}\n3 be_redis_9001 1 redis1 127.0.1.1 ${op} 0 1 1 42 6 3 4 6 0 0 0 - 9001 - 0 0 - - 0\n`);
      assert.equal(row?.opState, op);
      assert.equal(row?.isUp, isUp);
    });
  }

  test("a backend with no server: version and header only", () => {
    assert.deepEqual(parseServersState(`1\n${STATE_HEADER}\n\n`), []);
  });

  test("columns are found by name, not by position", () => {
    const text = "1\n# srv_port be_name srv_name srv_op_state srv_admin_state srv_addr\n6380 be_x r9 2 0 10.0.0.9\n";
    assert.deepEqual(parseServersState(text), [
      { backend: "be_x", server: "r9", address: "10.0.0.9", port: 6380, opState: 2, adminState: 0, inMaint: false, inDrain: false, isUp: true },
    ]);
  });

  const errors: readonly [string, string][] = [
    ["No such backend.", "No such backend.\n"],
    ["Can't find backend. (2.6's spelling)", "Can't find backend.\n\n"],
    [
      "Unknown command (with its help text)",
      "Unknown command, but maybe one of the following ones is a better match:\n  add acl [@<ver>] <acl> <pattern>        : add an acl entry\n  show servers state [<backend>]          : dump volatile server information (all or for a single backend)\n\n",
    ],
    ["Permission denied", "Permission denied\n\n"],
    ["an empty reply", ""],
    ["blank lines only", "\n\n"],
  ];
  for (const [name, reply] of errors) {
    test(`error reply: ${name} -> HaproxyCommandError`, () => {
      const e = expectHaproxyError(() => parseServersState(reply, "show servers state be_nosuch"));
      assert.equal(e.command, "show servers state be_nosuch");
      assert.ok(e.message.startsWith("HAProxy refused 'show servers state be_nosuch': "), e.message);
    });
  }

  test("the error message keeps the reply's first line", () => {
    const e = expectHaproxyError(() => parseServersState("No such backend.\n"));
    assert.equal(e.message, "HAProxy refused 'show servers state': No such backend.");
  });

  test("a version line with no header is an error naming the missing column", () => {
    const e = expectHaproxyError(() => parseServersState("1\n"));
    assert.match(e.message, /no column be_name/);
  });
});

/** The exact `show stat` header of HAProxy 2.6.12. */
const STAT_HEADER =
  "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act," +
  "bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max," +
  "check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate," +
  "req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime," +
  "rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health," +
  "agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses," +
  "wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint," +
  "idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status," +
  "agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd," +
  "h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors," +
  "h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections," +
  "h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in," +
  "h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,";

const STAT_COLUMNS = STAT_HEADER.slice(2).split(",");

/** A `show stat` row with the given fields set by column name (the others empty). */
function statRow(fields: Record<string, string | number>): string {
  const row = STAT_COLUMNS.map(() => "");
  for (const [k, v] of Object.entries(fields)) {
    const i = STAT_COLUMNS.indexOf(k);
    assert.ok(i >= 0, `no column ${k}`);
    row[i] = String(v);
  }
  return row.join(",");
}

/** Rows captured from HAProxy 2.6.12 (the rendered sandbox config, Redis not running, redis2 `disabled`). */
const CAPTURED_STAT_ROWS = [
  "fe_redis_8001,FRONTEND,,,0,0,4000,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,,,,,,,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,tcp,,0,0,0,,0,0,0,,,,,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,",
  "be_redis_9001,redis1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,2,2,,1,3,1,,0,,2,0,,0,L4CON,,0,,,,,,,,,,,0,0,,,,,-1,Connection refused at step 1 of tcp-check (connect),,0,0,0,0,,,,Layer4 connection problem,,2,2,0,,,,127.0.1.1:9001,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,",
  "be_redis_9001,redis2,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,0,1,0,0,2,2,,1,3,2,,0,,2,0,,0,,,,,,,,,,,,,,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.1.2:9001,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,",
  "be_redis_9001,BACKEND,0,0,0,0,400,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,1,2,2,,1,3,0,,0,,1,0,,0,,,,,,,,,,,,,,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,tcp,first,,,,,,,0,0,0,,,,,0,0,0,0,0,,,,,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,",
];

describe("splitReplies: the replies to a ';'-separated line of Runtime API commands", () => {
  // What HAProxy 2.6 answered to "set server b1/s1 state maint;set server b1/nope state maint;set server b1/s1 addr
  // 127.99.0.9 port 5;shutdown sessions server b1/s1;show servers state b1".
  const REAL = "\nNo such server.\n\nIP changed from '127.99.0.2' to '127.99.0.9', port changed from '1' to '5' by 'stats socket command'\n\n\n1\n# be_id be_name\n2 b1\n\n";
  test("one reply per command, in order: empty for a silent success, the text otherwise", () => {
    assert.deepEqual(splitReplies(REAL, 5), [
      "",
      "No such server.\n",
      "IP changed from '127.99.0.2' to '127.99.0.9', port changed from '1' to '5' by 'stats socket command'\n",
      "",
      "1\n# be_id be_name\n2 b1\n",
    ]);
    assert.deepEqual(splitReplies("\n\n\n", 3), ["", "", ""]);
  });
  test("replies that do not add up to the commands are null, never a guess", () => {
    assert.equal(splitReplies("\n\n", 3), null, "a connection closed after two replies");
    assert.equal(splitReplies("\nNo such server.\n", 3), null, "two replies, the second without its empty line, for three commands");
    assert.deepEqual(splitReplies("\nNo such server.\n", 2), ["", "No such server.\n"], "the last reply ended by the connection");
    assert.equal(splitReplies("\n\nUnknown command\n\n", 2), null, "more replies than commands");
    assert.equal(splitReplies("", 1), null);
  });
  test("commandText: the Runtime API spelling of each change; a port out of range is refused before anything is sent", () => {
    assert.equal(commandText(cmd.state("be_redis_9001", "redis1", "maint")), "set server be_redis_9001/redis1 state maint");
    assert.equal(commandText(cmd.health("be_redis_9001", "redis2", "up")), "set server be_redis_9001/redis2 health up");
    assert.equal(commandText(cmd.shutdownSessions("be_redis_9001", "redis1")), "shutdown sessions server be_redis_9001/redis1");
    assert.equal(commandText(cmd.addr("be_redis_9001", "redis1", "127.0.1.11", 9001)), "set server be_redis_9001/redis1 addr 127.0.1.11 port 9001");
    assert.throws(() => commandText(cmd.addr("be_redis_9001", "redis1", "127.0.1.11", 0)), /refusing port 0/);
  });
});

describe("parseStat", () => {
  test("the header's documented positions hold: 4 scur, 17 status, 36 check_status, 73 addr", () => {
    assert.equal(STAT_COLUMNS[4], "scur");
    assert.equal(STAT_COLUMNS[17], "status");
    assert.equal(STAT_COLUMNS[36], "check_status");
    assert.equal(STAT_COLUMNS[73], "addr");
  });

  test("a captured reply: frontends, servers and backends", () => {
    const rows = parseStat(`${STAT_HEADER}\n${CAPTURED_STAT_ROWS.join("\n")}\n\n`);
    assert.deepEqual(rows, [
      { proxy: "fe_redis_8001", server: "FRONTEND", status: "OPEN", currentSessions: 0, checkStatus: "", address: "" },
      { proxy: "be_redis_9001", server: "redis1", status: "DOWN", currentSessions: 0, checkStatus: "L4CON", address: "127.0.1.1:9001" },
      { proxy: "be_redis_9001", server: "redis2", status: "MAINT", currentSessions: 0, checkStatus: "", address: "127.0.1.2:9001" },
      { proxy: "be_redis_9001", server: "BACKEND", status: "DOWN", currentSessions: 0, checkStatus: "", address: "" },
    ]);
  });

  test("a running check ('* ' prefix), a transitional status and open sessions", () => {
    const text = [
      STAT_HEADER,
      statRow({ pxname: "be_redis_9001", svname: "redis1", scur: 17, status: "UP", check_status: "* L7OK", addr: "127.0.1.1:9001" }),
      statRow({ pxname: "be_redis_9001", svname: "redis2", scur: 0, status: "DOWN 1/2", check_status: "L7RSP", addr: "127.0.1.2:9001" }),
      statRow({ pxname: "be_redis_9002", svname: "redis1", scur: 3, status: "UP 1/2", check_status: "L7TOUT", addr: "127.0.1.1:9002" }),
      statRow({ pxname: "be_redis_9002", svname: "redis2", scur: 0, status: "DRAIN", check_status: "L7OK", addr: "127.0.1.2:9002" }),
    ].join("\n");
    assert.deepEqual(
      parseStat(text).map((r) => [r.server, r.status, r.currentSessions, r.checkStatus, r.address]),
      [
        ["redis1", "UP", 17, "L7OK", "127.0.1.1:9001"],
        ["redis2", "DOWN 1/2", 0, "L7RSP", "127.0.1.2:9001"],
        ["redis1", "UP 1/2", 3, "L7TOUT", "127.0.1.1:9002"],
        ["redis2", "DRAIN", 0, "L7OK", "127.0.1.2:9002"],
      ],
    );
  });

  test("a header only: no rows", () => {
    assert.deepEqual(parseStat(`${STAT_HEADER}\n\n`), []);
  });

  const errors: readonly [string, string][] = [
    ["Unknown command", "Unknown command, but maybe one of the following ones is a better match:\n  show stat [desc|json|no-maint|typed|up]*: report counters for each proxy and server\n\n"],
    ["Permission denied", "Permission denied\n"],
    ["No such backend.", "No such backend.\n"],
    ["an empty reply", ""],
    ["a header without '# '", STAT_HEADER.slice(2)],
  ];
  for (const [name, reply] of errors) {
    test(`error reply: ${name} -> HaproxyCommandError`, () => {
      const e = expectHaproxyError(() => parseStat(reply));
      assert.equal(e.command, "show stat");
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// haproxy.cfg rendering, validated by the real haproxy binary
// ---------------------------------------------------------------------------------------------------------------

const HAPROXY = "/usr/sbin/haproxy";
const topology = parseTopology(readFileSync(DEFAULT_CONFIG_PATH, "utf8"), DEFAULT_CONFIG_PATH);
const tmp = mkdtempSync(join(tmpdir(), "failoverd-parsers-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * A host's own config as distributions ship it (Debian's, trimmed): failoverd's file is loaded after it and must not
 * depend on it nor clash with it. Its `defaults` are HTTP ones, which failoverd's TCP proxies must not inherit.
 */
const HOST_CONFIG = `global
\tlog 127.0.0.1:514 local0
\tchroot /var/lib/haproxy
\tstats socket ${join(tmp, "admin.sock")} mode 660 level admin
\tstats timeout 30s
\tuser haproxy
\tgroup haproxy
\tdaemon
defaults
\tlog\tglobal
\tmode\thttp
\toption\thttplog
\toption\tforwardfor
\ttimeout connect 5000
\ttimeout client  50000
\ttimeout server  50000
frontend unrelated_web
\tbind 127.0.0.1:18080
\thttp-request return status 200
`;
const hostFile = join(tmp, "host-haproxy.cfg");
writeFileSync(hostFile, HOST_CONFIG);

let fileCount = 0;
/** Runs `haproxy -c` on the text, after the host's config when `host`; returns its exit status and output. */
function haproxyCheck(text: string, host = false): { status: number | null; output: string } {
  const file = join(tmp, `haproxy-${++fileCount}.cfg`);
  writeFileSync(file, text);
  const r = spawnSync(HAPROXY, ["-c", ...(host ? ["-f", hostFile] : []), "-f", file], { encoding: "utf8", timeout: 20_000 });
  assert.equal(r.error, undefined, `could not run ${HAPROXY}: ${r.error?.message}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Valid alone and beside the host's config, with no warning either way. */
function assertHaproxyAccepts(text: string): void {
  for (const host of [false, true]) {
    const { status, output } = haproxyCheck(text, host);
    assert.equal(status, 0, `haproxy -c${host ? " (beside the host's config)" : ""} rejected the config:\n${output}\n---\n${text}`);
    assert.match(output, /Configuration file is valid/);
    assert.doesNotMatch(output, /WARNING|ALERT/, output);
  }
}

const linesOf = (text: string) => text.split("\n");

/** The lines of one section (from its header to the next unindented line). */
function section(text: string, header: string): string[] {
  const lines = linesOf(text);
  const start = lines.indexOf(header);
  assert.ok(start >= 0, `no section '${header}' in:\n${text}`);
  const out: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (!l.startsWith(" ")) break;
    out.push(l.trim());
  }
  return out;
}

describe("renderForHost: the sandbox's HAProxy tier", () => {
  const inventory = new Inventory(topology);

  test("haproxy1: one frontend per listen port, one backend per Redis port, both twins as servers", () => {
    const text = renderForHost(topology, inventory, "haproxy1");
    assert.ok(text.endsWith("\n"));
    assert.ok(linesOf(text).includes("    stats socket ipv4@127.0.2.1:9999 level admin"));
    for (const [listen, redis] of [
      [8001, 9001],
      [8002, 9002],
    ] as const) {
      assert.deepEqual(section(text, `frontend fe_redis_${listen}`), [`bind 127.0.2.1:${listen}`, `default_backend ${redisBackendName(redis)}`]);
      const backend = section(text, `backend be_redis_${redis}`);
      assert.ok(backend.includes("balance first"));
      assert.ok(backend.includes("option tcp-check"));
      assert.ok(backend.includes("tcp-check expect string role:master"));
      assert.ok(backend.includes("tcp-check send info\\ replication\\r\\nQUIT\\r\\n"), "QUIT is pipelined so a replica fails at once");
      assert.deepEqual(
        backend.filter((l) => l.startsWith("server ")),
        [`server redis1 127.0.1.1:${redis} check`, `server redis2 127.0.1.2:${redis} check`],
      );
    }
    assert.equal(text.match(/^frontend /gm)?.length, 2);
    assert.equal(text.match(/^backend /gm)?.length, 2);
    assert.doesNotMatch(text, /fe_relay_|AUTH/);
    assert.doesNotMatch(text, / (backup|disabled)$/m, "no option given: no server is backup or disabled");
  });

  test("the check interval follows checks.intervalMs (200 ms in the sandbox), the check timeout checks.timeoutMs (150 ms)", () => {
    const text = renderForHost(topology, inventory, "haproxy2");
    assert.ok(linesOf(text).includes("    default-server inter 200ms fastinter 100ms downinter 200ms fall 2 rise 2 on-marked-down shutdown-sessions"));
    assert.ok(linesOf(text).includes("    timeout check 150ms"));
    assert.ok(linesOf(text).includes("    bind 127.0.2.2:8001"));
  });

  test("an out-of-service host is rendered disabled on every backend", () => {
    const text = renderForHost(topology, inventory, "haproxy1", { outOfService: new Set(["redis2"]) });
    for (const p of [9001, 9002]) {
      const servers = section(text, `backend be_redis_${p}`).filter((l) => l.startsWith("server "));
      assert.deepEqual(servers, [`server redis1 127.0.1.1:${p} check`, `server redis2 127.0.1.2:${p} check disabled`]);
    }
  });

  test("non-primaries are rendered backup, per Redis port", () => {
    const primaries: Record<number, string> = { 9001: "redis1", 9002: "redis2" };
    const text = renderForHost(topology, inventory, "haproxy1", { primaryOf: (p) => primaries[p] });
    assert.deepEqual(
      section(text, "backend be_redis_9001").filter((l) => l.startsWith("server ")),
      ["server redis1 127.0.1.1:9001 check", "server redis2 127.0.1.2:9001 check backup"],
    );
    assert.deepEqual(
      section(text, "backend be_redis_9002").filter((l) => l.startsWith("server ")),
      ["server redis1 127.0.1.1:9002 check backup", "server redis2 127.0.1.2:9002 check"],
    );
  });

  test("a fenced replica: backup and disabled", () => {
    const text = renderForHost(topology, inventory, "haproxy2", { outOfService: new Set(["redis2"]), primaryOf: () => "redis1" });
    assert.ok(linesOf(text).includes("    server redis2 127.0.1.2:9001 check backup disabled"));
    assert.ok(linesOf(text).includes("    server redis1 127.0.1.1:9001 check"));
  });

  test("a replaced host is rendered at its current address", () => {
    const moved = new Inventory(topology);
    moved.place("redis2", "127.0.1.11", "local-7");
    moved.place("haproxy1", "127.0.2.11");
    const text = renderForHost(topology, moved, "haproxy1");
    assert.ok(linesOf(text).includes("    server redis2 127.0.1.11:9001 check"));
    assert.ok(linesOf(text).includes("    bind 127.0.2.11:8001"));
    assert.ok(linesOf(text).includes("    stats socket ipv4@127.0.2.11:9999 level admin"));
    assert.doesNotMatch(text, /127\.0\.1\.2:/);
  });

  test("the app host: relays to haproxy1, haproxy2 as backup", () => {
    const text = renderForHost(topology, inventory, "app");
    for (const [listen, hap] of [
      [7001, 8001],
      [7002, 8002],
    ] as const) {
      assert.deepEqual(section(text, `frontend fe_relay_${listen}`), [`bind 127.0.3.1:${listen}`, `default_backend ${relayBackendName(listen)}`]);
      // A hung HAProxy still accepts TCP connections: the relay checks each upstream's Runtime API instead.
      assert.deepEqual(section(text, `backend be_relay_${listen}`), [
        "balance first",
        "option tcp-check",
        "tcp-check connect",
        "tcp-check send show\\ info\\n",
        "tcp-check expect string Name:",
        `server haproxy1 127.0.2.1:${hap} check port 9999`,
        `server haproxy2 127.0.2.2:${hap} check port 9999 backup`,
      ]);
    }
    assert.doesNotMatch(text, /fe_redis_|role:master/);
  });

  test("the app host with haproxy1 out of service", () => {
    const text = renderForHost(topology, inventory, "app", { outOfService: new Set(["haproxy1"]) });
    assert.ok(linesOf(text).includes("    server haproxy1 127.0.2.1:8001 check port 9999 disabled"));
    assert.ok(linesOf(text).includes("    server haproxy2 127.0.2.2:8001 check port 9999 backup"));
  });

  test("the unix admin socket and the check password", () => {
    const text = renderForHost(topology, inventory, "haproxy1", { adminSocketPath: "/run/failoverd/hap1.sock", checkPassword: "s3cret pass" });
    assert.ok(linesOf(text).includes("    stats socket /run/failoverd/hap1.sock mode 600 level admin"));
    const backend = section(text, "backend be_redis_9001");
    const auth = backend.indexOf("tcp-check send AUTH\\ s3cret\\ pass\\r\\n");
    assert.ok(auth >= 0, backend.join("\n"));
    assert.equal(backend[auth + 1], "tcp-check expect string +OK");
    assert.ok(auth < backend.indexOf("tcp-check send PING\\r\\n"), "AUTH comes before PING");
  });

  test("a Redis host has no HAProxy config", () => {
    assert.throws(() => renderForHost(topology, inventory, "redis1"), /redis1 is a Redis host/);
  });

  test("an unknown host is refused", () => {
    assert.throws(() => renderForHost(topology, inventory, "nosuch"), /unknown host 'nosuch'/);
  });
});

describe("rendered configs pass `haproxy -c`", () => {
  const inventory = new Inventory(topology);
  const cases: readonly [string, () => string][] = [
    ["haproxy1, no options", () => renderForHost(topology, inventory, "haproxy1")],
    ["haproxy2, fenced replica + admin socket", () =>
      renderForHost(topology, inventory, "haproxy2", {
        outOfService: new Set(["redis2"]),
        primaryOf: () => "redis1",
        adminSocketPath: join(tmp, "hap2.sock"),
      })],
    ["haproxy1 with a check password with spaces, quotes and backslashes", () =>
      renderForHost(topology, inventory, "haproxy1", { checkPassword: 'p a"s\\s' })],
    ["the app host", () => renderForHost(topology, inventory, "app")],
    ["the app host with haproxy1 out of service", () => renderForHost(topology, inventory, "app", { outOfService: new Set(["haproxy1"]) })],
    ["a bare config with no backend", () => renderHaproxyConfig({ bindAddress: "127.0.2.1", adminPort: 9999 })],
    ["a 100 ms check interval", () =>
      renderHaproxyConfig({
        bindAddress: "127.0.2.1",
        adminPort: 9999,
        checkIntervalMs: 100,
        redis: [{ listenPort: 8001, redisPort: 9001, servers: [{ name: "redis1", address: "127.0.1.1", port: 9001 }] }],
      })],
  ];
  for (const [name, render] of cases) {
    test(name, () => {
      assertHaproxyAccepts(render());
    });
  }

  test("failoverd's file sets nothing global but its Runtime API socket: the host keeps its user, chroot, log, maxconn", () => {
    for (const h of ["haproxy1", "app"]) {
      const text = renderForHost(topology, inventory, h, { adminSocketPath: join(tmp, "hap.sock") });
      assert.ok(section(text, "global").every((l) => l.startsWith("stats socket ")), section(text, "global").join("\n"));
      assert.equal(text.match(/^global$/gm)?.length, 1);
    }
  });

  test("beside the host's config, its HTTP defaults do not leak into failoverd's TCP proxies (a warning if they did)", () => {
    // The control: without a defaults section of its own (its proxies in TCP mode by themselves), the host's option
    // httplog / forwardfor apply to failoverd's proxies, and haproxy -c warns about both.
    const withoutDefaults = renderForHost(topology, inventory, "haproxy1")
      .replace(/^defaults\n( {4}.*\n)+/m, "")
      .replace(/^(frontend|backend) (.*)$/gm, "$1 $2\n    mode tcp");
    assert.match(haproxyCheck(withoutDefaults, true).output, /'option httplog' not usable with frontend 'fe_redis_8001'/);
    assertHaproxyAccepts(renderForHost(topology, inventory, "haproxy1"));
  });

  test("haproxy -c does reject a broken config (the check can fail)", () => {
    const broken = `${renderForHost(topology, inventory, "haproxy1")}    server bogus 127.0.1.1:0 check nonsense-keyword\n`;
    assert.notEqual(haproxyCheck(broken).status, 0);
  });
});

describe("renderHaproxyConfig: a client that reached a dead server is held through the failover", () => {
  const line = (text: string, key: string) => text.split("\n").find((l) => l.trim().startsWith(`${key} `))?.trim();
  const cases: [string, number | undefined, number | undefined, string, string][] = [
    ["the sandbox's 200 ms interval, fall 3", 200, 3, "timeout connect 50ms", "retries 16"],
    ["the defaults (1 s, fall 3)", undefined, undefined, "timeout connect 250ms", "retries 16"],
    ["the shortest interval rendered (100 ms)", 100, 3, "timeout connect 25ms", "retries 16"],
    ["a long detection budget: retries capped", 1000, 100, "timeout connect 250ms", "retries 20"],
    ["fall 1: at least 3 retries", 1000, 1, "timeout connect 250ms", "retries 8"],
  ];
  for (const [name, checkIntervalMs, checkFall, connect, retries] of cases) {
    test(`${name}: ${connect}, ${retries}`, () => {
      const text = renderHaproxyConfig({
        bindAddress: "127.0.2.1",
        adminPort: 9999,
        ...(checkIntervalMs !== undefined ? { checkIntervalMs } : {}),
        ...(checkFall !== undefined ? { checkFall } : {}),
      });
      assert.equal(line(text, "timeout connect"), connect);
      assert.equal(line(text, "retries"), retries);
      assert.equal(line(text, "option redispatch"), "option redispatch 1");
    });
  }
  test("renderForHost passes the topology's fall: retries x turn-around covers interval x (fall + 1)", () => {
    const text = renderForHost(topology, new Inventory(topology), "haproxy1");
    const connect = Number(/timeout connect (\d+)ms/.exec(text)?.[1]);
    const retries = Number(/retries (\d+)/.exec(text)?.[1]);
    const inter = Math.min(1000, Math.max(100, topology.config.checks.intervalMs));
    assert.ok(retries * connect >= inter * (topology.config.checks.fall + 1), `${retries} x ${connect} ms`);
  });
});

describe("renderHaproxyConfig: HAProxy's health check waits as long as failoverd's own (a hang is seen within the budget)", () => {
  const timeoutCheck = (text: string) => /^ {4}timeout check (\d+)ms$/m.exec(text)?.[1];
  const cases: [string, number | undefined, number | undefined, string][] = [
    ["checks.timeoutMs below the interval", 500, 250, "250"],
    ["the sandbox's 200 ms interval, 100 ms timeout", 200, 100, "100"],
    ["no timeout given: the interval", 500, undefined, "500"],
    ["a timeout above the interval: the interval", 300, 900, "300"],
    ["a long interval and timeout: at most 1 s", 5000, 3000, "1000"],
    ["a tiny timeout: at least 50 ms", 100, 10, "50"],
  ];
  for (const [name, checkIntervalMs, checkTimeoutMs, expected] of cases) {
    test(`${name}: timeout check ${expected}ms`, () => {
      const text = renderHaproxyConfig({
        bindAddress: "127.0.2.1",
        adminPort: 9999,
        ...(checkIntervalMs !== undefined ? { checkIntervalMs } : {}),
        ...(checkTimeoutMs !== undefined ? { checkTimeoutMs } : {}),
      });
      assert.equal(timeoutCheck(text), expected);
    });
  }
  test("renderForHost renders the topology's checks.timeoutMs, on HAProxy and app hosts", () => {
    for (const h of ["haproxy1", "app"]) {
      const text = renderForHost(topology, new Inventory(topology), h);
      const expected = Math.max(50, Math.min(1000, topology.config.checks.intervalMs, topology.config.checks.timeoutMs));
      assert.equal(timeoutCheck(text), String(expected), h);
    }
  });
});

describe("renderHaproxyConfig: reported src defects (expected behaviour)", () => {
  const render = (password: string) =>
    renderHaproxyConfig({
      bindAddress: "127.0.2.1",
      adminPort: 9999,
      redis: [{ listenPort: 8001, redisPort: 9001, servers: [{ name: "redis1", address: "127.0.1.1", port: 9001 }] }],
      checkPassword: password,
    });

  test("a check password with a single quote still gives a valid config", () => {
    // escapeCheck (src/admin/haproxy-config.ts) escapes \, space and " but not ': haproxy reports an unmatched quote.
    assertHaproxyAccepts(render("it's"));
  });

  test("a check password with '#' is escaped, not cut by a comment", () => {
    // Unescaped, HAProxy reads `#b\r\n` as a comment: the check sends "AUTH a" with no CRLF and every server fails it.
    const auth = linesOf(render("a#b")).find((l) => l.includes("AUTH"));
    assert.equal(auth, "    tcp-check send AUTH\\ a\\#b\\r\\n");
  });
});
