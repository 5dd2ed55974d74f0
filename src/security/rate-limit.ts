/**
 * Requests per minute per client (an API key's id, or an address when no keys are configured),
 * as a token bucket: `limit` tokens, refilled evenly over a minute, so a client may burst up to
 * its limit and then goes at its rate, rather than hitting a wall at every minute boundary.
 *
 * Answers carry the IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers):
 * `RateLimit-Policy: "minute";q=<limit>;w=60` and `RateLimit: "minute";r=<left>;t=<seconds>`,
 * where `t` is the time until the bucket is full again.
 */

const WINDOW_SECONDS = 60;
/** Past this many clients, buckets that have refilled completely (no state worth keeping) are dropped. */
const SWEEP_AT = 10_000;

type Bucket = { tokens: number; updatedAt: number; limit: number };

export type RateDecision = { allowed: boolean; headers: Record<string, string> };

export function createRateLimiter(now: () => number = () => performance.now()) {
  const buckets = new Map<string, Bucket>();

  const refill = (bucket: Bucket, at: number) => {
    const perMs = bucket.limit / (WINDOW_SECONDS * 1000);
    bucket.tokens = Math.min(bucket.limit, bucket.tokens + (at - bucket.updatedAt) * perMs);
    bucket.updatedAt = at;
  };

  const sweep = (at: number) => {
    for (const [client, bucket] of buckets) {
      refill(bucket, at);
      if (bucket.tokens >= bucket.limit) buckets.delete(client);
    }
  };

  return {
    /** Takes one token from `client`'s bucket of `limit` per minute. */
    take(client: string, limit: number): RateDecision {
      const at = now();
      let bucket = buckets.get(client);
      if (!bucket || bucket.limit !== limit) {
        if (buckets.size >= SWEEP_AT) sweep(at);
        bucket = { tokens: limit, updatedAt: at, limit };
        buckets.set(client, bucket);
      } else {
        refill(bucket, at);
      }
      const msPerToken = (WINDOW_SECONDS * 1000) / limit;
      const allowed = bucket.tokens >= 1;
      if (allowed) bucket.tokens -= 1;
      const remaining = Math.floor(bucket.tokens);
      const untilFull = Math.ceil(((limit - bucket.tokens) * msPerToken) / 1000);
      const headers: Record<string, string> = {
        'RateLimit-Policy': `"minute";q=${limit};w=${WINDOW_SECONDS}`,
        RateLimit: `"minute";r=${remaining};t=${untilFull}`,
      };
      if (!allowed) headers['Retry-After'] = String(Math.max(1, Math.ceil(((1 - bucket.tokens) * msPerToken) / 1000)));
      return { allowed, headers };
    },
    /** Seconds until `client` has a token again (0 when it has one now), without taking one. */
    wait(client: string, limit: number): number {
      const bucket = buckets.get(client);
      if (!bucket || bucket.limit !== limit) return 0;
      refill(bucket, now());
      if (bucket.tokens >= 1) return 0;
      return Math.max(1, Math.ceil(((1 - bucket.tokens) * WINDOW_SECONDS) / limit));
    },
    get clients() {
      return buckets.size;
    },
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
