import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Ollama } from 'ollama';
import { generatedTokens, type Harness, sleep, startHarness } from '../helpers';
import type { DoubleModel } from '../ollama-double';

// The `ollama` npm package, unchanged, pointed at Minato (keys on) in front of the Ollama double:
// a user changes `host` and adds a key, and everything keeps working, behind Minato's protections.
const USER = 'ollama-js-user-0123456789';
const ADMIN = 'ollama-js-admin-0123456789';
const MODELS: DoubleModel[] = [
  {
    name: 'llama3.2',
    capabilities: ['completion', 'tools'],
    tokens: ['The', ' sky', ' is', ' blue', '.'],
    toolCalls: [{ name: 'get_weather', arguments: { city: 'Tokyo' } }],
  },
  { name: 'structured', capabilities: ['completion'], structured: { city: 'Tokyo', sunny: true } },
  { name: 'nomic-embed-text', capabilities: ['embedding'] },
  { name: 'slow', tokens: Array.from({ length: 50 }, (_, i) => `t${i} `), tokenDelayMs: 50 },
];

let h: Harness;
let user: Ollama;
let admin: Ollama;
beforeAll(() => {
  h = startHarness({ MINATO_API_KEYS: `${USER} id=user, ${ADMIN} admin id=admin`, MINATO_RATE_LIMIT: '0' }, MODELS);
  h.ollama.registry.set('tinyllama', { layers: 2 });
  user = new Ollama({ host: h.url, headers: { Authorization: `Bearer ${USER}` } });
  admin = new Ollama({ host: h.url, headers: { Authorization: `Bearer ${ADMIN}` } });
});
afterAll(() => h.close());

