import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Harness, rawHttp, startHarness } from '../helpers';

// Requests written byte for byte on a raw socket: fetch would normalise `..`, refuse CR/LF in
// header values and encode what these tests need to send as it is.
let h: Harness;
const KEY = 'inject-key-0123456789ab';
beforeAll(() => {
  h = startHarness({ MINATO_API_KEYS: `${KEY} admin`, MINATO_RATE_LIMIT: '0' });
});
afterAll(() => h.close());

const raw = (head: string) => rawHttp(h.url, head);

const get = (target: string, extra = '') =>
  raw(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\n${extra}Connection: close\r\n\r\n`);
const post = (target: string) =>
  raw(`POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);

const HOSTILE_MODELS = [
  '..',
  '%2e%2e',
  '%2E%2E%2Fapi%2Fdelete',
  'llama3.2%2F..%2F..%2Fapi%2Fpull',
  'llama3.2%0d%0aX-Injected:%201',
  'llama3.2%0aevil',
  'llama3.2%00',
  '%00',
  'llama3.2%22%7D%2C%22model%22%3A%22other',
  `${'a'.repeat(5000)}`,
  'llama3.2%20%3Brm%20-rf',
];

describe('injection: hostile model names never reach Ollama', () => {
  test.each(HOSTILE_MODELS)('%s', async (model) => {
    const before = h.ollama.requests.length;
    for (const send of [
      () => get(`/${model}?message=hi`),
      () => get(`/stream/${model}?message=hi`),
      () => post(`/vision/${model}?message=hi`),
      () => post(`/install/${model}`),
    ]) {
      const response = await send();
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(JSON.parse(response.body).detail).toBeDefined();
      expect(response.headers.toLowerCase()).not.toContain('x-injected');
    }
    // Not one request reached Ollama: no /api/generate, /api/show, /api/pull, nor a path it was steered to.
    expect(h.ollama.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual([]);
  });

  test('dot segments are resolved as URLs are (RFC 3986), before routing: `/./llama3.2` is `/llama3.2`', async () => {
    expect((await get('/./llama3.2?message=hi')).status).toBe(200);
    expect((h.ollama.last('/api/generate')!.body as { model: string }).model).toBe('llama3.2');
  });

  test('a valid name still works on the same socket path, so the checks above are not vacuous', async () => {
    const response = await get('/llama3.2?message=hi');
    expect(response.status).toBe(200);
    expect((h.ollama.last('/api/generate')!.body as { model: string }).model).toBe('llama3.2');
  });

  test('query parameters cannot smuggle fields into the upstream JSON', async () => {
    const response = await get('/llama3.2?message=hi%22%2C%22model%22%3A%22other&model=other&stream=false&images=x');
    expect(response.status).toBeLessThan(500);
    const upstream = h.ollama.last('/api/generate')!.body as Record<string, unknown>;
    expect(upstream.model).toBe('llama3.2');
    expect(upstream.prompt).toBe('hi","model":"other');
    expect(upstream.images).toBeUndefined();
  });
});

describe('injection: CR, LF and NUL in header values', () => {
  const CASES = [
    ['X-Request-Id', 'abc\rX-Injected: 1'],
    ['X-Request-Id', 'abc\nX-Injected: 1'],
    ['X-Request-Id', 'abc\0def'],
    ['Authorization', `Bearer ${KEY}\rX-Injected: 1`],
    ['X-API-Key', `${KEY}\0`],
    ['Accept', 'text/event-stream\r\nX-Injected: 1'],
  ];
  test.each(CASES)('%s: %j', async (name, value) => {
    const before = h.ollama.requests.length;
    const response = await raw(`GET /llama3.2?message=hi HTTP/1.1\r\nHost: 127.0.0.1\r\n${name}: ${value}\r\nConnection: close\r\n\r\n`);
    // Refused (Bun rejects bare CR/NUL as a malformed request; a lone LF ends the header, so what
    // follows is a header of its own, never part of a value) and never echoed or acted on.
    expect(response.status).toBeLessThan(500);
    expect(response.headers.toLowerCase()).not.toMatch(/\r\nx-injected/);
    expect(response.headers).not.toContain('abc');
    if (response.status === 200) {
      // Only a request that was whole and authorised may reach Ollama, with Minato's own headers.
      expect(JSON.stringify(h.ollama.last('/api/generate')!.headers).toLowerCase()).not.toContain('x-injected');
    } else {
      expect(h.ollama.requests.length).toBe(before);
    }
  });
});
