import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createMetrics, MAX_MODEL_LABELS } from '../../../src/observability/metrics';
import { type Harness, json, readChunks, startHarness } from '../../helpers';

let h: Harness;
beforeAll(() => {
  h = startHarness({ MINATO_STREAM_IDLE_TIMEOUT: '1' });
  h.ollama.models.set('counted', { name: 'counted', tokens: ['a', 'b', 'c', 'd'], tokenDelayMs: 10 });
  h.ollama.models.set('slow-stream', { name: 'slow-stream', tokens: ['a', 'b', 'c'], tokenDelayMs: 300 });
  h.ollama.models.set('broken', { name: 'broken', tokens: ['a', 'b'], errorAfterTokens: 1 });
});
afterAll(() => h.close());

const scrape = async () => (await fetch(`${h.url}/metrics`)).text();
const value = (text: string, series: string) => {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('GET /metrics', () => {
  test('is Prometheus text with requests by route, method and status', async () => {
    await fetch(`${h.url}/counted?message=hi`);
    await fetch(`${h.url}/nosuch?message=hi`);
    const response = await fetch(`${h.url}/metrics`);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await response.text();
    expect(text).toContain('# TYPE minato_requests_total counter');
    expect(value(text, 'minato_requests_total{route="/{model_name}",method="GET",status="200"}')).toBe(1);
    expect(value(text, 'minato_requests_total{route="/{model_name}",method="GET",status="404"}')).toBe(1);
    expect(value(text, 'minato_request_duration_seconds_count{route="/{model_name}"}')).toBe(2);
  });

  test("counts tokens and tokens/s per model from Ollama's final line, sync and streamed", async () => {
    const before = value(await scrape(), 'minato_generated_tokens_total{model="counted:latest"}') ?? 0;
    await fetch(`${h.url}/counted?message=hi`);
    await (await fetch(`${h.url}/stream/counted?message=hi`)).text();
    await (await fetch(`${h.url}/stream/counted?message=hi`, { headers: { Accept: 'text/event-stream' } })).text();
    const text = await scrape();
    expect(value(text, 'minato_generated_tokens_total{model="counted:latest"}')).toBe(before + 12);
    // The double reports eval_duration = 10 ms per token: 100 tokens/s.
    expect(value(text, 'minato_last_tokens_per_second{model="counted:latest"}')).toBeCloseTo(100, 5);
    expect(value(text, 'minato_generation_seconds_total{model="counted:latest"}')).toBeGreaterThan(0);
  });

  test('spellings of one model are one series (the name Ollama resolves)', async () => {
    const before = value(await scrape(), 'minato_generated_tokens_total{model="counted:latest"}') ?? 0;
    for (const name of ['COUNTED', 'library/counted', 'counted:latest', 'Registry.Ollama.AI/library/Counted']) {
      expect((await fetch(`${h.url}/${name}?message=hi`)).status).toBe(200);
    }
    const text = await scrape();
    expect(value(text, 'minato_generated_tokens_total{model="counted:latest"}')).toBe(before + 16);
    expect(text).not.toContain('COUNTED');
  });

  test('per-model series are bounded: past 100 models the rest count as "other"', () => {
    const metrics = createMetrics();
    for (let i = 0; i < 20_000; i++) metrics.generation(`model-${i}`, 10, 1e9);
    const text = metrics.render();
    expect(text.split('\n').filter((line) => line.startsWith('minato_generated_tokens_total{')).length).toBe(MAX_MODEL_LABELS + 1);
    expect(value(text, 'minato_generated_tokens_total{model="other"}')).toBe((20_000 - MAX_MODEL_LABELS) * 10);
    expect(value(text, 'minato_generated_tokens_total{model="model-0:latest"}')).toBe(10);
    expect(text.length).toBeLessThan(100_000);
  });

  test('a stream is in flight until it ends, and its duration covers the whole stream', async () => {
    const duration = 'minato_request_duration_seconds_bucket{route="/stream/{model_name}",le="0.5"}';
    const firstByte = 'minato_time_to_first_byte_seconds_bucket{route="/stream/{model_name}",le="0.5"}';
    const count = 'minato_request_duration_seconds_count{route="/stream/{model_name}"}';
    const before = await scrape();
    const response = await fetch(`${h.url}/stream/slow-stream?message=hi`);
    const reader = response.body!.getReader();
    await reader.read();
    expect(value(await scrape(), 'minato_streams_in_flight')).toBe(1);
    while (!(await reader.read()).done);
    const text = await scrape();
    expect(value(text, 'minato_streams_in_flight')).toBe(0);
    // Three tokens 300 ms apart: the whole stream took over 0.5 s, its first byte well under.
    expect(value(text, count)).toBe((value(before, count) ?? 0) + 1);
    expect(value(text, duration) ?? 0).toBe(value(before, duration) ?? 0);
    expect(value(text, firstByte)).toBe((value(before, firstByte) ?? 0) + 1);
  });

  test("requests waiting on Ollama's first byte (its queue, a model load) are a gauge", async () => {
    h.ollama.models.set('loading', { name: 'loading', firstByteDelayMs: 600 });
    const pending = fetch(`${h.url}/loading?message=hi`).then((response) => response.text());
    await Bun.sleep(300);
    expect(value(await scrape(), 'minato_upstream_waiting')).toBe(1);
    await pending;
    expect(value(await scrape(), 'minato_upstream_waiting')).toBe(0);
  });

  test('a client that leaves does not leave a stream counted in flight', async () => {
    const { text } = await readChunks(await fetch(`${h.url}/stream/slow-stream?message=hi`), () => true);
    expect(text.length).toBeGreaterThan(0);
    await h.ollama.waitFor(() => h.ollama.last('/api/generate')?.aborted === true);
    expect(value(await scrape(), 'minato_streams_in_flight')).toBe(0);
  });

  test('upstream errors are counted by kind', async () => {
    await (await fetch(`${h.url}/stream/broken?message=hi`)).text();
    h.ollama.busy = true;
    await fetch(`${h.url}/counted?message=hi`);
    h.ollama.busy = false;
    const text = await scrape();
    expect(value(text, 'minato_upstream_errors_total{kind="stream_error_line"}')).toBe(1);
    expect(value(text, 'minato_upstream_errors_total{kind="busy"}')).toBe(1);
  });
});

describe('GET /metrics behind a scrape key', () => {
  test('a key with only the metrics scope reads /metrics and nothing else', async () => {
    const guarded = startHarness({ MINATO_API_KEYS: 'scrape-key-0123456789 metrics id=prometheus, user-key-0123456789abc' });
    try {
      const without = await fetch(`${guarded.url}/metrics`);
      expect(without.status).toBe(401);
      expect(without.headers.get('www-authenticate')).toContain('Bearer');
      expect((await fetch(`${guarded.url}/metrics`, { headers: { Authorization: 'Bearer wrong-key-0123456789' } })).status).toBe(401);
      const withKey = await fetch(`${guarded.url}/metrics`, { headers: { Authorization: 'Bearer scrape-key-0123456789' } });
      expect(withKey.status).toBe(200);
      expect(await withKey.text()).toContain('minato_streams_in_flight');
      // The scrape key cannot generate, and an ordinary key cannot scrape.
      const generate = await fetch(`${guarded.url}/llama3.2?message=hi`, { headers: { Authorization: 'Bearer scrape-key-0123456789' } });
      expect(generate.status).toBe(403);
      expect((await json(generate)).detail).toContain('prometheus');
      const scrapeWithUserKey = await fetch(`${guarded.url}/metrics`, { headers: { 'X-API-Key': 'user-key-0123456789abc' } });
      expect(scrapeWithUserKey.status).toBe(403);
    } finally {
      await guarded.close();
    }
  });

  test('MINATO_METRICS_KEY, which it replaced, is refused with directions', () => {
    expect(() => startHarness({ MINATO_METRICS_KEY: 'scrape-key-0123456789' })).toThrow(/MINATO_API_KEYS/);
  });

  test('MINATO_METRICS=false turns it off', async () => {
    const off = startHarness({ MINATO_METRICS: 'false' });
    try {
      expect((await fetch(`${off.url}/metrics`)).status).toBe(404);
    } finally {
      await off.close();
    }
  });
});
