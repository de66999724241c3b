/**
 * The provider contract (src/providers/types.ts), one suite for every implementation: the local sandbox (real
 * processes), dry-run around it, and AWS (EC2 + Route 53 behind the SDK's mock).
 *
 * - launch resolves with a machine of the requested host and role, and find(host) then returns that machine;
 * - a launch with an aborted signal rejects and leaves no machine behind;
 * - ready finishes a machine an earlier launch left: the same machine, twice over, and no new one;
 * - terminate makes find(host) forget the machine, and is idempotent;
 * - terminate refuses (ProviderError, not retryable) a machine that is not this topology's, and leaves it running;
 * - DNS upsert then resolve returns the address; upserting again is idempotent; an upsert moves the record.
 *
 * Dry-run changes nothing: the same calls resolve, every write is described, and the world is as it was.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ProviderError } from "../../src/errors.ts";
import type { ComputeProvider, DnsProvider, LaunchRequest, Machine } from "../../src/providers/types.ts";

export interface ContractSubject {
  readonly compute: ComputeProvider;
  readonly dns: DnsProvider;
  /** A launch this provider can serve (a Redis host with its ports). */
  readonly launchRequest: LaunchRequest;
  /** A DNS record name the provider may change. */
  readonly dnsName: string;
  /** Two addresses to point the record at. */
  readonly addresses: readonly [string, string];
  /** A machine of another host (redis2) that really runs and that the provider would find; for terminate. */
  seedMachine(): Promise<Machine>;
  /** A machine of another topology, really running. */
  stranger(): Promise<Machine>;
  /** Whether that machine still runs. */
  isRunning(m: Machine): Promise<boolean>;
  /** False for dry-run: writes are described and nothing changes. */
  readonly changesTheWorld: boolean;
  /** Dry-run: what was described so far. */
  described?(): readonly string[];
  cleanup(): Promise<void>;
}

const signal = () => AbortSignal.timeout(30_000);

export function providerContract(name: string, factory: () => Promise<ContractSubject>): void {
  describe(`${name}: provider contract`, () => {
    let s: ContractSubject;
    before(async () => {
      s = await factory();
    });
    after(async () => {
      await s?.cleanup();
    });

    it("launch resolves with a machine of the requested host and role, which find() then returns", async () => {
      const m = await s.compute.launch(s.launchRequest, signal());
      assert.equal(m.host, s.launchRequest.host);
      assert.equal(m.role, s.launchRequest.role);
      assert.ok(m.id.length > 0 && m.address.length > 0);
      const found = await s.compute.find(s.launchRequest.host, signal());
      if (s.changesTheWorld) {
        assert.deepEqual(found, m);
      } else {
        assert.notEqual(found?.id, m.id, "dry-run must not create a machine");
        assert.ok(s.described!().some((d) => /would launch a redis machine for/.test(d)), "dry-run describes the launch");
      }
    });

    it("ready finishes a machine an earlier launch left: the same machine, twice over, and no new one", async () => {
      const described: Machine = { id: "<left by an earlier launch>", host: s.launchRequest.host, role: s.launchRequest.role, address: s.addresses[0] };
      const left = s.changesTheWorld ? await s.compute.find(s.launchRequest.host, signal()) : described;
      assert.ok(left, "a machine to finish");
      const once = await s.compute.ready(left, s.launchRequest, signal());
      const twice = await s.compute.ready(left, s.launchRequest, signal());
      assert.deepEqual([once.id, once.host, once.address], [left.id, left.host, left.address]);
      assert.deepEqual(twice, once);
      if (s.changesTheWorld) assert.equal((await s.compute.find(s.launchRequest.host, signal()))?.id, left.id, "no new machine");
      else assert.ok(s.described!().some((d) => d.includes(`would finish ${left.id}`)), "dry-run describes it");
    });

    it("launch with an aborted signal rejects (or, in dry-run, changes nothing) and leaves no new machine", async () => {
      const before = await s.compute.find(s.launchRequest.host, signal());
      const aborted = AbortSignal.abort(new Error("deadline"));
      if (s.changesTheWorld) await assert.rejects(s.compute.launch(s.launchRequest, aborted));
      else await s.compute.launch(s.launchRequest, aborted);
      const after = await s.compute.find(s.launchRequest.host, signal());
      assert.equal(after?.id, before?.id);
    });

    it("terminate makes find() forget the machine, and terminating it again resolves", async () => {
      const m = await s.seedMachine();
      assert.equal((await s.compute.find(m.host, signal()))?.id, m.id, "the seeded machine is found");
      await s.compute.terminate(m, signal());
      await s.compute.terminate(m, signal());
      const found = await s.compute.find(m.host, signal());
      if (s.changesTheWorld) {
        assert.ok(found === null || found.id !== m.id, "a terminated machine is not found");
        assert.equal(await s.isRunning(m), false);
      } else {
        assert.equal(found?.id, m.id, "dry-run must not terminate");
        assert.equal(await s.isRunning(m), true);
        assert.ok(s.described!().some((d) => d.includes(`would terminate ${m.id}`)));
      }
    });

    it("terminate refuses a machine that is not this topology's, and leaves it running", async () => {
      const st = await s.stranger();
      if (s.changesTheWorld) {
        await assert.rejects(s.compute.terminate(st, signal()), (e: unknown) => {
          assert.ok(e instanceof ProviderError, `a ProviderError, not ${String(e)}`);
          assert.equal(e.retryable, false);
          assert.match(e.message, /refusing to terminate/);
          return true;
        });
      } else {
        await s.compute.terminate(st, signal());
      }
      assert.equal(await s.isRunning(st), true, "the stranger's machine still runs");
    });

    it("DNS: upsert then resolve returns the address; upserting again is idempotent; an upsert moves it", async () => {
      const [a1, a2] = s.addresses;
      const before = await s.dns.resolve(s.dnsName, signal());
      await s.dns.upsert(s.dnsName, a1, signal());
      const afterFirst = await s.dns.resolve(s.dnsName, signal());
      await s.dns.upsert(s.dnsName, a1, signal());
      const afterSecond = await s.dns.resolve(s.dnsName, signal());
      await s.dns.upsert(s.dnsName, a2, signal());
      const afterMove = await s.dns.resolve(s.dnsName, signal());
      if (s.changesTheWorld) {
        assert.deepEqual([afterFirst, afterSecond, afterMove], [a1, a1, a2]);
      } else {
        assert.deepEqual([afterFirst, afterSecond, afterMove], [before, before, before], "dry-run must not change DNS");
        assert.equal(s.described!().filter((d) => d.startsWith(`would point ${s.dnsName} at`)).length, 3);
      }
    });
  });
}
