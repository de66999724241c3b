/**
 * AWS errors as AWS sends them, turned into ProviderErrors that say what happened and what to do. The SDK (v3)
 * names a service error by its code (`error.name === "RequestLimitExceeded"`); credential failures are
 * `CredentialsProviderError`; an aborted request is `AbortError`.
 *
 * Messages never carry a credential: they are built from the error's code, the operation and AWS's own message
 * (which names actions and resources, never keys).
 */
import { ProviderError } from "../../errors.ts";

/** Throttling: retried with backoff and jitter. Route 53's PriorRequestNotComplete means "the zone is busy". */
export const THROTTLING_CODES: ReadonlySet<string> = new Set([
  "RequestLimitExceeded",
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException",
  "PriorRequestNotComplete",
  "EC2ThrottledException",
  "SlowDown",
]);

/** Transient service-side failures: retried like throttling. */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  "InternalError",
  "InternalFailure",
  "ServiceUnavailable",
  "Unavailable",
  "RequestTimeout",
  "RequestTimeoutException",
  "TimeoutError",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
]);

/** No capacity for this instance type in this subnet's zone: try the next type / subnet of the config. */
export const CAPACITY_CODES: ReadonlySet<string> = new Set([
  "InsufficientInstanceCapacity",
  "InsufficientHostCapacity",
  "InsufficientReservedInstanceCapacity",
  "InsufficientCapacity",
  "Unsupported",
]);

export const CREDENTIAL_CODES: ReadonlySet<string> = new Set([
  "CredentialsProviderError",
  "AuthFailure",
  "InvalidClientTokenId",
  "UnrecognizedClientException",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "ExpiredTokenException",
  "RequestExpired",
  "MissingAuthenticationToken",
  "IncompleteSignature",
]);

export const PERMISSION_CODES: ReadonlySet<string> = new Set(["UnauthorizedOperation", "AccessDenied", "AccessDeniedException"]);

/** The AWS error code of an error thrown by the SDK (or a Node socket error), if it has one. */
export function awsCode(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined;
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return code;
  const named = (e as { Code?: unknown }).Code;
  if (typeof named === "string") return named;
  return e.name && e.name !== "Error" ? e.name : undefined;
}

/** Throttling or a transient server error: the same request may succeed later. */
export function isThrottlingOrTransient(e: unknown): boolean {
  const code = awsCode(e);
  if (code && (THROTTLING_CODES.has(code) || TRANSIENT_CODES.has(code))) return true;
  const meta = (e as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata;
  const status = meta?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  const retryable = (e as { $retryable?: unknown } | undefined)?.$retryable;
  return retryable !== undefined && retryable !== null;
}

/** EC2 has no capacity for this instance type in this zone: try the next type or subnet. */
export function isCapacityCode(code: string | undefined): boolean {
  return code !== undefined && CAPACITY_CODES.has(code);
}

/** What a person should do about a code. The config key at fault when there is one. */
function advice(code: string, operation: string): string {
  if (THROTTLING_CODES.has(code)) return "AWS is throttling this account's requests; failoverd retried with backoff until the deadline. If it persists, find what else calls the API so often, or ask AWS for a higher limit";
  if (TRANSIENT_CODES.has(code)) return "a transient AWS failure; failoverd retried until the deadline. Check the AWS Health Dashboard for the region";
  if (CAPACITY_CODES.has(code)) return "AWS has no capacity for this instance type in this zone: list more types in provider.instanceTypes and subnets in other zones in provider.subnetIds, or retry later";
  if (CREDENTIAL_CODES.has(code)) return "no usable AWS credentials: failoverd uses the SDK's default chain (environment, shared config/profile, SSO, web identity, the instance profile); give the monitoring host an instance profile, and check the clock (signatures expire)";
  if (PERMISSION_CODES.has(code)) return `the IAM policy of failoverd's role does not allow ${operation}: add it (README, "Running on AWS")`;
  if (code.startsWith("InvalidAMIID")) return "provider.imageId names no usable AMI in provider.region: fix the id, or share/copy the AMI to this account and region";
  if (code.startsWith("InvalidLaunchTemplate")) return "provider.launchTemplate names no launch template in provider.region: fix its id or name (and version)";
  if (code.startsWith("InvalidSubnet")) return "a subnet of provider.subnetIds does not exist in provider.region: fix the list";
  if (code.startsWith("InvalidGroup") || code.startsWith("InvalidSecurityGroup")) return "a security group of provider.securityGroupIds does not exist (or is in another VPC): fix the list";
  if (code.startsWith("InvalidKeyPair")) return "provider.keyName names no key pair in provider.region: fix it or remove it";
  if (code === "InvalidParameterValue" && /iam|profile/i.test(operation)) return "provider.instanceProfile does not exist, or failoverd may not pass its role (iam:PassRole)";
  if (code.startsWith("InvalidParameter")) return "a provider.* value is not accepted by EC2 (AWS's message above says which)";
  if (code === "InstanceLimitExceeded" || code === "VcpuLimitExceeded") return "the account's instance/vCPU limit is reached in this region: terminate unused instances or request a higher limit";
  if (code.startsWith("InvalidAllocationID") || code.startsWith("InvalidAddress")) return "an Elastic IP allocation of provider.elasticIps does not exist in provider.region: fix it";
  if (code === "NoSuchHostedZone") return "provider.hostedZoneId names no Route 53 hosted zone: fix it (the zone id, like Z0123456789ABC)";
  if (code === "InvalidChangeBatch") return "Route 53 rejected the record change (AWS's message above says why): check the host's dnsName is inside the hosted zone";
  if (code === "InvalidInput") return "Route 53 rejected a parameter (AWS's message above says which)";
  if (code === "InvalidInstanceID.NotFound") return "the instance is not (or not yet) known to EC2; failoverd retried while EC2 caught up";
  if (code === "InvalidInstanceID.Malformed") return "this is not an EC2 instance id";
  if (code === "IncorrectInstanceState") return "the instance is in a state that does not allow this yet (pending, stopping); failoverd retried until the step's deadline";
  if (code === "IdempotentParameterMismatch") return "a retried launch changed its parameters; this is a bug in failoverd, please report it";
  return "see AWS's message above";
}

function awsMessage(e: unknown): string {
  const raw = e instanceof Error ? e.message : String(e);
  // An UnauthorizedOperation carries a long encoded authorization message: point at it instead of printing it.
  const clean = raw.replace(/Encoded authorization failure message: \S+/i, "(decode the encoded message with aws sts decode-authorization-message)");
  const line = clean.split("\n")[0]?.trim() ?? "";
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}

/**
 * An SDK error as a ProviderError: `<operation> failed: <Code>: <AWS's message>. What to do: <advice>`.
 * Retryable when the same request may succeed later (throttling, transient, capacity, eventual consistency).
 */
export function toProviderError(e: unknown, operation: string): ProviderError {
  if (e instanceof ProviderError) return e;
  const code = awsCode(e) ?? "UnknownError";
  const fromSignal = code === "AbortError" || (code === "TimeoutError" && !(e as { $metadata?: unknown }).$metadata);
  if (fromSignal) {
    return new ProviderError(`${operation} did not finish before the step's deadline`, true, "Deadline");
  }
  // CredentialsProviderError includes a metadata service that did not answer in time: worth another attempt.
  const retryable =
    isThrottlingOrTransient(e) || CAPACITY_CODES.has(code) || code === "InvalidInstanceID.NotFound" || code === "CredentialsProviderError";
  return new ProviderError(`${operation} failed: ${code}: ${awsMessage(e)}. What to do: ${advice(code, operation)}`, retryable, code);
}
