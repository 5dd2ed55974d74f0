import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { z } from 'zod';
import { imageHeader } from '../../fixtures/images';
import { type Harness, json, readChunks, sleep, startHarness, TINY_PNG } from '../../helpers';
import type { DoubleModel } from '../../ollama-double';

const MODELS: DoubleModel[] = [
  {
    name: 'llama3.2',
    capabilities: ['completion', 'tools'],
    tokens: ['The', ' sky', ' is', ' blue', '.'],
    toolCalls: [{ name: 'get_weather', arguments: { city: 'Tokyo' } }],
  },
  { name: 'qwen3', capabilities: ['completion', 'thinking'], thinking: ['Hmm', ', light'], tokens: ['Blue', '.'] },
  { name: 'llava', capabilities: ['completion', 'vision'], tokens: ['A', ' cat', '.'] },
  { name: 'slow', capabilities: ['completion'], tokens: Array.from({ length: 10 }, (_, i) => `t${i} `), tokenDelayMs: 100 },
  { name: 'structured', capabilities: ['completion'], structured: { city: 'Tokyo', temperature: 11, sunny: false } },
  { name: 'broken', capabilities: ['completion'], tokens: ['a', 'b', 'c'], errorAfterTokens: 1 },
];

let h: Harness;
const lines: Record<string, unknown>[] = [];
beforeAll(() => {
  h = startHarness({ MINATO_MAX_IMAGE_BYTES: String(64 * 1024), MINATO_MAX_IMAGES: '2' }, MODELS, {
    log: (line) => lines.push(JSON.parse(line)),
  });
});
afterAll(() => h.close());

