/**
 * Route 53 as a DnsProvider: an UPSERT of the host's A record with the configured TTL, then the SDK's waiter until
 * the change is INSYNC (every Route 53 name server answers the new address). PriorRequestNotComplete (the zone is
 * still applying an earlier change) and throttling are retried with backoff and jitter.
 */
import {
  ChangeResourceRecordSetsCommand,
  type ChangeResourceRecordSetsCommandInput,
  ListResourceRecordSetsCommand,
  type ListResourceRecordSetsCommandInput,
  type Route53Client,
  waitUntilResourceRecordSetsChanged,
} from "@aws-sdk/client-route-53";
import { ProviderError } from "../../errors.ts";
import { type Logger, silentLogger } from "../../log.ts";
import type { DnsProvider } from "../types.ts";
import { show, type WaiterTiming } from "./compute.ts";
import { awsCode } from "./errors.ts";
import { DEFAULT_RETRY, type RetryPolicy, withRetry } from "./retry.ts";

export const DEFAULT_DNS_WAITER: WaiterTiming = { minDelaySec: 2, maxDelaySec: 10, maxWaitSec: 600 };

export interface Route53DnsOptions {
  readonly topology: string;
  readonly route53: Route53Client;
  /** provider.hostedZoneId; absent when no host has a dnsName. */
  readonly hostedZoneId: string | undefined;
  readonly ttl: number;
  readonly retry?: RetryPolicy;
  readonly waiter?: WaiterTiming;
  readonly log?: Logger;
}

export class Route53Dns implements DnsProvider {
  private readonly retry: RetryPolicy;
  private readonly waiter: WaiterTiming;
  private readonly log: Logger;

  constructor(private readonly o: Route53DnsOptions) {
    this.retry = o.retry ?? DEFAULT_RETRY;
    this.waiter = o.waiter ?? DEFAULT_DNS_WAITER;
    this.log = o.log ?? silentLogger();
  }

  async upsert(name: string, address: string, signal: AbortSignal): Promise<void> {
    const input = this.upsertInput(name, address);
    const op = `Route 53 ChangeResourceRecordSets (UPSERT ${name} A ${address})`;
    const out = await withRetry(op, () => this.o.route53.send(new ChangeResourceRecordSetsCommand(input), { abortSignal: signal }), {
      signal,
      policy: this.retry,
      onRetry: (code, attempt) => this.log.warn({ operation: op, code, attempt }, `${op}: ${code}, retrying`),
    });
    const changeId = out.ChangeInfo?.Id;
    if (!changeId) throw new ProviderError(`${op} returned no change id`, true, "NoChangeId");
    if (out.ChangeInfo?.Status === "INSYNC") return;
    try {
      await waitUntilResourceRecordSetsChanged(
        {
          client: this.o.route53,
          minDelay: this.waiter.minDelaySec,
          maxDelay: this.waiter.maxDelaySec,
          maxWaitTime: this.waiter.maxWaitSec,
          abortSignal: signal,
        },
        { Id: changeId },
      );
    } catch (e) {
      const when = signal.aborted ? "before the step's deadline" : `within ${this.waiter.maxWaitSec} s`;
      throw new ProviderError(
        `Route 53 change ${changeId} (${name} -> ${address}) was accepted but not INSYNC ${when} (${awsCode(e) ?? "waiter"}). ` +
          "What to do: nothing, usually: Route 53 applies it; the step is retried (the UPSERT is idempotent)",
        true,
        "NotInSync",
      );
    }
    this.log.info({ name, address }, `${name} points at ${address} (INSYNC)`);
  }

  async resolve(name: string, signal: AbortSignal): Promise<string | null> {
    const input: ListResourceRecordSetsCommandInput = { HostedZoneId: this.zone(name), StartRecordName: name, StartRecordType: "A", MaxItems: 1 };
    const out = await withRetry(`Route 53 ListResourceRecordSets (${name})`, () => this.o.route53.send(new ListResourceRecordSetsCommand(input), { abortSignal: signal }), {
      signal,
      policy: this.retry,
    });
    const rec = out.ResourceRecordSets?.[0];
    if (rec?.Type !== "A" || normalise(rec.Name ?? "") !== normalise(name)) return null;
    return rec.ResourceRecords?.[0]?.Value ?? null;
  }

  describeUpsert(name: string, address: string): readonly string[] {
    return [
      `Route 53 ChangeResourceRecordSets ${show(this.upsertInput(name, address))}`,
      `Route 53 GetChange {"Id":"<change id>"} until its status is INSYNC (waitUntilResourceRecordSetsChanged)`,
    ];
  }

  /** The exact request: one UPSERT of an A record. */
  upsertInput(name: string, address: string): ChangeResourceRecordSetsCommandInput {
    return {
      HostedZoneId: this.zone(name),
      ChangeBatch: {
        Comment: `failoverd ${this.o.topology}: ${name} -> ${address}`,
        Changes: [
          {
            Action: "UPSERT",
            ResourceRecordSet: { Name: name, Type: "A", TTL: this.o.ttl, ResourceRecords: [{ Value: address }] },
          },
        ],
      },
    };
  }

  private zone(name: string): string {
    if (!this.o.hostedZoneId) {
      throw new ProviderError(`provider.hostedZoneId is not set: failoverd cannot change ${name} in Route 53; set it to the zone that holds the record`, false, "NoHostedZone");
    }
    return this.o.hostedZoneId;
  }
}

/** Route 53 answers names fully qualified (trailing dot), lower-case, with some characters escaped as \\ddd. */
export function normalise(name: string): string {
  return name
    .replace(/\\(\d{3})/g, (_, d: string) => String.fromCharCode(Number.parseInt(d, 8)))
    .replace(/\.$/, "")
    .toLowerCase();
}
