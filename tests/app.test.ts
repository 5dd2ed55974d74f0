import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Harness, json, startHarness } from './helpers';

let h: Harness;
beforeAll(() => {
  h = startHarness();
});
afterAll(() => h.close());

describe('unknown routes and wrong methods', () => {
  test('an unknown route is a JSON 404, including the reserved /api and /v1 prefixes', async () => {
    for (const path of ['/api/tags', '/v1/models', '/api', '/stream', '/docs/nothing.js']) {
      const response = await fetch(`${h.url}${path}`);
      expect(response.status).toBe(404);
      expect(response.headers.get('content-type')).toContain('application/json');
      expect((await json(response)).detail).toContain(path);
    }
    expect(h.ollama.requests.length).toBe(0);
  });

  test('a wrong method is a JSON 405 with Allow', async () => {
    const cases: [string, string, string][] = [
      ['GET', '/install/llama3.2', 'POST'],
      ['GET', '/vision/llava', 'POST'],
      ['DELETE', '/llama3.2', 'GET'],
      ['POST', '/models_list/', 'GET'],
      ['POST', '/stream/llama3.2', 'GET'],
    ];
    for (const [method, path, allow] of cases) {
      const response = await fetch(`${h.url}${path}`, { method });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe(allow);
      expect((await json(response)).code).toBe('method_not_allowed');
    }
  });
});

describe('what reaches Ollama', () => {
  test("the client's Host, Origin, cookies, Authorization and hop-by-hop headers never do", async () => {
    const response = await fetch(`${h.url}/stream/llama3.2?message=hi`, {
      headers: {
        Host: 'gpu.example.org',
        Origin: 'https://evil.example',
        Cookie: 'session=secret',
        Authorization: 'Bearer secret',
        'X-Forwarded-For': '203.0.113.9',
        Connection: 'keep-alive, X-Private',
        'X-Private': 'x',
      },
    });
    // The double answers 403 to a foreign Host or any Origin, as Ollama does.
    expect(response.status).toBe(200);
    await response.text();
    const headers = h.ollama.last('/api/generate')!.headers;
    expect(headers.host).toBe(`127.0.0.1:${h.ollama.port}`);
    for (const name of ['origin', 'cookie', 'authorization', 'x-forwarded-for', 'x-private']) expect(headers[name]).toBeUndefined();
  });
});

describe('GET /docs', () => {
  test('serves the interactive reference with its assets from this server, not a CDN', async () => {
    const page = await fetch(`${h.url}/docs`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('/openapi.json');
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
    expect(assets.length).toBe(2);
    for (const asset of assets) {
      expect(asset.startsWith('/docs/')).toBe(true);
      const response = await fetch(`${h.url}${asset}`);
      expect(response.status).toBe(200);
      expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(10_000);
    }
  });
  test('/redoc, the original\'s second reference, leads there', async () => {
    const response = await fetch(`${h.url}/redoc`, { redirect: 'manual' });
    expect(response.status).toBe(301);
    expect(response.headers.get('location')).toBe('/docs');
  });
});
