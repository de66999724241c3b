/**
 * An offline plan contacts nothing: no AWS request, no Redis, no Runtime API, no SSH. It still resolves every step
 * with the AWS requests (and their parameters) a recovery would make.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { createAwsProviders } from "../../src/providers/aws/index.ts";
import type { HaproxyAdmin, Providers, RedisAdmin } from "../../src/providers/types.ts";
import { planRecovery } from "../../src/recovery/plan.ts";
import { parseTopology } from "../../src/topology/load.ts";
import { awsTopologyYaml, FakeAws } from "../helpers/fake-aws.ts";

const t = parseTopology(awsTopologyYaml({ net: 48, name: "barton" }), "offline.yaml");
let fake: FakeAws;
afterEach(() => fake?.restore());

function providers(touched: string[]): Providers {
  fake = new FakeAws();
  const aws = createAwsProviders(t, {}, {
    clients: fake.clients,
    probe: async () => {
      touched.push("probe");
      return true;
    },
  });
  const trap = (what: string) => new Proxy({}, { get: (_, k) => (k === "close" ? () => {} : () => touched.push(`${what}.${String(k)}`)) });
  return {
    compute: aws.compute,
    dns: aws.dns,
    proxies: aws.proxies,
    redis: trap("redis") as RedisAdmin,
    haproxy: trap("haproxy") as HaproxyAdmin,
    close: async () => aws.close(),
  };
}

describe("plan --offline", () => {
  for (const host of ["redis1", "haproxy1"]) {
    it(`${host}: every step resolved, nothing contacted`, async () => {
      const touched: string[] = [];
      const p = providers(touched);
      const plan = await planRecovery(t, host, p, { offline: true });
      await p.close();
      assert.equal(plan.outcome, "succeeded");
      assert.deepEqual(touched, []);
      assert.equal(fake.ec2.calls().length + fake.route53.calls().length, 0, "no AWS request");
      const all = plan.steps.flatMap((s) => s.actions).join("\n");
      // recovery.failedMachine defaults to stop: the failed machine is kept for the post-mortem.
      assert.match(all, new RegExp(`would stop <machine of ${host}> \\(${host} at 127\\.48\\.[^)]*\\) and keep it for the post-mortem`));
      assert.match(all, /EC2 StopInstances \{"InstanceIds":\["<machine of /);
      assert.doesNotMatch(all, /TerminateInstances/);
      assert.match(all, /EC2 RunInstances \{.*"ImageId":"ami-0123456789abcdef0"/);
      if (host === "haproxy1") assert.match(all, /Route 53 ChangeResourceRecordSets \{"HostedZoneId":"Z0000000000TEST"/);
      else assert.match(all, /would send REPLICAOF 127\.48\.1\.2 9001 to <new redis1 address>:9001/);
    });
  }
});
