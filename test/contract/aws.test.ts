/**
 * The provider contract on AWS: the real Ec2Compute and Route53Dns, their SDK clients answered by an in-memory
 * EC2 + Route 53 (aws-sdk-client-mock, test/helpers/fake-aws.ts). The port probe is a fake: nothing is contacted.
 * The stranger is an instance tagged for another topology.
 */
import { createAwsProviders } from "../../src/providers/aws/index.ts";
import type { Machine } from "../../src/providers/types.ts";
import { parseTopology } from "../../src/topology/load.ts";
import { awsTopologyYaml, FakeAws } from "../helpers/fake-aws.ts";
import { providerContract } from "./providers.contract.ts";

const FAST = { minDelaySec: 0.001, maxDelaySec: 0.002, maxWaitSec: 5 };

providerContract("aws (EC2 + Route 53, mocked SDK)", async () => {
  const t = parseTopology(awsTopologyYaml({ net: 42, name: "contract42", provider: "  imageId: ami-0123456789abcdef0\n  quarantineSecurityGroupId: sg-0aaaaaaaaaaaaaaa9" }), "aws-contract.yaml");
  const fake = new FakeAws();
  const aws = createAwsProviders(t, {}, {
    clients: fake.clients,
    probe: async () => true,
    retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
    waiter: FAST,
    dnsWaiter: FAST,
    probeEveryMs: 1,
  });
  const running = (m: Machine) => Promise.resolve(fake.instances.get(m.id)?.State.Name === "running");
  return {
    compute: aws.compute,
    dns: aws.dns,
    launchRequest: { host: "redis1", role: "redis", ports: [9001, 9002] },
    dnsName: "haproxy1.contract42.internal",
    addresses: ["10.99.200.1", "10.99.200.2"],
    changesTheWorld: true,
    seedSpare: (state) => aws.compute.addSpare("redis", state, [9001, 9002], AbortSignal.timeout(5000)),
    quarantined: async (m: Machine) => JSON.stringify(fake.instances.get(m.id)?.SecurityGroups) === JSON.stringify([{ GroupId: "sg-0aaaaaaaaaaaaaaa9" }]),
    seedMachine: () => aws.compute.launch({ host: "redis2", role: "redis", ports: [9001, 9002] }, AbortSignal.timeout(5000)),
    stranger: async () => {
      const id = fake.addInstance({ "failoverd:topology": "someone-else", "failoverd:host": "redis1", "failoverd:role": "redis" });
      return { id, host: "redis1", role: "redis", address: fake.instances.get(id)!.PrivateIpAddress };
    },
    isRunning: running,
    cleanup: async () => {
      aws.close();
      fake.restore();
    },
  };
});
