import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Harness, json, startHarness, TINY_PNG } from './helpers';

let h: Harness;
beforeAll(() => {
  h = startHarness();
});
afterAll(() => h.close());

describe('unknown routes and wrong methods', () => {
  test('an unknown route is a JSON 404, including the reserved /api and /v1 prefixes', async () => {
    for (const path of ['/api/nosuch', '/v1/nosuch', '/api', '/stream', '/docs/nothing.js']) {
      const response = await fetch(`${h.url}${path}`);
      expect(response.status).toBe(404);
      expect(response.headers.get('content-type')).toContain('application/json');
      // The Ollama-native surface answers in Ollama's shape, which its clients read.
      const body = await json(response);
      expect(path.startsWith('/api/') ? body.error : path.startsWith('/v1/') ? body.error.message : body.detail).toContain(path);
    }
    expect((await fetch(`${h.url}/api`, { method: 'POST' })).status).toBe(404);
    expect(h.ollama.requests.length).toBe(0);
  });

  test('a wrong method is a JSON 405 with Allow', async () => {
    const cases: [string, string, string][] = [
      ['GET', '/install/llama3.2', 'POST'],
      ['GET', '/vision/llava', 'POST'],
      ['DELETE', '/llama3.2', 'GET'],
      ['POST', '/models_list/', 'GET'],
      ['POST', '/stream/llama3.2', 'GET'],
      ['POST', '/health', 'GET'],
      ['DELETE', '/docs', 'GET'],
      ['PUT', '/openapi.json', 'GET'],
    ];
    for (const [method, path, allow] of cases) {
      const response = await fetch(`${h.url}${path}`, { method });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe(allow);
      expect((await json(response)).code).toBe('method_not_allowed');
    }
  });

  test('a wrong method on the relayed surfaces answers in their dialects, through the one renderer', async () => {
    const ollama = await fetch(`${h.url}/api/chat`);
    expect(ollama.status).toBe(405);
    expect(ollama.headers.get('allow')).toBe('POST');
    expect((await json(ollama)).error).toContain('Method GET is not allowed on /api/chat');
    const openai = await fetch(`${h.url}/v1/chat/completions`);
    expect(openai.status).toBe(405);
    const body = await json(openai);
    expect(body.error.code).toBe('method_not_allowed');
    expect(body.error.type).toBe('invalid_request_error');
  });
});

describe('HEAD', () => {
  test('HEAD on a generation route is a 405 and starts nothing on Ollama', async () => {
    const before = h.ollama.requests.length;
    for (const path of ['/llama3.2?message=hi', '/stream/llama3.2?message=hi']) {
      const response = await fetch(`${h.url}${path}`, { method: 'HEAD' });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('GET');
    }
    expect(h.ollama.requests.length).toBe(before);
  });
  test('HEAD on the probes works as GET', async () => {
    expect((await fetch(`${h.url}/health`, { method: 'HEAD' })).status).toBe(200);
  });
});

describe('what reaches Ollama', () => {
  test("the client's Host, Origin, cookies, Authorization and hop-by-hop headers never do", async () => {
    // With keys, a foreign Host and Origin are the key holder's business (without keys they are refused: host-guard.test.ts).
    const KEY = 'app-test-key-0123456789';
    const keyed = startHarness({ MINATO_API_KEYS: KEY });
    const response = await fetch(`${keyed.url}/stream/llama3.2?message=hi`, {
      headers: {
        Host: 'gpu.example.org',
        Origin: 'https://evil.example',
        Cookie: 'session=secret',
        Authorization: `Bearer ${KEY}`,
        'X-Forwarded-For': '203.0.113.9',
        Connection: 'keep-alive, X-Private',
        'X-Private': 'x',
      },
    });
    // The double answers 403 to a foreign Host or any Origin, as Ollama does.
    expect(response.status).toBe(200);
    await response.text();
    const headers = keyed.ollama.last('/api/generate')!.headers;
    await keyed.close();
    expect(headers.host).toBe(`127.0.0.1:${keyed.ollama.port}`);
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
  test("/redoc, the original's second reference, leads there", async () => {
    const response = await fetch(`${h.url}/redoc`, { redirect: 'manual' });
    expect(response.status).toBe(301);
    expect(response.headers.get('location')).toBe('/docs');
  });
});

describe('Ollama trouble on every endpoint', () => {
  test('Ollama down: every route that needs it is a 502 naming OLLAMA_HOST; /health stays 200', async () => {
    const down = startHarness({ OLLAMA_HOST: '127.0.0.1:9' });
    try {
      const image = new FormData();
      image.append('images', new Blob([TINY_PNG]));
      const calls: [string, RequestInit][] = [
        ['/llama3.2?message=hi', {}],
        ['/stream/llama3.2?message=hi', {}],
        ['/vision/llava?message=hi', { method: 'POST', body: image }],
        ['/stream/vision/llava?message=hi', { method: 'POST', body: image }],
        ['/install/llama3.2', { method: 'POST' }],
        ['/install/llama3.2', { method: 'POST', headers: { Accept: 'application/x-ndjson' } }],
        ['/models_list/', {}],
      ];
      for (const [path, init] of calls) {
        const response = await fetch(`${down.url}${path}`, init);
        expect([path, response.status]).toEqual([path, 502]);
        expect((await json(response)).detail).toContain('OLLAMA_HOST');
      }
      expect((await fetch(`${down.url}/ready`)).status).toBe(503);
      expect((await fetch(`${down.url}/health`)).status).toBe(200);
    } finally {
      await down.close();
    }
  });

  test('OLLAMA_HOST pointing at something that is not Ollama: a 502 that says so, for whole answers and streams', async () => {
    const notOllama = Bun.serve({
      port: 0,
      fetch: () => new Response('<html><body>It works!</body></html>\n', { headers: { 'Content-Type': 'text/html' } }),
    });
    const wrong = startHarness({ OLLAMA_HOST: `127.0.0.1:${notOllama.port}` });
    try {
      const sync = await fetch(`${wrong.url}/llama3.2?message=hi`);
      expect(sync.status).toBe(502);
      expect((await json(sync)).detail).toContain('not JSON');
      const stream = await (await fetch(`${wrong.url}/stream/llama3.2?message=hi`)).text();
      // The HTML never reaches the client: its one line is the error, which names the setting to check.
      expect(stream.trim().split('\n')).toHaveLength(1);
      expect(JSON.parse(stream).error).toContain('not JSON');
      expect(JSON.parse(stream).error).toContain('OLLAMA_HOST');
    } finally {
      await wrong.close();
      await notOllama.stop(true);
    }
  });

  test("Ollama's full queue on the vision routes is a 503 with Retry-After", async () => {
    h.ollama.busy = true;
    try {
      const image = new FormData();
      image.append('images', new Blob([TINY_PNG]));
      for (const path of ['/vision/llava?message=hi', '/stream/vision/llava?message=hi']) {
        const response = await fetch(`${h.url}${path}`, { method: 'POST', body: image });
        expect(response.status).toBe(503);
        expect(response.headers.get('retry-after')).toBe('5');
      }
    } finally {
      h.ollama.busy = false;
    }
  });
});
