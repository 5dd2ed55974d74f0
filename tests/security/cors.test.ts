import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Harness, readChunks, startHarness } from '../helpers';

const KEY = 'browser-key-0123456789';
let h: Harness;
beforeAll(() => {
  h = startHarness({ MINATO_API_KEYS: KEY, CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' });
});
afterAll(() => h.close());

describe('CORS (CORS_ORIGINS)', () => {
  test('a preflight from an allowed origin is answered without a key, allowing the key headers', async () => {
    const response = await fetch(`${h.url}/stream/llama3.2?message=hi`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'https://app.example.com',
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'authorization, x-api-key',
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(response.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    expect(response.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('x-api-key');
    expect(h.ollama.requests).toHaveLength(0);
  });

  test('a stream is readable cross-origin: allow-origin and the exposed headers are on the streamed response', async () => {
    const response = await fetch(`${h.url}/stream/llama3.2?message=hi`, {
      headers: { Origin: 'http://localhost:5173', Authorization: `Bearer ${KEY}`, Accept: 'text/event-stream' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    const exposed = response.headers.get('access-control-expose-headers')?.toLowerCase() ?? '';
    for (const name of ['x-request-id', 'ratelimit', 'x-queue-position', 'retry-after']) expect(exposed).toContain(name);
    const { text } = await readChunks(response);
    expect(text).toContain('"done":true');
  });

  test('errors carry the CORS headers too, so a browser app can read why it was refused', async () => {
    const response = await fetch(`${h.url}/llama3.2?message=hi`, { headers: { Origin: 'https://app.example.com' } });
    expect(response.status).toBe(401);
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
  });

  test('an origin not on the list gets no CORS headers', async () => {
    const response = await fetch(`${h.url}/health`, { headers: { Origin: 'https://evil.example.net' } });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    const preflight = await fetch(`${h.url}/health`, {
      method: 'OPTIONS',
      headers: { Origin: 'https://evil.example.net', 'Access-Control-Request-Method': 'GET' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
  });
});
