import { describe, expect, test } from 'bun:test';
import { createRateLimiter } from '../../src/security/rate-limit';

describe('rate limiter (token bucket per client)', () => {
  test('a burst up to the limit, then 429 with Retry-After until a token has refilled', () => {
    let now = 0;
    const limiter = createRateLimiter(() => now);
    for (let i = 0; i < 3; i++) {
      const decision = limiter.take('alice', 3);
      expect(decision.allowed).toBe(true);
      expect(decision.headers.RateLimit).toBe(`"minute";r=${2 - i};t=${Math.ceil(((i + 1) * 20_000) / 1000)}`);
      expect(decision.headers['RateLimit-Policy']).toBe('"minute";q=3;w=60');
    }
    const refused = limiter.take('alice', 3);
    expect(refused.allowed).toBe(false);
    expect(refused.headers['Retry-After']).toBe('20'); // one token every 60/3 s
    expect(limiter.take('bob', 3).allowed).toBe(true); // others are not affected
    now += 20_000;
    expect(limiter.take('alice', 3).allowed).toBe(true);
    expect(limiter.take('alice', 3).allowed).toBe(false);
  });

  test('clients whose buckets have refilled are forgotten once there are many', () => {
    let now = 0;
    const limiter = createRateLimiter(() => now);
    for (let i = 0; i < 10_000; i++) limiter.take(`ip:${i}`, 60);
    now += 61_000;
    limiter.take('newcomer', 60);
    expect(limiter.clients).toBe(1);
  });
});
