/** AWS error codes as failoverd understands them: retryable or not, and what the message tells a person to do. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProviderError } from "../../src/errors.ts";
import { toProviderError } from "../../src/providers/aws/errors.ts";
import { withRetry } from "../../src/providers/aws/retry.ts";
import { ec2Error, route53Error } from "../helpers/fake-aws.ts";

describe("toProviderError", () => {
  const table: [string, boolean, RegExp][] = [
    ["RequestLimitExceeded", true, /throttling/],
    ["Throttling", true, /throttling/],
    ["PriorRequestNotComplete", true, /throttling/],
    ["InternalError", true, /transient/],
    ["InsufficientInstanceCapacity", true, /provider\.instanceTypes/],
    ["InvalidInstanceID.NotFound", true, /eventually|caught up/],
    ["UnauthorizedOperation", false, /IAM policy/],
    ["AuthFailure", false, /credentials/],
    ["InvalidAMIID.Malformed", false, /provider\.imageId/],
    ["InvalidSubnetID.NotFound", false, /provider\.subnetIds/],
    ["InvalidGroup.NotFound", false, /provider\.securityGroupIds/],
    ["InvalidKeyPair.NotFound", false, /provider\.keyName/],
    ["InvalidLaunchTemplateName.NotFoundException", false, /provider\.launchTemplate/],
    ["VcpuLimitExceeded", false, /limit/],
    ["NoSuchHostedZone", false, /provider\.hostedZoneId/],
  ];
  for (const [code, retryable, advice] of table) {
    it(`${code}: ${retryable ? "retryable" : "not retryable"}, and says what to do`, () => {
      const e = toProviderError(ec2Error(code, `AWS says ${code}`), "EC2 SomeCall");
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, code);
      assert.equal(e.retryable, retryable);
      assert.match(e.message, new RegExp(`^EC2 SomeCall failed: ${code.replace(/\./g, "\\.")}: AWS says ${code.replace(/\./g, "\\.")}\\. What to do: `));
      assert.match(e.message, advice);
    });
  }
  it("an unknown 5xx is retryable; an unknown 4xx is not", () => {
    assert.equal(toProviderError(ec2Error("SomethingNew", "x", 503), "op").retryable, true);
    assert.equal(toProviderError(route53Error("SomethingNew", "x", 400), "op").retryable, false);
  });
});

describe("withRetry", () => {
  it("retries throttling with growing, jittered delays, then gives up with the last code", async () => {
    const at: number[] = [];
    await assert.rejects(
      withRetry("EC2 X", async () => {
        at.push(Date.now());
        throw ec2Error("RequestLimitExceeded");
      }, { signal: AbortSignal.timeout(5000), policy: { attempts: 4, baseDelayMs: 20, maxDelayMs: 1000 } }),
      (e: unknown) => e instanceof ProviderError && e.code === "RequestLimitExceeded" && e.retryable,
    );
    assert.equal(at.length, 4);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    // Backoff with jitter x1-2: 20-40, 40-80, 80-160 ms (timers may run a little late).
    assert.ok(gaps[0]! >= 18 && gaps[1]! >= 38 && gaps[2]! >= 78, `gaps ${gaps.join(", ")}`);
    assert.ok(gaps[2]! > gaps[0]!, "the delay grows");
  });
  it("does not retry what retrying cannot fix", async () => {
    let calls = 0;
    await assert.rejects(withRetry("EC2 X", async () => {
      calls += 1;
      throw ec2Error("UnauthorizedOperation");
    }, { signal: AbortSignal.timeout(5000), policy: { attempts: 5, baseDelayMs: 1, maxDelayMs: 1 } }));
    assert.equal(calls, 1);
  });
  it("an already expired deadline sends nothing", async () => {
    let calls = 0;
    await assert.rejects(withRetry("EC2 X", async () => {
      calls += 1;
    }, { signal: AbortSignal.abort(), policy: { attempts: 5, baseDelayMs: 1, maxDelayMs: 1 } }));
    assert.equal(calls, 0);
  });
});
