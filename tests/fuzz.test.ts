import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { GenerationQuery } from '../src/routes/minato/generate/generate.schemas';
import { type Harness, startHarness } from './helpers';

// Property: whatever a client sends, the answer is never a 5xx (Ollama is up and healthy here),
// and every error is JSON with a `detail`.
let h: Harness;
let secured: Harness;
const KEY = 'fuzz-key-0123456789abcdef';
beforeAll(() => {
  // Rate limits off: the runs are many and fast, and a 429 would stop them short of the routes.
  h = startHarness({ MINATO_RATE_LIMIT: '0' });
  secured = startHarness({ MINATO_API_KEYS: `${KEY} admin`, MINATO_RATE_LIMIT: '0', CORS_ORIGINS: 'https://app.example.com' });
});
afterAll(async () => {
  await h.close();
  await secured.close();
});

// Every parameter the routes declare, and one they do not.
const PARAMETERS = [...Object.keys(GenerationQuery.shape), 'unknown'];

const value = fc.oneof(
  fc.string(),
  fc.integer().map(String),
  fc.double({ noNaN: false }).map(String),
  fc.constantFrom('', 'true', 'false', '1', '0', '-1', '5m', '1e309', 'NaN', '-0', '0x10', '%', '%00', '\u0000', '1h30m', '-', ' 1'),
);

const query = fc
  .array(fc.tuple(fc.constantFrom(...PARAMETERS), value), { maxLength: 8 })
  .map((pairs) => new URLSearchParams(pairs).toString());

const modelName = fc.oneof(
  fc.constantFrom(
    'llama3.2',
    'llava',
    'hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M',
    'nope',
    'a/b/c/d',
    '..',
    '%2e%2e',
    'api',
    'x:',
    ':x',
    'a b',
  ),
  fc.string({ minLength: 1, maxLength: 40 }).map(encodeURIComponent),
  fc.stringMatching(/^[a-z0-9._:/-]{1,60}$/),
);

async function check(response: Response) {
  const text = await response.text();
  expect(response.status).toBeLessThan(500);
  if (response.status >= 400) {
    expect(response.headers.get('content-type')).toContain('application/json');
    // Minato's {detail, code}, or on the Ollama-native surface Ollama's {"error": "..."}.
    const body = JSON.parse(text);
    expect(body.detail ?? body.error).toBeDefined();
  }
}

describe('fuzzing (fast-check): random input never produces a 5xx', () => {
  test('GET /{model_name} and /stream/{model_name} with random query strings', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('', 'stream/'), modelName, query, async (prefix, model, search) => {
        await check(await fetch(`${h.url}/${prefix}${model}?${search}`));
      }),
      { numRuns: 300 },
    );
  }, 60_000);

  test('POST /vision/{model_name} with random bodies and content types', async () => {
    const body = fc.oneof(
      fc.string(),
      fc.json(),
      fc
        .record({ images: fc.array(fc.oneof(fc.string(), fc.base64String(), fc.integer()), { maxLength: 4 }) })
        .map((record) => JSON.stringify(record)),
      fc.uint8Array({ maxLength: 2048 }),
    );
    const contentType = fc.constantFrom(
      'application/json',
      'multipart/form-data',
      'multipart/form-data; boundary=x',
      'text/plain',
      'image/png',
      '',
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('vision', 'stream/vision'),
        fc.constantFrom('llava', 'llama3.2', 'nope'),
        query,
        body,
        contentType,
        async (route, model, search, payload, type) => {
          const headers: Record<string, string> = type ? { 'Content-Type': type } : {};
          await check(
            await fetch(`${h.url}/${route}/${model}?message=x&${search}`, {
              method: 'POST',
              body: payload as Uint8Array<ArrayBuffer> | string,
              headers,
            }),
          );
        },
      ),
      { numRuns: 200 },
    );
  }, 60_000);

  test('random paths and methods', async () => {
    const segment = fc.oneof(
      fc.constantFrom('api', 'v1', 'stream', 'vision', 'install', 'models_list', 'docs', 'health', '..', '%2F', ''),
      fc.string({ maxLength: 12 }).map(encodeURIComponent),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
        fc.array(segment, { minLength: 1, maxLength: 5 }),
        async (method, segments) => {
          // install/* would pull from the double's empty registry: a 404, still never a 5xx.
          await check(await fetch(`${h.url}/${segments.join('/')}`, { method }));
        },
      ),
      { numRuns: 300 },
    );
  }, 60_000);

  test('every route of the OpenAPI document, with random headers (keys, Accept, Origin, ids, types) and bodies', async () => {
    const document = (await (await fetch(`${secured.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => ({ method: method.toUpperCase(), path: path.replace('{model_name}', 'llava') })),
    );
    // Header values fetch can send (no CR, LF or NUL; those are tried on a raw socket in injection.test.ts).
    const headerValue = fc.oneof(
      fc.string({ maxLength: 80 }).map((text) => text.replace(/[\r\n\0]/g, '').trim()),
      fc.constantFrom(
        `Bearer ${KEY}`,
        KEY,
        'Bearer',
        'Bearer  ',
        `Basic ${KEY}`,
        '*/*',
        'text/event-stream',
        'text/plain;q=0',
        'application/x-ndjson',
      ),
      fc.constantFrom('https://app.example.com', 'null', 'multipart/form-data; boundary=', 'application/json', '0', '-1', '99999999999'),
    );
    const headerName = fc.constantFrom(
      'Authorization',
      'X-API-Key',
      'Accept',
      'Origin',
      'X-Request-Id',
      'Last-Event-ID',
      'Content-Type',
      'X-Custom',
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...operations),
        fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }),
        query,
        fc.option(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 512 })), { nil: undefined }),
        async (operation, headers, search, body) => {
          const init: RequestInit = { method: operation.method, headers: new Headers() };
          for (const [name, value] of headers) (init.headers as Headers).append(name, value);
          if (operation.method === 'POST' && body !== undefined) init.body = body as string;
          const response = await fetch(`${secured.url}${operation.path}?message=x&${search}`, init);
          expect(response.headers.get('x-request-id')).toBeTruthy();
          await check(response);
        },
      ),
      { numRuns: 400 },
    );
  }, 90_000);
});