describe('ollama-js through Minato', () => {
  test('chat, whole and streamed; tokens counted in /metrics', async () => {
    const before = await generatedTokens(h.url, ADMIN, 'llama3.2');
    const whole = await user.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }] });
    expect(whole.message.content).toBe('The sky is blue.');
    let streamed = '';
    for await (const part of await user.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hi' }], stream: true })) {
      streamed += part.message.content;
    }
    expect(streamed).toBe('The sky is blue.');
    expect(await generatedTokens(h.url, ADMIN, 'llama3.2')).toBe(before + 10);
  });

  test('an image of a few hundred KB goes through (chat bodies have the chat limit, not 64 KiB); over the limit is a 413 as ollama-js reports it', async () => {
    const small = startHarness({ MINATO_API_KEYS: USER, MINATO_MAX_CHAT_BODY_BYTES: String(1024 * 1024) }, MODELS);
    try {
      const client = new Ollama({ host: small.url, headers: { Authorization: `Bearer ${USER}` } });
      const image = Buffer.alloc(300 * 1024, 7).toString('base64');
      const answer = await client.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'What is this?', images: [image] }] });
      expect(answer.message.content).toBe('The sky is blue.');
      expect((small.ollama.last('/api/chat')!.body as { messages: { images: string[] }[] }).messages[0]!.images[0]).toBe(image);
      const huge = Buffer.alloc(2 * 1024 * 1024, 7).toString('base64');
      const refused = await client
        .chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'x', images: [huge] }] })
        .catch((error) => error);
      expect(refused.status_code).toBe(413);
      expect(refused.message).toContain('at most');
    } finally {
      await small.close();
    }
  });

  test('tools and structured output', async () => {
    const tools = [
      {
        type: 'function',
        function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
      },
    ];
    const answer = await user.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Weather in Tokyo?' }], tools });
    expect(answer.message.tool_calls?.[0]?.function).toEqual({ index: 0, name: 'get_weather', arguments: { city: 'Tokyo' } } as never);
    const structured = await user.chat({ model: 'structured', messages: [{ role: 'user', content: 'JSON' }], format: { type: 'object' } });
    expect(JSON.parse(structured.message.content)).toEqual({ city: 'Tokyo', sunny: true });
  });

  test('generate, whole and streamed', async () => {
    expect((await user.generate({ model: 'llama3.2', prompt: 'Hi' })).response).toBe('The sky is blue.');
    let text = '';
    for await (const part of await user.generate({ model: 'llama3.2', prompt: 'Hi', stream: true })) text += part.response;
    expect(text).toBe('The sky is blue.');
  });

  test('list, ps, show, version and embed', async () => {
    expect((await user.list()).models.map((m) => m.name)).toContain('llama3.2:latest');
    expect((await user.ps()).models).toHaveLength(1);
    expect((await user.show({ model: 'llama3.2' })).capabilities).toContain('tools');
    expect((await user.version()).version).toBe('0.33.0-rc2');
    const { embeddings } = await user.embed({ model: 'nomic-embed-text', input: ['a', 'bb'] });
    expect(embeddings).toHaveLength(2);
    expect(Math.hypot(...embeddings[0]!)).toBeCloseTo(1, 5);
  });

  test('pull with progress needs an admin key; an ordinary key gets 403 as ollama-js reports it', async () => {
    const statuses: string[] = [];
    for await (const progress of await admin.pull({ model: 'tinyllama', stream: true })) statuses.push(progress.status);
    expect(statuses.at(-1)).toBe('success');
    const refused = await user.pull({ model: 'tinyllama' }).catch((error) => error);
    expect(refused.status_code).toBe(403);
    expect(refused.message).toContain('admin');
  });

  test("copy and delete (admin): Ollama's empty 200s pass through, and an ordinary key is refused", async () => {
    await admin.copy({ source: 'llama3.2', destination: 'llama-copy' });
    expect((await user.list()).models.map((m) => m.name)).toContain('llama-copy:latest');
    expect(((await user.delete({ model: 'llama-copy' }).catch((error) => error)) as { status_code: number }).status_code).toBe(403);
    await admin.delete({ model: 'llama-copy' });
    expect((await user.list()).models.map((m) => m.name)).not.toContain('llama-copy:latest');
  });

  test('no key is a 401, a missing model a 404, each with a readable message', async () => {
    const anonymous = new Ollama({ host: h.url });
    const unauthorized = await anonymous.list().catch((error) => error);
    expect(unauthorized.status_code).toBe(401);
    expect(unauthorized.message).toContain('API key');
    const missing = await user.chat({ model: 'nosuch', messages: [{ role: 'user', content: 'Hi' }] }).catch((error) => error);
    expect(missing.status_code).toBe(404);
    expect(missing.message).toContain("model 'nosuch' not found");
  });

  test('abort() stops the generation at Ollama within a second', async () => {
    const stream = await user.generate({ model: 'slow', prompt: 'Count', stream: true });
    let parts = 0;
    // ollama-js ends the iteration with an AbortError.
    const ended = await (async () => {
      for await (const _ of stream) if (++parts === 3) stream.abort();
    })().catch((error: Error) => error.name);
    expect(ended).toBe('AbortError');
    const startedAt = Date.now();
    await h.ollama.waitFor(() => h.ollama.last('/api/generate')!.aborted, 1000);
    expect(Date.now() - startedAt).toBeLessThan(1000);
    expect(h.ollama.last('/api/generate')!.completed).toBe(false);
    await sleep(10);
  });

  test('the queue applies: queue position on every generation, and the request log line names the key', async () => {
    const response = await fetch(`${h.url}/api/generate`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${USER}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'llama3.2', prompt: 'Hi', stream: false }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-queue-position')).toBe('0');
  });
});

describe('blobs (model files for /api/create)', () => {
  test('HEAD and POST /api/blobs/{digest}: admin only, streamed through to Ollama, digest checked by Ollama', async () => {
    const bytes = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 31) & 0xff);
    const digest = `sha256:${new Bun.CryptoHasher('sha256').update(bytes).digest('hex')}`;
    const as = (key: string, method: string, body?: Uint8Array) =>
      fetch(`${h.url}/api/blobs/${digest}`, { method, headers: { Authorization: `Bearer ${key}` }, body: body as Uint8Array<ArrayBuffer> });
    expect((await as(ADMIN, 'HEAD')).status).toBe(404);
    const refused = await as(USER, 'POST', bytes);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: string }).error).toContain('admin');
    expect((await as(ADMIN, 'POST', bytes)).status).toBe(201);
    expect((await as(ADMIN, 'HEAD')).status).toBe(200);
    const wrong = await fetch(`${h.url}/api/blobs/${digest.replace(/.$/, '0')}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ADMIN}` },
      body: bytes,
    });
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { error: string }).error).toBe('digest mismatch');
    const bad = await fetch(`${h.url}/api/blobs/not-a-digest`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ADMIN}` },
      body: 'x',
    });
    expect(bad.status).toBe(400);
  });
});
