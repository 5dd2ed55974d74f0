import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Harness, json, readChunks, sleep, startHarness } from '../helpers';

const KEY = 'log-key-0123456789abc';
let h: Harness;
const lines: Record<string, unknown>[] = [];
beforeAll(() => {
  h = startHarness(
    { MINATO_API_KEYS: `${KEY} id=logger`, MINATO_RATE_LIMIT: '0' },
    [
      { name: 'llama3.2', tokens: ['The', ' sky', '.'] },
      { name: 'slow', tokens: Array.from({ length: 50 }, () => 'x'), tokenDelayMs: 20 },
    ],
    { log: (line) => lines.push(JSON.parse(line)) },
  );
});
afterAll(() => h.close());
const auth = { Authorization: `Bearer ${KEY}` };
const lastLine = async (count: number) => {
  await h.ollama.waitFor(() => lines.length >= count);
  return lines[count - 1]!;
};

describe('X-Request-Id', () => {
  test('a client id is kept, one is generated otherwise, and a hostile one is replaced', async () => {
    const kept = await fetch(`${h.url}/health`, { headers: { 'X-Request-Id': 'trace-42.abc' } });
    expect(kept.headers.get('x-request-id')).toBe('trace-42.abc');
    const generated = await fetch(`${h.url}/health`);
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const hostile = await fetch(`${h.url}/health`, { headers: { 'X-Request-Id': `a"b${'c'.repeat(300)}` } });
    expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('every kind of response carries it: errors, 404s, streams', async () => {
    for (const response of [
      await fetch(`${h.url}/llama3.2?message=hi`),
      await fetch(`${h.url}/nope/nope/nope`, { headers: auth }),
      await fetch(`${h.url}/stream/llama3.2?message=hi`, { headers: auth }),
      await fetch(`${h.url}/llama3.2?message=hi&temperature=9`, { headers: auth }),
    ]) {
      expect(response.headers.get('x-request-id')).toBeTruthy();
      await response.text();
    }
  });
});

describe('the request log: one JSON line per request', () => {
  test('a synchronous answer: route, model, key id, status, Ollama status, timing; no prompt', async () => {
    const before = lines.length;
    const response = await fetch(`${h.url}/llama3.2?message=my+secret+prompt`, { headers: { ...auth, 'X-Request-Id': 'sync-1' } });
    expect(response.status).toBe(200);
    const body = await response.text();
    const line = await lastLine(before + 1);
    expect(line.bytes).toBe(Buffer.byteLength(body));
    expect(line.ttfb_ms).toBe(line.duration_ms);
    expect(line).toEqual(
      expect.objectContaining({
        msg: 'request',
        request_id: 'sync-1',
        method: 'GET',
        route: '/{model_name}',
        model: 'llama3.2',
        key_id: 'logger',
        status: 200,
        upstream_status: 200,
        client_aborted: false,
      }),
    );
    expect(line.duration_ms).toBeGreaterThan(0);
    expect(JSON.stringify(lines)).not.toContain('secret');
  });

  test('a stream is logged when it ends, with its bytes and time to first byte', async () => {
    const before = lines.length;
    const response = await fetch(`${h.url}/stream/slow?message=hi`, { headers: { ...auth, 'X-Request-Id': 'stream-1' } });
    const { text } = await readChunks(response);
    const line = await lastLine(before + 1);
    expect(line).toEqual(expect.objectContaining({ request_id: 'stream-1', route: '/stream/{model_name}', model: 'slow', status: 200 }));
    expect(line.bytes).toBe(new TextEncoder().encode(text).length);
    expect(line.ttfb_ms as number).toBeLessThan(line.duration_ms as number);
    expect(line.duration_ms as number).toBeGreaterThan(900); // 50 tokens, 20 ms apart
  });

  test('a client that leaves mid-stream is logged as aborted', async () => {
    const before = lines.length;
    const controller = new AbortController();
    const response = await fetch(`${h.url}/stream/slow?message=hi`, { headers: auth, signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    const line = await lastLine(before + 1);
    expect(line.client_aborted).toBe(true);
    expect(line.bytes as number).toBeGreaterThan(0);
  });

  test('a refused request is logged with its error code', async () => {
    const before = lines.length;
    await fetch(`${h.url}/nomodel?message=hi`, { headers: auth });
    const line = await lastLine(before + 1);
    expect(line).toEqual(expect.objectContaining({ status: 404, error: 'model_not_found', upstream_status: 404, level: 'warn' }));
    expect(line.bytes as number).toBeGreaterThan(50);
    await sleep(0);
    expect((await json(await fetch(`${h.url}/nomodel?message=hi`, { headers: auth }))).code).toBe('model_not_found');
  });
});
