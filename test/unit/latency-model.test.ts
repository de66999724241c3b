/**
 * provider.latency: `ec2` is the documented model; the local provider waits at least the modelled time before a
 * call, and the step's deadline cuts the wait short (a modelled latency never outlives its step).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { modelled } from "../../src/providers/local/index.ts";
import { parseTopology } from "../../src/topology/load.ts";
import { EC2_LATENCY } from "../../src/topology/schema.ts";

const yaml = (provider: string) =>
  `topology: t\nhosts:\n  r1: { role: redis, address: 127.150.8.1, ports: [1] }\n  r2: { role: redis, address: 127.150.8.2, ports: [1] }\npairs: [[r1, r2]]\nprovider:\n  kind: local\n${provider}\n`;

describe("the time model", () => {
  it("latency: ec2 is the README's model; figures may be given one by one", () => {
    const p = parseTopology(yaml("  latency: ec2"), "t.yaml").config.provider;
    assert.equal(p.kind, "local");
    assert.deepEqual(p.kind === "local" ? p.latency : null, { launchMs: 28_000, startMs: 5000, stopMs: 1500, terminateMs: 1500, dnsMs: 60_000 });
    assert.deepEqual(EC2_LATENCY, { launchMs: 28_000, startMs: 5000, stopMs: 1500, terminateMs: 1500, dnsMs: 60_000 });
    const q = parseTopology(yaml("  latency: { startMs: 250 }"), "t.yaml").config.provider;
    assert.deepEqual(q.kind === "local" ? q.latency : null, { launchMs: 0, startMs: 250, stopMs: 0, terminateMs: 0, dnsMs: 0 });
    assert.throws(() => parseTopology(yaml("  latency: gcp"), "t.yaml"), /latency must be ec2 or a mapping/);
  });

  it("a call waits at least its modelled time, and no time without a model", async () => {
    const t0 = performance.now();
    await modelled({ launchMs: 0, startMs: 300, stopMs: 0, terminateMs: 0, dnsMs: 0 }, "startMs", AbortSignal.timeout(30_000));
    assert.ok(performance.now() - t0 >= 290, "waited the modelled start");
    await modelled(undefined, "launchMs", AbortSignal.timeout(30_000));
  });

  it("the step's deadline cuts a modelled wait short", async () => {
    const t0 = performance.now();
    await assert.rejects(modelled({ ...EC2_LATENCY }, "launchMs", AbortSignal.timeout(100)));
    assert.ok(performance.now() - t0 < 20_000, "not the 28 s of the model");
  });
});
