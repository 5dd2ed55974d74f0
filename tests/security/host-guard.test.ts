import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { loadConfig } from '../../src/config';
import { type Harness, json, rawHttp, startHarness } from '../helpers';

// The keyless default must keep Ollama's own guard against DNS rebinding and cross-site requests:
// a page the user merely visits must not reach the GPU or start a pull through Minato.
let open: Harness;
let keyed: Harness;
const KEY = 'host-guard-key-0123456789';
beforeAll(() => {
  open = startHarness({ CORS_ORIGINS: 'https://app.example.com', MINATO_ALLOWED_HOSTS: 'gpu.lan' });
  keyed = startHarness({ MINATO_API_KEYS: `${KEY} admin`, MINATO_RATE_LIMIT: '0' });
});
afterAll(async () => {
  await open.close();
  await keyed.close();
});

const pulls = (h: Harness) => h.ollama.requests.filter((r) => r.path === '/api/pull').length;
const generations = (h: Harness) => h.ollama.requests.filter((r) => r.path === '/api/generate').length;

describe('without keys: only this machine', () => {
  test('a foreign Host (DNS rebinding) is refused with 403 and never reaches Ollama', async () => {
    const before = generations(open);
    for (const host of ['evil.example', 'evil.example:8000', '203.0.113.7', '192.168.1.20:8000']) {
      const response = await fetch(`${open.url}/llama3.2?message=hi`, { headers: { Host: host } });
      expect(response.status).toBe(403);
      const body = await json(response);
      expect(body.code).toBe('host_not_allowed');
      expect(body.detail).toContain('MINATO_ALLOWED_HOSTS');
      expect(response.headers.get('x-request-id')).toBeTruthy();
    }
    const install = await fetch(`${open.url}/install/llama3.2`, { method: 'POST', headers: { Host: 'evil.example' } });
    expect(install.status).toBe(403);
    expect(generations(open)).toBe(before);
    expect(pulls(open)).toBe(0);
  });

  test('loopback names and addresses, the bind address and MINATO_ALLOWED_HOSTS are served', async () => {
    const port = new URL(open.url).port;
    for (const host of [
      `localhost:${port}`,
      'LOCALHOST',
      `127.0.0.1:${port}`,
      '127.1.2.3',
      `[::1]:${port}`,
      'app.localhost',
      'gpu.lan:8000',
    ]) {
      const response = await fetch(`${open.url}/llama3.2?message=hi`, { headers: { Host: host } });
      expect({ host, status: response.status }).toEqual({ host, status: 200 });
      expect((await json(response)).response).toBe('The sky is blue.');
    }
  });

  test('a cross-site Origin is refused with 403, a no-cors pull included; the page gets no CORS headers', async () => {
    for (const origin of ['http://evil.example', 'https://localhost.evil.example', 'null', 'http://127.0.0.1.nip.io']) {
      const response = await fetch(`${open.url}/install/llama3.2`, { method: 'POST', headers: { Origin: origin } });
      expect({ origin, status: response.status }).toEqual({ origin, status: 403 });
      expect((await json(response)).code).toBe('origin_not_allowed');
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
    }
    const stream = await fetch(`${open.url}/stream/llama3.2?message=hi`, { headers: { Origin: 'http://evil.example' } });
    expect(stream.status).toBe(403);
    expect(pulls(open)).toBe(0);
  });

  test("a browser's no-cors GET carries no Origin, but its Fetch Metadata says another site sent it: 403", async () => {
    const before = generations(open);
    for (const site of ['cross-site', 'same-site']) {
      const response = await fetch(`${open.url}/llama3.2?message=hi`, { headers: { 'Sec-Fetch-Site': site, 'Sec-Fetch-Mode': 'no-cors' } });
      expect(response.status).toBe(403);
      expect((await json(response)).code).toBe('origin_not_allowed');
    }
    expect(generations(open)).toBe(before);
    // Typed into the address bar (none), or /docs on this very origin (same-origin): served.
    for (const site of ['none', 'same-origin']) {
      expect((await fetch(`${open.url}/llama3.2?message=hi`, { headers: { 'Sec-Fetch-Site': site } })).status).toBe(200);
    }
  });

  test('pages on this machine and origins in CORS_ORIGINS may call it', async () => {
    // gpu.lan is in MINATO_ALLOWED_HOSTS: /docs served under that name may call the API.
    for (const origin of [
      'http://localhost:5173',
      'http://127.0.0.1:3000',
      'https://app.example.com',
      'http://[::1]:8080',
      'http://gpu.lan:8000',
    ]) {
      const response = await fetch(`${open.url}/llama3.2?message=hi`, { headers: { Origin: origin } });
      expect({ origin, status: response.status }).toEqual({ origin, status: 200 });
    }
  });

  test('/health answers whatever the Host and Origin (liveness probes)', async () => {
    const response = await fetch(`${open.url}/health`, { headers: { Host: 'evil.example', Origin: 'http://evil.example' } });
    expect(response.status).toBe(200);
  });

  test('/ready, /docs and /openapi.json are behind the guard too', async () => {
    for (const path of ['/ready', '/docs', '/openapi.json', '/models_list', '/metrics']) {
      const response = await fetch(`${open.url}${path}`, { headers: { Host: 'evil.example' } });
      expect({ path, status: response.status }).toEqual({ path, status: 403 });
    }
  });

  test('MINATO_ALLOWED_HOSTS is checked at start-up', () => {
    expect(() => loadConfig({ MINATO_ALLOWED_HOSTS: 'http://gpu.lan/' })).toThrow('MINATO_ALLOWED_HOSTS');
    expect(loadConfig({ MINATO_ALLOWED_HOSTS: 'GPU.lan, *' }).allowedHosts).toEqual(['gpu.lan', '*', '127.0.0.1']);
  });
});

