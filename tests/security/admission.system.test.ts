import { afterEach, describe, expect, test } from 'bun:test';
import { type Harness, json, readChunks, sleep, startHarness } from '../helpers';

// A model slow enough that requests overlap: 10 tokens, 60 ms apart (~0.6 s an answer).
const SLOW = [{ name: 'slow', tokens: Array.from({ length: 10 }, (_, i) => `t${i} `), tokenDelayMs: 60 }];

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const start = (env: Record<string, string>) => {
  h = startHarness(env, SLOW);
  return h;
};

describe('admission control over real sockets', () => {
  test('a streamed request Ollama refuses before streaming (missing model, bad request) gives its slot back', async () => {
    // Two slots in all: every refused stream below once kept its slot, so the third refusal
    // and every generation after it waited for a slot that never came back.
    const h = start({ MINATO_MAX_CONCURRENT: '2', MINATO_QUEUE_TIMEOUT: '2' });
    for (let i = 0; i < 3; i++) {
      const api = await fetch(`${h.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'missing', prompt: 'hi' }) });
      expect(api.status).toBe(404);
      const v1 = await fetch(`${h.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'missing', messages: [{ role: 'user', content: 'hi' }], stream: true }),
      });
      expect(v1.status).toBe(404);
    }
    const after = await fetch(`${h.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'slow', prompt: 'hi' }) });
    expect(after.status).toBe(200);
    expect(after.headers.get('x-queue-position')).toBe('0');
    await after.text();
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toContain('minato_generations_running 0');
  });

  test('no more generations of a model reach Ollama at once than MINATO_MAX_CONCURRENT_PER_MODEL; the rest wait and all finish', async () => {
    const h = start({ MINATO_MAX_CONCURRENT_PER_MODEL: '2' });
    const responses = await Promise.all(Array.from({ length: 6 }, () => fetch(`${h.url}/slow?message=hi`)));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(h.ollama.peakStreaming).toBe(2);
    const positions = responses.map((r) => Number(r.headers.get('x-queue-position'))).sort();
    expect(positions).toEqual([0, 0, 1, 2, 3, 4]);
    const waited = responses.map((r) => Number(/queue;dur=([\d.]+)/.exec(r.headers.get('server-timing') ?? '')?.[1]));
    expect(Math.max(...waited)).toBeGreaterThan(1000); // the last waited for two rounds of ~0.6 s
    for (const response of responses) expect((await json(response)).response).toBe(SLOW[0]!.tokens.join(''));
  });

  test('a full queue answers 503 with Retry-After at once, without calling Ollama', async () => {
    const h = start({ MINATO_MAX_CONCURRENT_PER_MODEL: '1', MINATO_MAX_QUEUE_PER_MODEL: '1' });
    const running = fetch(`${h.url}/stream/slow?message=hi`);
    await h.ollama.waitFor(() => h.ollama.streaming === 1);
    const waiting = fetch(`${h.url}/slow?message=hi`);
    await sleep(50);
    const startedAt = Date.now();
    const refused = await fetch(`${h.url}/slow?message=hi`);
    expect(Date.now() - startedAt).toBeLessThan(200);
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = await json(refused);
    expect(body.code).toBe('queue_full');
    expect(body.detail).toContain('Retry-After');
    expect(h.ollama.requests.filter((r) => r.path === '/api/generate')).toHaveLength(1);
    expect((await running).status).toBe(200);
    expect((await waiting).status).toBe(200);
  });

  test('a request that waits longer than MINATO_QUEUE_TIMEOUT gets a 503 then', async () => {
    const h = start({ MINATO_MAX_CONCURRENT_PER_MODEL: '1', MINATO_QUEUE_TIMEOUT: '0.3' });
    const running = fetch(`${h.url}/slow?message=hi`);
    await h.ollama.waitFor(() => h.ollama.streaming === 1);
    const startedAt = Date.now();
    const late = await fetch(`${h.url}/slow?message=hi`);
    const waited = Date.now() - startedAt;
    expect(late.status).toBe(503);
    expect((await json(late)).code).toBe('queue_timeout');
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(600);
    expect((await running).status).toBe(200);
  });

  test('an SSE client that has to wait sees its place at once, as it changes, and then its answer', async () => {
    const h = start({ MINATO_MAX_CONCURRENT_PER_MODEL: '1' });
    const first = fetch(`${h.url}/stream/slow?message=one`);
    await h.ollama.waitFor(() => h.ollama.streaming === 1);
    const second = fetch(`${h.url}/stream/slow?message=two`, { headers: { Accept: 'text/event-stream' } });
    await sleep(30);
    const sentAt = Date.now();
    const third = await fetch(`${h.url}/stream/slow?message=three`, { headers: { Accept: 'text/event-stream' } });
    expect(third.status).toBe(200);
    expect(third.headers.get('x-queue-position')).toBe('2');
    const { chunks, text } = await readChunks(third);
    expect(chunks[0]!.text).toBe('event: queued\ndata: {"position":2}\n\n');
    expect(chunks[0]!.at - sentAt).toBeLessThan(200); // long before a slot was free (~1.2 s)
    expect(text).toContain('event: queued\ndata: {"position":1}\n\n');
    expect(text.indexOf('position":1')).toBeLessThan(text.indexOf('data: {"model"'));
    expect(text).toContain('"done":true');
    const done = chunks.find((chunk) => chunk.text.includes('"done":true'))!;
    expect(done.at - sentAt).toBeGreaterThan(1500); // it waited for two answers before its own
    await (await first).text();
    await (await second).text();
  });

  test('a client that leaves while queued, or mid-stream, frees its place and its slot', async () => {
    const h = start({ MINATO_MAX_CONCURRENT_PER_MODEL: '1' });
    const streaming = new AbortController();
    const first = await fetch(`${h.url}/stream/slow?message=one`, { signal: streaming.signal });
    const queued = new AbortController();
    const leaving = fetch(`${h.url}/slow?message=two`, { signal: queued.signal }).catch(() => 'aborted');
    await sleep(50);
    queued.abort();
    expect(await leaving).toBe('aborted');
    const reader = first.body!.getReader();
    await reader.read();
    streaming.abort();
    await h.ollama.waitFor(() => h.ollama.streaming === 0);
    // Both are gone: the next request starts at once.
    const next = await fetch(`${h.url}/slow?message=three`);
    expect(next.headers.get('x-queue-position')).toBe('0');
    expect(h.ollama.requests.filter((r) => r.path === '/api/generate')).toHaveLength(2);
  });

  test('/metrics shows the queue depth and the slots in use', async () => {
    const h = start({ MINATO_MAX_CONCURRENT_PER_MODEL: '1' });
    const running = fetch(`${h.url}/slow?message=hi`);
    const waiting = [fetch(`${h.url}/slow?message=hi`), fetch(`${h.url}/slow?message=hi`)];
    await sleep(100);
    const text = await (await fetch(`${h.url}/metrics`)).text();
    expect(text).toContain('\nminato_queue_waiting 2\n');
    expect(text).toContain('\nminato_generations_running 1\n');
    await Promise.all([running, ...waiting]);
  });

  test('spellings of one model share its slots: hang, hang:latest, library/hang and HANG', async () => {
    const h = start({ MINATO_MAX_CONCURRENT_PER_MODEL: '2', MINATO_MAX_CONCURRENT: '16' });
    const names = ['slow', 'slow:latest', 'library/slow', 'SLOW', 'registry.ollama.ai/library/slow:latest'];
    const responses = await Promise.all(names.map((name) => fetch(`${h.url}/${name}?message=hi`)));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(h.ollama.peakStreaming).toBe(2);
    expect(responses.map((r) => Number(r.headers.get('x-queue-position'))).sort()).toEqual([0, 0, 1, 2, 3]);
  });

  test('one key cannot hold every slot (MINATO_MAX_CONCURRENT_PER_KEY): another key starts at once', async () => {
    const GREEDY = 'greedy-key-0123456789ab';
    const FAIR = 'fair-key-0123456789abcd';
    h = startHarness(
      {
        MINATO_API_KEYS: `${GREEDY} id=greedy, ${FAIR} id=fair`,
        MINATO_MAX_CONCURRENT: '4',
        MINATO_MAX_CONCURRENT_PER_MODEL: '4',
        MINATO_RATE_LIMIT: '0',
      },
      [SLOW[0]!, { ...SLOW[0]!, name: 'slow2' }],
    );
    const url = h.url;
    expect(h.config.maxConcurrentPerKey).toBe(2); // half of MINATO_MAX_CONCURRENT by default
    const greedy = ['slow', 'slow2', 'slow', 'slow2', 'slow', 'slow2'].map((model) =>
      fetch(`${url}/${model}?message=hi`, { headers: { 'X-API-Key': GREEDY } }),
    );
    await h.ollama.waitFor(() => h!.ollama.streaming === 2);
    await sleep(50);
    expect(h.ollama.streaming).toBe(2); // two slots are free, but not for this key
    const fair = await fetch(`${url}/slow?message=hi`, { headers: { 'X-API-Key': FAIR } });
    expect(fair.status).toBe(200);
    expect(fair.headers.get('x-queue-position')).toBe('0');
    const all = await Promise.all(greedy);
    expect(all.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
  });
});
