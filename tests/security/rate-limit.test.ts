import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Harness, json, startHarness } from '../helpers';

const SLOW_KEY = 'limited-key-0123456789';
const FAST_KEY = 'roomy-key-0123456789ab';
let h: Harness;
beforeAll(() => {
  h = startHarness({ MINATO_API_KEYS: `${SLOW_KEY} id=limited rpm=3, ${FAST_KEY} id=roomy`, MINATO_RATE_LIMIT: '100' });
});
afterAll(() => h.close());

describe('per-key rate limits', () => {
  test('past its requests per minute a key gets 429 with Retry-After and RateLimit fields; other keys are unaffected', async () => {
    const call = (key: string) => fetch(`${h.url}/llama3.2?message=hi`, { headers: { 'X-API-Key': key } });
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 4; i++) {
      last = await call(SLOW_KEY);
      statuses.push(last.status);
      if (i < 3) {
        expect(last.headers.get('ratelimit-policy')).toBe('"minute";q=3;w=60');
        expect(last.headers.get('ratelimit')).toMatch(new RegExp(`^"minute";r=${2 - i};t=\\d+$`));
      }
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(last!.headers.get('ratelimit')).toMatch(/^"minute";r=0;t=\d+$/);
    const body = await json(last!);
    expect(body.code).toBe('rate_limited');
    expect(body.detail).toContain('limited');
    expect(h.ollama.requests.filter((r) => r.path === '/api/generate')).toHaveLength(3);

    const other = await call(FAST_KEY);
    expect(other.status).toBe(200);
    expect(other.headers.get('ratelimit-policy')).toBe('"minute";q=100;w=60');
  });

  test('public paths are not counted', async () => {
    for (let i = 0; i < 5; i++) expect((await fetch(`${h.url}/health`)).headers.get('ratelimit')).toBeNull();
  });
});

describe('key guessing', () => {
  test('past 30 wrong keys a minute an address gets 429 with Retry-After for every wrong key; a valid key is still served', async () => {
    const guesser = startHarness({ MINATO_API_KEYS: `${FAST_KEY} id=roomy` });
    try {
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 32; i++) {
        last = await fetch(`${guesser.url}/llama3.2?message=hi`, { headers: { 'X-API-Key': `guess-${i}-0123456789abcdef` } });
        statuses.push(last.status);
      }
      expect(statuses.slice(0, 30).every((status) => status === 401)).toBe(true);
      expect(statuses.slice(30)).toEqual([429, 429]);
      expect(Number(last!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((await json(last!)).code).toBe('too_many_auth_failures');
      // Another client on the same address (behind a balancer, every client is) with a valid key is
      // not locked out by the guesser: keys are at least 16 characters, far beyond 30 guesses a minute.
      const right = await fetch(`${guesser.url}/llama3.2?message=hi`, { headers: { 'X-API-Key': FAST_KEY } });
      expect(right.status).toBe(200);
      const wrongAgain = await fetch(`${guesser.url}/llama3.2?message=hi`, { headers: { 'X-API-Key': 'guess-again-0123456789abcdef' } });
      expect(wrongAgain.status).toBe(429);
      // A request without any key is not a guess, and still gets its 401.
      expect((await fetch(`${guesser.url}/llama3.2?message=hi`)).status).toBe(401);
      expect(guesser.ollama.requests.filter((r) => r.path === '/api/generate')).toHaveLength(1);
    } finally {
      await guesser.close();
    }
  });

  test('two different keys in one request are a 400, not a silent choice', async () => {
    const response = await fetch(`${h.url}/llama3.2?message=hi`, {
      headers: { 'X-API-Key': FAST_KEY, Authorization: `Bearer ${SLOW_KEY}` },
    });
    expect(response.status).toBe(400);
    expect((await json(response)).code).toBe('conflicting_keys');
  });
});

describe('rate limits without keys', () => {
  test('on loopback nothing is limited (as the original); beyond loopback each address is', async () => {
    const local = startHarness({ MINATO_RATE_LIMIT: '2' });
    try {
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await fetch(`${local.url}/llama3.2?message=hi`)).status);
      expect(statuses).toEqual([200, 200, 200, 200]);
    } finally {
      await local.close();
    }
    // HOST is only read for this decision here; the harness still listens on 127.0.0.1.
    const exposed = startHarness({ MINATO_RATE_LIMIT: '2', HOST: '0.0.0.0', MINATO_ALLOW_UNAUTHENTICATED: 'true' });
    try {
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await fetch(`${exposed.url}/llama3.2?message=hi`)).status);
      expect(statuses).toEqual([200, 200, 429]);
    } finally {
      await exposed.close();
    }
  });
});
