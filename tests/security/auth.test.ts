import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { sha256 } from '../../src/security/api-keys';
import { type Harness, json, startHarness } from '../helpers';

// Keys of every kind: an ordinary one, an admin, a scrape-only one, and one stored as a hash.
const USER = 'user-key-0123456789abcdef';
const ADMIN = 'admin-key-0123456789abcdef';
const SCRAPER = 'scrape-key-0123456789abcdef';
const HASHED = 'hashed-key-0123456789abcdef';
const KEYS: Record<string, { key: string; scopes: string[] }> = {
  user: { key: USER, scopes: ['generate'] },
  admin: { key: ADMIN, scopes: ['admin'] },
  scraper: { key: SCRAPER, scopes: ['metrics'] },
};

let h: Harness;
const logged: string[] = [];
beforeAll(() => {
  h = startHarness(
    {
      MINATO_API_KEYS: `${USER} id=alice, ${ADMIN} admin id=ops, ${SCRAPER} metrics id=prom, sha256:${sha256(HASHED).toString('hex')} id=hashed`,
    },
    undefined,
    { log: (line) => logged.push(line) },
  );
});
afterAll(() => h.close());

type Operation = { method: string; path: string; security?: Record<string, string[]>[] };

/** Every operation of the live OpenAPI document, with a concrete path to call. */
async function operations(): Promise<Operation[]> {
  const document = await json(await fetch(`${h.url}/openapi.json`));
  const found: Operation[] = [];
  for (const [template, item] of Object.entries(document.paths as Record<string, Record<string, { security?: never }>>)) {
    for (const [method, operation] of Object.entries(item)) {
      const path = template.replace('{model_name}', 'llama3.2');
      found.push({
        method: method.toUpperCase(),
        path: `${path}${path.includes('llama3.2') ? '?message=hi' : ''}`,
        security: operation.security,
      });
    }
  }
  return found;
}

const PUBLIC = ['/health', '/ready'];

describe('authentication, table-driven from the OpenAPI document', () => {
  test('the document declares both ways to send a key', async () => {
    const document = await json(await fetch(`${h.url}/openapi.json`));
    expect(document.components.securitySchemes.bearerAuth).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
    expect(document.components.securitySchemes.apiKeyHeader).toEqual(
      expect.objectContaining({ type: 'apiKey', in: 'header', name: 'X-API-Key' }),
    );
  });

  test('every operation that is not public declares a scope, answers 401 without a key and 403 with a key lacking its scope', async () => {
    const ops = await operations();
    expect(ops.length).toBeGreaterThanOrEqual(8);
    for (const op of ops) {
      const label = `${op.method} ${op.path}`;
      if (PUBLIC.includes(op.path)) {
        expect({ label, security: op.security }).toEqual({ label, security: [] });
        const response = await fetch(`${h.url}${op.path}`, { method: op.method });
        expect({ label, status: response.status }).not.toEqual({ label, status: 401 });
        continue;
      }
      // A route added without secured() or anyKey() has no requirement in the document: this fails for it.
      expect({ label, declared: Array.isArray(op.security?.[0]?.bearerAuth) }).toEqual({ label, declared: true });
      const scope = op.security?.[0]?.bearerAuth?.[0];
      // Errors come in the surface's dialect: Ollama's `{"error"}` on /api/*, Minato's `{detail, code}` elsewhere.
      const ollama = op.path.startsWith('/api/');
      const openai = op.path.startsWith('/v1/');
      const message = async (response: Response) => {
        const body = await json(response);
        return ollama ? body.error : openai ? body.error.message : body.detail;
      };

      const anonymous = await fetch(`${h.url}${op.path}`, { method: op.method });
      expect({ label, status: anonymous.status }).toEqual({ label, status: 401 });
      expect(anonymous.headers.get('www-authenticate')).toStartWith('Bearer realm="minato"');
      expect(await message(anonymous)).toContain('API key');

      // The same global check for every route: tried on Minato's own (wrong keys are limited per address).
      if (!ollama && !openai) {
        const wrongKey = await fetch(`${h.url}${op.path}`, {
          method: op.method,
          headers: { Authorization: 'Bearer not-a-key-0123456789abc' },
        });
        expect({ label, status: wrongKey.status }).toEqual({ label, status: 401 });
        expect(wrongKey.headers.get('www-authenticate')).toContain('error="invalid_token"');
      }

      if (scope === undefined) {
        // Any valid key (read-only metadata): one with the narrowest scope is let through.
        const metricsOnly = Object.values(KEYS).find((k) => k.scopes.length === 1 && k.scopes[0] === 'metrics')!;
        const allowed = await fetch(`${h.url}${op.path}`, { method: op.method, headers: { Authorization: `Bearer ${metricsOnly.key}` } });
        expect({ label, ok: ![401, 403].includes(allowed.status) }).toEqual({ label, ok: true });
        await allowed.body?.cancel();
        continue;
      }

      const lacking = Object.values(KEYS).find((k) => !k.scopes.includes(scope as string) && !k.scopes.includes('admin'));
      const forbidden = await fetch(`${h.url}${op.path}`, { method: op.method, headers: { Authorization: `Bearer ${lacking!.key}` } });
      expect({ label, status: forbidden.status }).toEqual({ label, status: 403 });
      expect(await message(forbidden)).toContain(`"${scope}" scope`);

      const holder = Object.values(KEYS).find((k) => k.scopes.includes(scope as string))!;
      const allowed = await fetch(`${h.url}${op.path}`, { method: op.method, headers: { 'X-API-Key': holder.key } });
      expect({ label, ok: ![401, 403].includes(allowed.status) }).toEqual({ label, ok: true });
      await allowed.body?.cancel();
    }
  }, 30_000);

  test('unknown paths need a key too (routes are not revealed), and the docs stay public', async () => {
    expect((await fetch(`${h.url}/no/such/route/here`)).status).toBe(401);
    expect((await fetch(`${h.url}/docs`)).status).toBe(200);
    expect((await fetch(`${h.url}/docs/swagger-ui.css`)).status).toBe(200);
    expect((await fetch(`${h.url}/openapi.json`)).status).toBe(200);
  });
});

