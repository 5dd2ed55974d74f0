import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { loadConfig } from '../../src/config';
import { type Harness, sleep, startHarness } from '../helpers';

// Two Minato replicas sharing per-key rate limits through a real redis-server (Debian's package;
// .ci/run installs it), and what happens when Redis dies and comes back.
const REDIS = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((path) => existsSync(path));
const KEY = 'shared-limit-key-0123456789';
const port = 20_000 + Math.floor(Math.random() * 20_000);
let redis: ReturnType<typeof Bun.spawn> | undefined;
let a: Harness;
let b: Harness;
const logs: string[] = [];

const startRedis = async () => {
  redis = Bun.spawn([REDIS!, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdout: 'ignore',
    stderr: 'ignore',
  });
  for (let i = 0; i < 50; i++) {
    const up = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } }).then(
      (socket) => {
        socket.end();
        return true;
      },
      () => false,
    );
    if (up) return;
    await sleep(50);
  }
  throw new Error('redis-server did not start');
};

beforeAll(async () => {
  if (!REDIS) return;
  await startRedis();
  const env = { MINATO_API_KEYS: `${KEY} id=shared rpm=4`, MINATO_REDIS_URL: `redis://127.0.0.1:${port}` };
  a = startHarness(env, undefined, { log: (line) => logs.push(line) });
  b = startHarness(env, undefined, { log: (line) => logs.push(line) });
});
afterAll(async () => {
  if (!REDIS) return;
  await a.close();
  await b.close();
  redis?.kill('SIGKILL');
});

const call = (h: Harness) => fetch(`${h.url}/llama3.2?message=hi`, { headers: { 'X-API-Key': KEY } });

describe.skipIf(!REDIS)('per-key rate limits shared through Redis (MINATO_REDIS_URL)', () => {
  test("a key's limit holds across two replicas: 4 a minute in all, not 4 on each", async () => {
    const statuses: number[] = [];
    for (const h of [a, b, a, b, a, b]) statuses.push((await call(h)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    const refused = await call(b);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get('ratelimit-policy')).toBe('"minute";q=4;w=60');
  });

  test('Redis dying fails open to per-process limits, says so once, and sharing resumes when it is back', async () => {
    redis!.kill('SIGKILL');
    await redis!.exited;
    await sleep(100);
    // Each replica now counts on its own: a fresh bucket of 4 each.
    const statuses: number[] = [];
    for (const h of [a, a, a, a, a]) statuses.push((await call(h)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429]);
    expect((await call(b)).status).toBe(200);
    const down = logs.filter((line) => line.includes('Redis at MINATO_REDIS_URL is unavailable'));
    expect(down.length).toBe(2); // once per replica, not once per request
    expect(JSON.parse(down[0]!).level).toBe('warn');

    await startRedis();
    for (let i = 0; i < 60 && !logs.some((line) => line.includes('is back; rate limits are shared again')); i++) {
      await call(a);
      await sleep(100);
    }
    expect(logs.some((line) => line.includes('Redis at MINATO_REDIS_URL is back; rate limits are shared again'))).toBe(true);
  }, 20_000);

  test('a Redis that stops answering (SIGSTOP) stalls nothing: every request is answered within its deadline, limits fail open, and sharing resumes', async () => {
    const before = logs.filter((line) => line.includes('is unavailable')).length;
    process.kill(redis!.pid, 'SIGSTOP');
    try {
      const startedAt = performance.now();
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 === 0 ? call(a) : fetch(`${b.url}/api/tags`, { headers: { 'X-API-Key': KEY } })).then((r) => r.status),
        ),
      );
      const took = performance.now() - startedAt;
      // A paused Redis is given MINATO_REDIS_TIMEOUT_MS (50 ms), not the 100 s the TCP connection would wait.
      expect(took).toBeLessThan(2000);
      expect(answers.every((status) => status === 200 || status === 429)).toBe(true);
      expect(answers.filter((status) => status === 200).length).toBeGreaterThan(0);
      const down = logs.filter((line) => line.includes('is unavailable')).slice(before);
      // Once per replica that found it up (b may still count on its own since the last test), not once per request.
      expect(down.length).toBeGreaterThanOrEqual(1);
      expect(down.length).toBeLessThanOrEqual(2);
      expect(down[0]).toContain('MINATO_REDIS_TIMEOUT_MS');
    } finally {
      process.kill(redis!.pid, 'SIGCONT');
    }
    const backBefore = logs.filter((line) => line.includes('is back')).length;
    for (let i = 0; i < 40 && logs.filter((line) => line.includes('is back')).length === backBefore; i++) {
      await call(a);
      await sleep(100);
    }
    expect(logs.filter((line) => line.includes('is back')).length).toBeGreaterThan(backBefore);
  }, 20_000);
});

describe.skipIf(!REDIS)('MINATO_REDIS_URL checked at start', () => {
  test('a Redis that is not there is reported at start, before any request; a URL that is not Redis is a config error', async () => {
    const lines: string[] = [];
    const nowhere = startHarness({ MINATO_API_KEYS: `${KEY} id=shared rpm=4`, MINATO_REDIS_URL: 'redis://127.0.0.1:1' }, undefined, {
      log: (line) => lines.push(line),
    });
    try {
      for (let i = 0; i < 30 && !lines.some((line) => line.includes('is unavailable')); i++) await sleep(50);
      expect(lines.some((line) => line.includes('Redis at MINATO_REDIS_URL is unavailable'))).toBe(true);
      // And requests are answered at once, counted in the process.
      const startedAt = performance.now();
      expect((await call(nowhere)).status).toBe(200);
      expect(performance.now() - startedAt).toBeLessThan(500);
    } finally {
      await nowhere.close();
    }
    expect(() => loadConfig({ MINATO_REDIS_URL: 'localhost:6379' })).toThrow(/MINATO_REDIS_URL.*must be a Redis URL/);
  });
});
