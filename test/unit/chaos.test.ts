/** withChaos: the named provider calls fail; everything else is the real provider's (class instances included). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ProviderError } from "../../src/errors.ts";
import { chaosFailuresFromEnv, withChaos } from "../../src/providers/chaos.ts";
import type { LaunchRequest, Machine, Providers } from "../../src/providers/types.ts";

const M: Machine = { id: "m-1", host: "redis1", role: "redis", address: "127.0.1.1" };
const REQ: LaunchRequest = { host: "redis1", role: "redis", ports: [9001] };

/** Methods on a prototype, as in LocalCompute and Ec2Compute: a spread would lose them. */
class Compute {
  readonly kind = "class";
  readonly calls: string[] = [];
  async launch(): Promise<Machine> {
    this.calls.push("launch");
    return M;
  }
  async ready(m: Machine): Promise<Machine> {
    this.calls.push("ready");
    return m;
  }
  async terminate(): Promise<void> {
    this.calls.push("terminate");
  }
  async find(): Promise<Machine | null> {
    this.calls.push("find");
    return M;
  }
  describeLaunch(): readonly string[] {
    return ["RunInstances ..."];
  }
}

class Dns {
  async upsert(): Promise<void> {}
  async resolve(): Promise<string | null> {
    return "127.0.2.1";
  }
  describeUpsert(): readonly string[] {
    return ["UPSERT ..."];
  }
}

class Proxies {
  async applyConfig(): Promise<void> {}
  describeApply(): readonly string[] {
    return ["SSH ..."];
  }
}

function real() {
  const compute = new Compute();
  const providers = { compute, dns: new Dns(), proxies: new Proxies(), redis: {}, haproxy: {}, close: async () => {} } as unknown as Providers;
  return { compute, providers };
}

describe("withChaos", () => {
  test("FAILOVERD_CHAOS_FAIL names the calls; none named: the real providers, untouched", () => {
    assert.deepEqual([...chaosFailuresFromEnv(" compute.launch, dns.upsert ,")], ["compute.launch", "dns.upsert"]);
    const r = real();
    assert.equal(withChaos(r.providers, new Set()), r.providers);
  });

  test("a named call fails retryably; the others, prototype methods included, are the real ones", async () => {
    const r = real();
    const p = withChaos(r.providers, new Set(["compute.launch", "dns.upsert"]));
    await assert.rejects(p.compute.launch(REQ, AbortSignal.timeout(1000)), (e: unknown) => e instanceof ProviderError && e.retryable && /chaos: compute\.launch fails/.test(e.message));
    await assert.rejects(p.dns.upsert("x.internal", "127.0.2.1", AbortSignal.timeout(1000)), ProviderError);
    assert.deepEqual(await p.compute.find("redis1", AbortSignal.timeout(1000)), M);
    assert.deepEqual(await p.compute.ready(M, REQ, AbortSignal.timeout(1000)), M);
    await p.compute.terminate(M, AbortSignal.timeout(1000));
    assert.deepEqual(r.compute.calls, ["find", "ready", "terminate"], "launch never reached the real provider");
    assert.deepEqual(p.compute.describeLaunch?.(REQ), ["RunInstances ..."]);
    assert.equal(await p.dns.resolve("x.internal", AbortSignal.timeout(1000)), "127.0.2.1");
    assert.deepEqual(p.dns.describeUpsert?.("x.internal", "127.0.2.1"), ["UPSERT ..."]);
    assert.deepEqual(p.proxies.describeApply?.(M, "global"), ["SSH ..."]);
  });
});
