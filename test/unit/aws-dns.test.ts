/**
 * Route53Dns against the SDK's mock: the exact UPSERT and GetChange requests, the wait until INSYNC, and Route 53's
 * error codes (PriorRequestNotComplete and throttling retried; NoSuchHostedZone and InvalidChangeBatch not).
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ChangeResourceRecordSetsCommand, GetChangeCommand, ListResourceRecordSetsCommand, PriorRequestNotComplete } from "@aws-sdk/client-route-53";
import { ProviderError } from "../../src/errors.ts";
import { normalise, Route53Dns } from "../../src/providers/aws/dns.ts";
import { FakeAws, route53Error } from "../helpers/fake-aws.ts";

const FAST_WAITER = { minDelaySec: 0.001, maxDelaySec: 0.002, maxWaitSec: 5 };
const FAST_RETRY = { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 };

let fake: FakeAws;
afterEach(() => fake?.restore());

function dns(o: { zone?: string; retry?: typeof FAST_RETRY } = {}): Route53Dns {
  fake = new FakeAws();
  return new Route53Dns({
    topology: "barton",
    route53: fake.clients.route53,
    hostedZoneId: o.zone ?? "Z0000000000TEST",
    ttl: 30,
    retry: o.retry ?? FAST_RETRY,
    waiter: FAST_WAITER,
  });
}

const changeInputs = () => fake.route53.commandCalls(ChangeResourceRecordSetsCommand).map((c) => c.args[0].input);

describe("Route 53 upsert", () => {
  it("sends one UPSERT of the A record with its TTL, then GetChange with the change id until INSYNC", async () => {
    const d = dns();
    fake.pendingPolls = 2;
    await d.upsert("haproxy1.barton.internal", "10.0.2.21", AbortSignal.timeout(5000));
    assert.deepEqual(changeInputs(), [
      {
        HostedZoneId: "Z0000000000TEST",
        ChangeBatch: {
          Comment: "failoverd barton: haproxy1.barton.internal -> 10.0.2.21",
          Changes: [
            {
              Action: "UPSERT",
              ResourceRecordSet: { Name: "haproxy1.barton.internal", Type: "A", TTL: 30, ResourceRecords: [{ Value: "10.0.2.21" }] },
            },
          ],
        },
      },
    ]);
    const polls = fake.route53.commandCalls(GetChangeCommand).map((c) => c.args[0].input);
    assert.equal(polls.length, 3, "PENDING, PENDING, INSYNC");
    assert.ok(polls.every((p) => /^\/change\/C\d+$/.test(p.Id ?? "")));
    assert.equal(await d.resolve("haproxy1.barton.internal", AbortSignal.timeout(5000)), "10.0.2.21");
  });

  it("PriorRequestNotComplete (the zone is busy) is retried, then the change goes through", async () => {
    const d = dns();
    fake.route53
      .on(ChangeResourceRecordSetsCommand)
      .rejectsOnce(new PriorRequestNotComplete({ message: "The request was rejected because Route 53 was still processing a prior request.", $metadata: { httpStatusCode: 400 } }))
      .rejectsOnce(route53Error("PriorRequestNotComplete"))
      .resolves({ ChangeInfo: { Id: "/change/C1", Status: "INSYNC", SubmittedAt: new Date() } });
    await d.upsert("haproxy1.barton.internal", "10.0.2.21", AbortSignal.timeout(5000));
    assert.equal(changeInputs().length, 3);
    assert.equal(fake.route53.commandCalls(GetChangeCommand).length, 0, "already INSYNC: no wait");
  });

  it("Throttling is retried with backoff", async () => {
    const d = dns();
    fake.route53
      .on(ChangeResourceRecordSetsCommand)
      .rejectsOnce(route53Error("Throttling", "Rate exceeded", 400))
      .resolves({ ChangeInfo: { Id: "/change/C2", Status: "PENDING", SubmittedAt: new Date() } });
    fake.route53.on(GetChangeCommand).resolves({ ChangeInfo: { Id: "/change/C2", Status: "INSYNC", SubmittedAt: new Date() } });
    await d.upsert("haproxy1.barton.internal", "10.0.2.21", AbortSignal.timeout(5000));
    assert.equal(changeInputs().length, 2);
    assert.deepEqual(fake.route53.commandCalls(GetChangeCommand)[0]!.args[0].input, { Id: "/change/C2" });
  });

  it("PriorRequestNotComplete until the deadline: retryable, with the code", async () => {
    const d = dns({ retry: { attempts: 1000, baseDelayMs: 10, maxDelayMs: 10 } });
    fake.route53.on(ChangeResourceRecordSetsCommand).rejects(route53Error("PriorRequestNotComplete"));
    await assert.rejects(d.upsert("haproxy1.barton.internal", "10.0.2.21", AbortSignal.timeout(100)), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "PriorRequestNotComplete");
      assert.equal(e.retryable, true);
      assert.match(e.message, /gave up at the step's deadline/);
      return true;
    });
  });

  it("NoSuchHostedZone fails at once and names provider.hostedZoneId", async () => {
    const d = dns({ zone: "ZWRONG" });
    await assert.rejects(d.upsert("haproxy1.barton.internal", "10.0.2.21", AbortSignal.timeout(5000)), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "NoSuchHostedZone");
      assert.equal(e.retryable, false);
      assert.match(e.message, /NoSuchHostedZone: No hosted zone found with ID: ZWRONG.*provider\.hostedZoneId/);
      return true;
    });
    assert.equal(changeInputs().length, 1);
  });

  it("InvalidChangeBatch (a name outside the zone) fails at once with Route 53's reason", async () => {
    const d = dns();
    fake.route53
      .on(ChangeResourceRecordSetsCommand)
      .rejects(route53Error("InvalidChangeBatch", "RRSet with DNS name haproxy1.elsewhere. is not permitted in zone barton.internal."));
    await assert.rejects(d.upsert("haproxy1.elsewhere", "10.0.2.21", AbortSignal.timeout(5000)), /InvalidChangeBatch: RRSet with DNS name .* not permitted.*dnsName is inside the hosted zone/);
    assert.equal(changeInputs().length, 1);
  });

  it("a change that never gets INSYNC before the deadline fails retryable (the UPSERT is idempotent)", async () => {
    const d = dns();
    fake.pendingPolls = 1_000_000;
    await assert.rejects(d.upsert("haproxy1.barton.internal", "10.0.2.21", AbortSignal.timeout(100)), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "NotInSync");
      assert.equal(e.retryable, true);
      assert.match(e.message, /accepted but not INSYNC before the step's deadline/);
      return true;
    });
  });

  it("without provider.hostedZoneId it refuses before sending anything", async () => {
    fake = new FakeAws();
    const d = new Route53Dns({ topology: "barton", route53: fake.clients.route53, hostedZoneId: undefined, ttl: 30 });
    await assert.rejects(d.upsert("haproxy1.barton.internal", "10.0.2.21", AbortSignal.timeout(5000)), /provider\.hostedZoneId is not set/);
    assert.equal(changeInputs().length, 0);
  });
});

describe("Route 53 resolve", () => {
  it("asks ListResourceRecordSets from the name, and answers only for that exact A record", async () => {
    const d = dns();
    fake.records.set("Z0000000000TEST", new Map([["haproxy2.barton.internal.", "10.0.2.12"]]));
    assert.equal(await d.resolve("haproxy2.barton.internal", AbortSignal.timeout(5000)), "10.0.2.12");
    assert.equal(await d.resolve("HAProxy2.Barton.Internal.", AbortSignal.timeout(5000)), "10.0.2.12");
    assert.equal(await d.resolve("haproxy1.barton.internal", AbortSignal.timeout(5000)), null, "the next record is another name");
    assert.deepEqual(fake.route53.commandCalls(ListResourceRecordSetsCommand)[0]!.args[0].input, {
      HostedZoneId: "Z0000000000TEST",
      StartRecordName: "haproxy2.barton.internal",
      StartRecordType: "A",
      MaxItems: 1,
    });
  });

  it("normalises Route 53's escaped, fully qualified names", () => {
    assert.equal(normalise("\\052.Barton.Internal."), "*.barton.internal");
  });

  it("describes the UPSERT with record, zone and TTL for dry-run", () => {
    const d = dns();
    const lines = d.describeUpsert("haproxy1.barton.internal", "<new haproxy1 address>").join("\n");
    assert.match(lines, /Route 53 ChangeResourceRecordSets \{"HostedZoneId":"Z0000000000TEST",.*"Action":"UPSERT","ResourceRecordSet":\{"Name":"haproxy1\.barton\.internal","Type":"A","TTL":30/);
    assert.match(lines, /GetChange .* INSYNC/);
  });
});