describe('with keys: the key is the guard', () => {
  test('a foreign Host and Origin with a valid key are served, without CORS headers for an unlisted origin', async () => {
    const response = await fetch(`${keyed.url}/llama3.2?message=hi`, {
      headers: { Host: 'gpu.example.org', Origin: 'http://evil.example', Authorization: `Bearer ${KEY}` },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });

  test('/openapi.json names a relative server, never the Host it was asked with', async () => {
    const response = await fetch(`${keyed.url}/openapi.json`, { headers: { Host: 'evil.example' } });
    const text = await response.text();
    expect(JSON.parse(text).servers).toEqual([{ url: '/', description: expect.any(String) }]);
    expect(text).not.toContain('evil.example');
  });

  test("/ready tells anyone the status, and only key holders Ollama's address and version", async () => {
    const anonymous = await json(await fetch(`${keyed.url}/ready`));
    expect(anonymous).toEqual({ status: 'ready' });
    const wrongKey = await json(await fetch(`${keyed.url}/ready`, { headers: { 'X-API-Key': 'not-the-key-0123456789' } }));
    expect(wrongKey).toEqual({ status: 'ready' });
    const holder = await json(await fetch(`${keyed.url}/ready`, { headers: { Authorization: `Bearer ${KEY}` } }));
    expect(holder).toEqual({ status: 'ready', ollama: { url: keyed.ollama.url, version: expect.any(String) } });
  });
});

describe('a Host that cannot be parsed never changes routing', () => {
  for (const [mode, h] of [
    ['keyless', () => open],
    ['keyed', () => keyed],
  ] as const) {
    test(`400 with a request id, on every path (${mode})`, async () => {
      for (const host of ['a b', 'evil/x', 'x?y', 'a@b']) {
        for (const path of ['/xx/openapi.json', '/health', '/llama3.2?message=hi', '/docs']) {
          const response = await rawHttp(h().url, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
          expect({ host, path, status: response.status }).toEqual({ host, path, status: 400 });
          expect(JSON.parse(response.body).code).toBe('bad_host');
          expect(response.headers.toLowerCase()).toContain('x-request-id:');
        }
      }
    });
  }

  test('HTTP/1.0 without a Host routes on the request line: /xx/openapi.json is the model "xx/openapi.json", not the document', async () => {
    const lines: string[] = [];
    const logged = startHarness({}, undefined, { log: (line) => lines.push(line) });
    try {
      const spoofed = await rawHttp(logged.url, 'GET /xx/openapi.json HTTP/1.0\r\n\r\n');
      // `GET /{model_name}` (model names may hold slashes) without its `message`: a 422, not the public document.
      expect(spoofed.status).toBe(422);
      expect(JSON.parse(spoofed.body).code).toBe('validation_error');
      expect(spoofed.headers.toLowerCase()).toContain('x-request-id:');
      const health = await rawHttp(logged.url, 'GET /health HTTP/1.0\r\n\r\n');
      expect(health.status).toBe(200);
      const answer = await rawHttp(logged.url, 'GET /llama3.2?message=hi HTTP/1.0\r\n\r\n');
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body).response).toBe('The sky is blue.');
      // A path shorter than `http://`: its query string is still read (it was lost, and `message` missing).
      logged.ollama.models.set('ec', { name: 'ec', tokens: ['ok'] });
      const short = await rawHttp(logged.url, 'GET /ec?message=x HTTP/1.0\r\n\r\n');
      expect(short.status).toBe(200);
      const paths = lines.map((line) => JSON.parse(line).path);
      expect(paths).toEqual(['/xx/openapi.json', '/health', '/llama3.2', '/ec']);
    } finally {
      await logged.close();
    }
  });
});
