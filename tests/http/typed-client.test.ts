import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { hc } from 'hono/client';
import type { AppType } from '../../src/app';
import { type Harness, startHarness, TINY_PNG } from '../helpers';

// hono/client typed from the app itself: tsc checks these calls (bunx tsc --noEmit covers tests/),
// and the test runs them against the real server.
let h: Harness;
const KEY = 'typed-client-key-0123456789';
const ADMIN = 'typed-client-admin-0123456789';
beforeAll(() => {
  h = startHarness({ MINATO_API_KEYS: `${KEY}, ${ADMIN} admin` });
});
afterAll(() => h.close());

describe('hc<AppType>() from hono/client', () => {
  test('a chat call is typed: its JSON body on the way in, its answer on the way out', async () => {
    const client = hc<AppType>(h.url, { headers: { 'X-API-Key': KEY } });
    const response = await client.chat[':model_name'].$post({
      param: { model_name: 'llama3.2' },
      json: { messages: [{ role: 'user', content: 'Why is the sky blue?' }], temperature: 0.2 },
    });
    expect(response.status).toBe(200);
    if (response.status !== 200) return;
    const answer = await response.json();
    // Typed fields: a typo here (answer.respons) fails the type check.
    const text: string = answer.response;
    const role: 'assistant' = answer.message.role;
    const tokens: number | undefined = answer.eval_count;
    expect({ text, role, tokens }).toEqual({ text: 'The sky is blue.', role: 'assistant', tokens: 5 });
  });

  test('the streamed route is reachable the same way; its body is read as a stream', async () => {
    const client = hc<AppType>(h.url, { headers: { 'X-API-Key': KEY } });
    const response = await client.stream.chat[':model_name'].$post(
      { param: { model_name: 'llama3.2' }, json: { messages: [{ role: 'user', content: 'Hi' }] } },
      { headers: { Accept: 'text/plain' } },
    );
    expect(await response.text()).toBe('The sky is blue.');
  });

  test('probes and the model list are typed too', async () => {
    const client = hc<AppType>(h.url, { headers: { 'X-API-Key': KEY } });
    const health = await client.health.$get();
    expect(health.status).toBe(200);
    const status: 'ok' = (await health.json()).status;
    expect(status).toBe('ok');
    const ready = await client.ready.$get();
    expect(ready.status).toBe(200);
    if (ready.status === 200) expect((await ready.json()).status).toBe('ready');
    const listed = await client.models_list.$get({ query: {} });
    expect(listed.status).toBe(200);
    if (listed.status !== 200) return;
    const models = (await listed.json()).models_list;
    const sizes: number[] = models.map((model) => model.size_mb);
    expect(models.map((model) => model.name)).toContain('llama3.2:latest');
    expect(sizes.every((size) => size >= 0)).toBe(true);
  });

  test('an answer and a stream on the query routes are typed: parameters, query and answer', async () => {
    const client = hc<AppType>(h.url, { headers: { 'X-API-Key': KEY } });
    const response = await client[':model_name'].$get({ param: { model_name: 'llama3.2' }, query: { message: 'Hi', temperature: '0.2' } });
    expect(response.status).toBe(200);
    if (response.status !== 200) return;
    const text: string = (await response.json()).response;
    expect(text).toBe('The sky is blue.');
    const stream = await client.stream[':model_name'].$get(
      { param: { model_name: 'llama3.2' }, query: { message: 'Hi' } },
      { headers: { Accept: 'text/plain' } },
    );
    expect(await stream.text()).toBe('The sky is blue.');
  });

  test('a vision answer is typed: the image as JSON base64, the answer back', async () => {
    const client = hc<AppType>(h.url, { headers: { 'X-API-Key': KEY } });
    // The route reads its own body (multipart or JSON, streamed): the upload goes as the request's body.
    const response = await client.vision[':model_name'].$post(
      { param: { model_name: 'llava' }, query: { message: 'What is this?' } },
      {
        headers: { 'Content-Type': 'application/json' },
        init: { body: JSON.stringify({ images: [TINY_PNG.toString('base64')] }) },
      },
    );
    expect(response.status).toBe(200);
    if (response.status !== 200) return;
    const text: string = (await response.json()).response;
    expect(text).toBe('A cat.');
  });

  test('an install is typed: its answer on the way out', async () => {
    h.ollama.registry.set('tinyllama', { layers: 1 });
    const admin = hc<AppType>(h.url, { headers: { 'X-API-Key': ADMIN } });
    const response = await admin.install[':model_name'].$post({ param: { model_name: 'tinyllama' }, query: {} });
    expect(response.status).toBe(200);
    if (response.status !== 200) return;
    // Typed as the route declares it: the wait-and-answer JSON, or a progress stream (Accept).
    const answer = await response.json();
    expect(typeof answer === 'object' && answer !== null && 'status' in answer ? answer.status : undefined).toBe('success');
    // An ordinary key may not install (refused by the route's scope, before the handler).
    const user = hc<AppType>(h.url, { headers: { 'X-API-Key': KEY } });
    expect((await user.install[':model_name'].$post({ param: { model_name: 'tinyllama' }, query: {} })).status).toBe(403);
  });
});

// Compile-time checks: a body that does not match the route's schema does not type-check.
async function _typeErrors() {
  const client = hc<AppType>('http://127.0.0.1:8000');
  // @ts-expect-error: `messages` is required
  await client.chat[':model_name'].$post({ param: { model_name: 'x' }, json: {} });
  // @ts-expect-error: an answer needs its `message`
  await client[':model_name'].$get({ param: { model_name: 'x' }, query: {} });
  // @ts-expect-error: the model list takes no path parameter
  await client.models_list.$get({ param: { model_name: 'x' } });
  // @ts-expect-error: a role the API does not have
  await client.chat[':model_name'].$post({ param: { model_name: 'x' }, json: { messages: [{ role: 'robot', content: 'x' }] } });
}
void _typeErrors;
