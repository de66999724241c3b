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
 * - keep (stop, quarantine) makes find(host) forget the machine, which no longer runs but is listed by kept() with
 *   its mode and recovery id; keeping again is idempotent; a stranger is refused; terminate releases a kept machine;
 * - spares: addSpare puts a prepared machine in the pool in the state asked for; claim takes it for a host (started
 *   if stopped, the same machine, found for the host, out of the pool); with the pool empty claim resolves null.
 *
 * Dry-run changes nothing: the same calls resolve, every write is described, and the world is as it was.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ProviderError } from "../../src/errors.ts";
import type { ComputeProvider, DnsProvider, LaunchRequest, Machine, Spare, SpareState } from "../../src/providers/types.ts";

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
  /** A spare put in the pool by the real (unwrapped) provider: dry-run's claim must leave it there. */
  seedSpare(state: SpareState): Promise<Spare>;
  /** What the kept machine looks like from outside (AWS: its security groups); null where nothing can be seen. */
  quarantined?(m: Machine): Promise<boolean>;
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
    it("keep (stop): the machine no longer runs nor is found, kept() lists it; again is idempotent; terminate releases it", async () => {
      const m = await s.seedMachine();
      const how = { mode: "stop" as const, recoveryId: "20261202-redis2-stop" };
      await s.compute.keep(m, how, signal());
      await s.compute.keep(m, how, signal());
      const found = await s.compute.find(m.host, signal());
      const kept = (await s.compute.kept(signal())).filter((k) => k.id === m.id);
      if (s.changesTheWorld) {
        assert.ok(found === null || found.id !== m.id, "a kept machine is not found for its host");
        assert.equal(await s.isRunning(m), false, "a kept machine no longer serves");
        assert.deepEqual(kept.map((k) => [k.id, k.host, k.mode, k.recoveryId]), [[m.id, m.host, "stop", how.recoveryId]]);
        assert.ok(kept[0]!.keptAt > Date.now() - 600_000 && kept[0]!.keptAt <= Date.now(), "kept now");
        await s.compute.terminate(m, signal());
        assert.deepEqual((await s.compute.kept(signal())).filter((k) => k.id === m.id), [], "released");
      } else {
        assert.ok(found !== null, "dry-run must not stop it");
        assert.equal(await s.isRunning(m), true);
        assert.deepEqual(kept, []);
        assert.equal(s.described!().filter((d) => d.startsWith(`would stop ${m.id}`)).length, 2);
        await s.compute.terminate(m, signal());
      }
    });

    it("keep (quarantine): cut off and kept with the recovery id", async () => {
      const m = await s.seedMachine();
      await s.compute.keep(m, { mode: "quarantine", recoveryId: "20261202-redis2-q" }, signal());
      const kept = (await s.compute.kept(signal())).filter((k) => k.id === m.id);
      if (s.changesTheWorld) {
        assert.deepEqual(kept.map((k) => [k.mode, k.recoveryId]), [["quarantine", "20261202-redis2-q"]]);
        assert.equal(await s.isRunning(m), false);
        if (s.quarantined) assert.equal(await s.quarantined(m), true, "moved to the quarantine security group");
        await s.compute.terminate(m, signal());
      } else {
        assert.deepEqual(kept, []);
        assert.ok(s.described!().some((d) => d.startsWith(`would quarantine (no ingress, tagged with the recovery id) and stop ${m.id}`)));
        assert.equal(await s.isRunning(m), true);
        await s.compute.terminate(m, signal());
      }
    });

    it("keep refuses a machine that is not this topology's, and leaves it running", async () => {
      const st = await s.stranger();
      if (s.changesTheWorld) {
        await assert.rejects(s.compute.keep(st, { mode: "stop", recoveryId: "x" }, signal()), (e: unknown) => {
          assert.ok(e instanceof ProviderError && e.retryable === false, `a non-retryable ProviderError, not ${String(e)}`);
          assert.match(e.message, /refusing to stop/);
          return true;
        });
      }
      assert.equal(await s.isRunning(st), true, "the stranger's machine still runs");
    });

    for (const state of ["stopped", "running"] as const) {
      it(`spares: a ${state} spare is listed, claim takes it for the host (running, found), and the pool is then empty`, async () => {
        const host = "redis2";
        const req: LaunchRequest = { host, role: "redis", ports: s.launchRequest.ports ?? [] };
        const spare = await s.seedSpare(state);
        const listed = await s.compute.spares("redis", signal());
        assert.deepEqual(listed.filter((x) => x.id === spare.id).map((x) => [x.id, x.state]), [[spare.id, state]]);
        if (s.changesTheWorld) assert.equal(listed.length, 1, "the only spare (the last one was claimed)");
        if (state === "stopped") assert.equal(await s.isRunning({ id: spare.id, host, role: "redis", address: spare.address }), false, "a stopped spare serves nothing");
        const m = await s.compute.claim(req, signal());
        assert.ok(m, "a spare was taken");
        if (s.changesTheWorld) {
          assert.deepEqual([m.id, m.host, m.address], [spare.id, host, spare.address]);
          assert.equal(await s.isRunning(m), true, "started and serving");
          assert.equal((await s.compute.find(host, signal()))?.id, spare.id, "found for its host");
          assert.deepEqual(await s.compute.spares("redis", signal()), [], "out of the pool");
          assert.equal(await s.compute.claim({ ...req, host: "redis1" }, signal()), null, "the pool is empty");
          await s.compute.terminate(m, signal());
        } else {
          assert.equal(m.id, spare.id);
          assert.ok(s.described!().some((d) => d.startsWith(`would take the ${state} spare ${spare.id}`)));
          assert.ok((await s.compute.spares("redis", signal())).some((x) => x.id === spare.id), "dry-run leaves it in the pool");
          const added = await s.compute.addSpare("redis", "stopped", [9001], signal());
          assert.ok(s.described!().some((d) => d === "would launch a redis spare from the image and keep it stopped"));
          assert.equal((await s.compute.spares("redis", signal())).some((x) => x.id === added.id), false);
        }
      });
    }
  });
}