describe('keys', () => {
  test('a key stored as sha256:<hex> works when sent in clear, both as Bearer and as X-API-Key', async () => {
    expect((await fetch(`${h.url}/llama3.2?message=hi`, { headers: { Authorization: `Bearer ${HASHED}` } })).status).toBe(200);
    expect((await fetch(`${h.url}/llama3.2?message=hi`, { headers: { 'X-API-Key': HASHED } })).status).toBe(200);
    // The hash itself is not a key.
    const hashAsKey = await fetch(`${h.url}/llama3.2?message=hi`, { headers: { 'X-API-Key': sha256(HASHED).toString('hex') } });
    expect(hashAsKey.status).toBe(401);
  });

  test('a key sent without "Bearer", or with another scheme, is a 401 that says how to send it (not "needs an API key")', async () => {
    const bare = await fetch(`${h.url}/llama3.2?message=hi`, { headers: { Authorization: USER } });
    expect(bare.status).toBe(401);
    const bareBody = await json(bare);
    expect(bareBody.detail).toContain('has no scheme');
    expect(bareBody.detail).toContain('Authorization: Bearer <key>');
    expect(bareBody.detail).not.toContain(USER);
    expect(bare.headers.get('www-authenticate')).toContain('error="invalid_request"');
    const basic = await fetch(`${h.url}/llama3.2?message=hi`, { headers: { Authorization: `Basic ${btoa(`x:${USER}`)}` } });
    expect(basic.status).toBe(401);
    expect((await json(basic)).detail).toContain('"Basic" scheme');
    // And on the relayed surfaces, in their shapes.
    const api = await fetch(`${h.url}/api/tags`, { headers: { Authorization: USER } });
    expect((await json(api)).error).toContain('has no scheme');
    expect((await fetch(`${h.url}/llama3.2?message=hi`, { headers: { Authorization: `Bearer ${USER}` } })).status).toBe(200);
  });

  test('an admin key may install; an ordinary key may not', async () => {
    h.ollama.registry.set('tinyllama', { layers: 1 });
    const pulls = () => h.ollama.requests.filter((r) => r.path === '/api/pull').length;
    const before = pulls();
    const denied = await fetch(`${h.url}/install/tinyllama`, { method: 'POST', headers: { Authorization: `Bearer ${USER}` } });
    expect(denied.status).toBe(403);
    expect((await json(denied)).detail).toContain('alice');
    expect(pulls()).toBe(before);
    const installed = await fetch(`${h.url}/install/tinyllama`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN}` } });
    expect(installed.status).toBe(200);
  });

  test('the log names the key by its id and never holds a key', async () => {
    logged.length = 0;
    await fetch(`${h.url}/llama3.2?message=hi`, { headers: { Authorization: `Bearer ${USER}` } });
    await fetch(`${h.url}/llama3.2?message=hi`, { headers: { Authorization: 'Bearer a-wrong-key-0123456789' } });
    await h.ollama.waitFor(() => logged.length >= 2);
    const lines = logged.map((line) => JSON.parse(line));
    expect(lines[0].key_id).toBe('alice');
    expect(lines[1].status).toBe(401);
    const everything = logged.join('\n');
    for (const secret of [USER, ADMIN, 'a-wrong-key-0123456789']) expect(everything).not.toContain(secret);
  });

  test('no key reaches Ollama: Minato sends only its own headers upstream', async () => {
    await fetch(`${h.url}/llama3.2?message=hi`, { headers: { Authorization: `Bearer ${USER}`, 'X-API-Key': USER } });
    const upstream = h.ollama.last('/api/generate')!;
    expect(JSON.stringify(upstream.headers)).not.toContain(USER);
  });
});

describe('public paths are configurable', () => {
  test('MINATO_PUBLIC_PATHS=none puts /health and the docs behind a key too; /metrics can be made public', async () => {
    const closed = startHarness({ MINATO_API_KEYS: USER, MINATO_PUBLIC_PATHS: 'none' });
    const scrape = startHarness({ MINATO_API_KEYS: USER, MINATO_PUBLIC_PATHS: '/health,/metrics' });
    try {
      for (const path of ['/health', '/ready', '/docs', '/openapi.json']) expect((await fetch(`${closed.url}${path}`)).status).toBe(401);
      expect((await fetch(`${closed.url}/health`, { headers: { 'X-API-Key': USER } })).status).toBe(200);
      const document = await json(await fetch(`${closed.url}/openapi.json`, { headers: { 'X-API-Key': USER } }));
      expect(document.paths['/health'].get.security).toEqual([{ bearerAuth: [] }, { apiKeyHeader: [] }]);

      expect((await fetch(`${scrape.url}/metrics`)).status).toBe(200);
      expect((await fetch(`${scrape.url}/ready`)).status).toBe(401);
    } finally {
      await closed.close();
      await scrape.close();
    }
  });

  test('without any key configured (loopback), nothing asks for one', async () => {
    const open = startHarness();
    try {
      expect((await fetch(`${open.url}/llama3.2?message=hi`)).status).toBe(200);
      expect((await fetch(`${open.url}/metrics`)).status).toBe(200);
    } finally {
      await open.close();
    }
  });
});
