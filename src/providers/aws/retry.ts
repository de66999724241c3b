/**
 * One retry layer for every AWS call: exponential backoff with jitter (p-retry), bounded by attempts and by the
 * step's deadline (its AbortSignal also aborts the request in flight). The SDK clients are built with
 * `maxAttempts: 1`, so retries do not multiply and every one of them is visible to tests (aws-sdk-client-mock
 * replaces `send`, below the SDK's own retry middleware).
 */
import pRetry from "p-retry";
import { errorMessage, ProviderError } from "../../errors.ts";
import { awsCode, isThrottlingOrTransient, toProviderError } from "./errors.ts";

export interface RetryPolicy {
  /** Attempts in all (1 = no retry). */
  readonly attempts: number;
  /** The first delay; each next one doubles, randomised by x1-2 (jitter), capped at maxDelayMs. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, baseDelayMs: 250, maxDelayMs: 10_000 };

export interface RetryOptions {
  readonly signal: AbortSignal;
  readonly policy: RetryPolicy;
  /** Which errors are worth another attempt; throttling and transient errors by default. */
  readonly retryIf?: (e: unknown) => boolean;
  /** Called before each retry (for a log line: code and attempt, never request parameters). */
  readonly onRetry?: (code: string, attempt: number) => void;
}

/**
 * Runs `fn` until it succeeds, an error is not retryable, the attempts are spent or the signal aborts. Rejects
 * with a ProviderError naming `operation`, the AWS error code and what to do.
 */
export async function withRetry<T>(operation: string, fn: () => Promise<T>, o: RetryOptions): Promise<T> {
  const retryIf = o.retryIf ?? isThrottlingOrTransient;
  let last: unknown;
  o.signal.throwIfAborted();
  try {
    return await pRetry(
      async () => {
        try {
          return await fn();
        } catch (e) {
          last = e;
          throw e instanceof Error ? e : new Error(errorMessage(e));
        }
      },
      {
        retries: Math.max(0, o.policy.attempts - 1),
        factor: 2,
        minTimeout: o.policy.baseDelayMs,
        maxTimeout: o.policy.maxDelayMs,
        randomize: true,
        signal: o.signal,
        shouldRetry: ({ error }) => !o.signal.aborted && retryIf(error),
        onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
          if (retriesLeft > 0 && !o.signal.aborted && retryIf(error)) o.onRetry?.(awsCode(error) ?? "error", attemptNumber);
        },
      },
    );
  } catch (e) {
    if (o.signal.aborted) {
      if (last === undefined) throw new ProviderError(`${operation} did not start before the step's deadline`, true, "Deadline");
      const inner = toProviderError(last, operation);
      throw new ProviderError(`${inner.message} (gave up at the step's deadline)`, true, inner.code);
    }
    throw toProviderError(last ?? e, operation);
  }
}
