import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { GenerationQuery } from '../src/routes/generate/generate.schemas';
import { type Harness, startHarness } from './helpers';

// Property: whatever a client sends, the answer is never a 5xx (Ollama is up and healthy here),
// and every error is JSON with a `detail`.
let h: Harness;
beforeAll(() => {
  h = startHarness();
});
afterAll(() => h.close());

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
    expect(JSON.parse(text).detail).toBeDefined();
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
});