const post = (path: string, body: unknown, init: RequestInit & { headers?: Record<string, string> } = {}) =>
  fetch(`${h.url}${path}`, {
    ...init,
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...init.headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
const sentToOllama = () => h.ollama.last('/api/chat')?.body as Record<string, unknown>;
const chats = () => h.ollama.requests.filter((r) => r.path === '/api/chat').length;

describe('POST /chat/{model_name}', () => {
  test('sends the history as it is, the parameters as options, nothing left out sent; answers with the message and statistics', async () => {
    const messages = [
      { role: 'system', content: 'Answer in one sentence.' },
      { role: 'user', content: 'Why is the sky blue?' },
      { role: 'assistant', content: 'Rayleigh scattering.' },
      { role: 'user', content: 'And at sunset?' },
    ];
    const response = await post('/chat/llama3.2', { messages, temperature: 0.2, seed: 7, stop: 'END', keep_alive: '5m' });
    expect(response.status).toBe(200);
    expect(sentToOllama()).toEqual({
      model: 'llama3.2',
      messages,
      keep_alive: '5m',
      options: { temperature: 0.2, seed: 7, stop: ['END'] },
      stream: true,
    });
    const answer = await json(response);
    expect(answer).toMatchObject({
      model: 'llama3.2',
      response: 'The sky is blue.',
      message: { role: 'assistant', content: 'The sky is blue.' },
      done: true,
      done_reason: 'stop',
      eval_count: 5,
    });
    expect(answer.message.tool_calls).toBeUndefined();
    expect(response.headers.get('x-queue-position')).toBe('0');

    await post('/chat/llama3.2', { messages: [{ role: 'user', content: 'Hi' }] });
    expect(sentToOllama()).toEqual({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hi' }], stream: true });
  });

  test('a tool round trip: the call arrives whole, the result goes back as a tool message, the conversation continues', async () => {
    const tools = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'The weather in a city',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
      },
    ];
    const question = { role: 'user', content: 'What is the weather in Tokyo?' };
    const first = await json(await post('/chat/llama3.2', { messages: [question], tools }));
    expect(first.message.content).toBe('');
    expect(first.message.tool_calls).toEqual([
      { id: expect.stringMatching(/^call_[a-z0-9]{8}$/), function: { index: 0, name: 'get_weather', arguments: { city: 'Tokyo' } } },
    ]);
    expect(sentToOllama().tools).toEqual(tools);

    const history = [question, first.message, { role: 'tool', tool_name: 'get_weather', content: '11 degrees celsius' }];
    const second = await post('/chat/llama3.2', { messages: history });
    expect(second.status).toBe(200);
    expect(sentToOllama().messages).toEqual(history);
    expect((await json(second)).response).toBe('The sky is blue.');
  });

  test('structured output: a zod schema as format, the answer parsed back with the same schema', async () => {
    const Weather = z.object({ city: z.string(), temperature: z.number(), sunny: z.boolean() });
    const format = z.toJSONSchema(Weather);
    const response = await post('/chat/structured', { messages: [{ role: 'user', content: 'Weather in Tokyo as JSON' }], format });
    expect(sentToOllama().format).toEqual(format);
    const weather = Weather.parse(JSON.parse((await json(response)).response));
    expect(weather).toEqual({ city: 'Tokyo', temperature: 11, sunny: false });
    await post('/chat/structured', { messages: [{ role: 'user', content: 'JSON please' }], format: 'json' });
    expect(sentToOllama().format).toBe('json');
  });

  test('thinking: joined into message.thinking, and sent as asked', async () => {
    const answer = await json(await post('/chat/qwen3', { messages: [{ role: 'user', content: 'Why?' }], think: 'high' }));
    expect(answer.message).toEqual({ role: 'assistant', content: 'Blue.', thinking: 'Hmm, light' });
    expect(sentToOllama().think).toBe('high');
    const refused = await post('/chat/llama3.2', { messages: [{ role: 'user', content: 'Why?' }], think: true });
    expect(refused.status).toBe(400);
    expect(await json(refused)).toMatchObject({
      code: 'model_lacks_capability',
      detail: expect.stringContaining('does not support thinking'),
    });
  });

  test('an empty history loads the model (done_reason: load)', async () => {
    const answer = await json(await post('/chat/llama3.2', { messages: [] }));
    expect(answer).toMatchObject({ done: true, done_reason: 'load', response: '' });
  });

  test('images: base64, data: URLs and URL-safe base64 reach Ollama as standard base64 on their message', async () => {
    const standard = TINY_PNG.toString('base64');
    const gif = imageHeader('gif');
    const response = await post('/chat/llava', {
      messages: [
        { role: 'user', content: 'What is this?', images: [`data:image/png;base64,${standard}`] },
        { role: 'assistant', content: 'A pixel.' },
        { role: 'user', content: 'And this?', images: [Buffer.from(gif).toString('base64url')] },
      ],
    });
    expect(response.status).toBe(200);
    const sent = sentToOllama().messages as { images?: string[] }[];
    expect(sent[0]!.images).toEqual([standard]);
    expect(sent[2]!.images).toEqual([Buffer.from(gif).toString('base64')]);
  });

  test('images are refused before generating: not an image, too many, too large, or a model that cannot see', async () => {
    const before = chats();
    const user = (images: string[]) => ({ messages: [{ role: 'user', content: 'What is this?', images }] });
    const notImage = await post('/chat/llava', user([Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>').toString('base64')]));
    expect(notImage.status).toBe(415);
    expect((await json(notImage)).detail).toContain('messages[0].images[0]');
    const png = TINY_PNG.toString('base64');
    expect((await post('/chat/llava', user([png, png, png]))).status).toBe(413);
    const big = Buffer.concat([TINY_PNG, Buffer.alloc(70 * 1024)]).toString('base64');
    expect(await json(await post('/chat/llava', user([big])))).toMatchObject({ code: 'image_too_large' });
    const blind = await post('/chat/llama3.2', user([png]));
    expect(blind.status).toBe(400);
    expect(await json(blind)).toMatchObject({ code: 'model_without_vision', detail: expect.stringContaining('vision') });
    expect(chats()).toBe(before);
  });

  test("Ollama's answers map as on the other routes: not installed 404, tools unsupported 400 naming them, busy 503", async () => {
    const missing = await post('/chat/nosuch', { messages: [{ role: 'user', content: 'Hi' }] });
    expect(missing.status).toBe(404);
    expect((await json(missing)).detail).toContain('POST /install/nosuch');
    const tools = [{ type: 'function', function: { name: 'f' } }];
    const noTools = await post('/chat/qwen3', { messages: [{ role: 'user', content: 'Hi' }], tools });
    expect(noTools.status).toBe(400);
    expect(await json(noTools)).toMatchObject({
      code: 'model_lacks_capability',
      detail: expect.stringContaining('does not support tools'),
    });
    h.ollama.busy = true;
    try {
      const busy = await post('/chat/llama3.2', { messages: [{ role: 'user', content: 'Hi' }] });
      expect(busy.status).toBe(503);
      expect(busy.headers.get('retry-after')).toBeTruthy();
    } finally {
      h.ollama.busy = false;
    }
  });

  test("bad bodies are 4xx in Minato's shape, naming the problem", async () => {
    const cases: [unknown, number, unknown][] = [
      [{}, 422, { loc: ['body', 'messages'], msg: 'Field required', type: 'missing' }],
      [{ messages: [{ role: 'robot', content: 'x' }] }, 422, expect.objectContaining({ loc: ['body', 'messages', 0, 'role'] })],
      [{ messages: [], system: 'x' }, 422, { loc: ['body', 'system'], msg: 'Extra inputs are not permitted', type: 'extra_forbidden' }],
      [{ messages: [], temperature: 3 }, 422, expect.objectContaining({ loc: ['body', 'temperature'] })],
      [{ messages: [], think: 'extreme' }, 422, expect.objectContaining({ loc: ['body', 'think'] })],
      [{ messages: [], format: 42 }, 422, expect.objectContaining({ loc: ['body', 'format'] })],
    ];
    for (const [body, status, first] of cases) {
      const response = await post('/chat/llama3.2', body);
      expect({ body, status: response.status }).toEqual({ body, status });
      expect((await json(response)).detail[0]).toEqual(first);
    }
    const malformed = await post('/chat/llama3.2', '{"messages": [');
    expect(malformed.status).toBe(400);
    const notJson = await fetch(`${h.url}/chat/llama3.2`, { method: 'POST', body: 'hello', headers: { 'Content-Type': 'text/plain' } });
    expect(notJson.status).toBe(415);
    expect((await json(notJson)).detail).toContain('application/json');
  });

  test('a client that leaves a whole answer stops the generation at Ollama within a second', async () => {
    const controller = new AbortController();
    const pending = post('/chat/slow', { messages: [{ role: 'user', content: 'Hi' }] }, { signal: controller.signal }).catch(
      () => 'aborted',
    );
    await h.ollama.waitFor(() => h.ollama.last('/api/chat')?.body !== undefined && h.ollama.last('/api/chat')!.linesWritten > 0);
    controller.abort();
    expect(await pending).toBe('aborted');
    const startedAt = Date.now();
    await h.ollama.waitFor(() => h.ollama.last('/api/chat')!.aborted, 1000);
    expect(Date.now() - startedAt).toBeLessThan(1000);
    expect(h.ollama.last('/api/chat')!.completed).toBe(false);
  });

  test('metrics count the tokens, and the log line names the route and model', async () => {
    await post('/chat/llama3.2', { messages: [{ role: 'user', content: 'Count me' }] });
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/minato_generated_tokens_total\{model="llama3.2:latest"\} \d+/);
    expect(metrics).toContain('route="/chat/{model_name}"');
    const line = lines.findLast((entry) => entry.route === '/chat/{model_name}');
    expect(line).toMatchObject({ method: 'POST', model: 'llama3.2', status: 200 });
  });
});

describe('POST /stream/chat/{model_name}', () => {
  test("NDJSON by default: Ollama's chat lines as they are generated, read chunk by chunk", async () => {
    const sentAt = Date.now();
    const response = await post('/stream/chat/slow', { messages: [{ role: 'user', content: 'Count' }] });
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const { chunks, text } = await readChunks(response);
    const objects = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(
      objects
        .slice(0, -1)
        .map((o) => o.message.content)
        .join(''),
    ).toBe(MODELS[3]!.tokens!.join(''));
    expect(objects.at(-1)).toMatchObject({ done: true, message: { role: 'assistant', content: '' } });
    // The first token arrived long before the last (10 tokens, 100 ms apart): nothing was buffered.
    expect(chunks.length).toBeGreaterThan(5);
    expect(chunks[0]!.at - sentAt).toBeLessThan(500);
    expect(chunks.at(-1)!.at - chunks[0]!.at).toBeGreaterThan(600);
  });

  test('thinking chunks come before the content; tool calls arrive in one chunk', async () => {
    const thinking = await (await post('/stream/chat/qwen3', { messages: [{ role: 'user', content: 'Why?' }] })).text();
    const objects = thinking
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(objects[0].message.thinking).toBe('Hmm');
    expect(objects.findIndex((o) => o.message.content !== '')).toBeGreaterThan(1);
    const tools = [{ type: 'function', function: { name: 'get_weather' } }];
    const calls = await (await post('/stream/chat/llama3.2', { messages: [{ role: 'user', content: 'Weather?' }], tools })).text();
    const withCalls = calls
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
      .filter((o) => o.message?.tool_calls);
    expect(withCalls).toHaveLength(1);
    expect(withCalls[0].message.tool_calls[0].function).toEqual({ index: 0, name: 'get_weather', arguments: { city: 'Tokyo' } });
  });

  test('SSE with ids, and bare text deltas', async () => {
    const sse = await (
      await post('/stream/chat/llama3.2', { messages: [{ role: 'user', content: 'Hi' }] }, { headers: { Accept: 'text/event-stream' } })
    ).text();
    expect(sse).toStartWith('id: 1\ndata: {');
    expect(sse).toContain('"done":true');
    const text = await post(
      '/stream/chat/llama3.2',
      { messages: [{ role: 'user', content: 'Hi' }] },
      { headers: { Accept: 'text/plain' } },
    );
    expect(text.headers.get('content-type')).toStartWith('text/plain');
    expect(await text.text()).toBe('The sky is blue.');
  });

  test('an error after the first byte travels in-band, and a client that leaves stops Ollama within a second', async () => {
    const broken = await (await post('/stream/chat/broken', { messages: [{ role: 'user', content: 'Hi' }] })).text();
    expect(broken.trim().split('\n').at(-1)).toContain('"error"');
    const controller = new AbortController();
    const response = await post('/stream/chat/slow', { messages: [{ role: 'user', content: 'Hi' }] }, { signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    const startedAt = Date.now();
    await h.ollama.waitFor(() => h.ollama.last('/api/chat')!.aborted, 1000);
    expect(Date.now() - startedAt).toBeLessThan(1000);
  });

  test('the admission queue applies: an SSE chat that waits sees its place', async () => {
    const queued = startHarness({ MINATO_MAX_CONCURRENT_PER_MODEL: '1' }, MODELS);
    try {
      const running = fetch(`${queued.url}/stream/chat/slow`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'one' }] }),
      });
      await queued.ollama.waitFor(() => queued.ollama.streaming === 1);
      const waiting = await fetch(`${queued.url}/stream/chat/slow`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'two' }] }),
      });
      expect(waiting.headers.get('x-queue-position')).toBe('1');
      const { text } = await readChunks(waiting);
      expect(text).toStartWith('event: queued\ndata: {"position":1}\n\n');
      expect(text).toContain('"done":true');
      expect(queued.ollama.peakStreaming).toBe(1);
      await (await running).text();
      await sleep(10);
    } finally {
      await queued.close();
    }
  });
});
