import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import OpenAI from 'openai';
import { generatedTokens, type Harness, startHarness } from '../helpers';
import type { DoubleModel } from '../ollama-double';

// The openai SDK, unchanged, pointed at Minato's /v1 (keys on) in front of the Ollama double's /v1.
const USER = 'openai-user-0123456789ab';
const ADMIN = 'openai-admin-0123456789a';
const MODELS: DoubleModel[] = [
  {
    name: 'llama3.2',
    capabilities: ['completion', 'tools'],
    tokens: ['The', ' sky', ' is', ' blue', '.'],
    toolCalls: [{ name: 'get_weather', arguments: { city: 'Tokyo' } }],
  },
  { name: 'structured', structured: { city: 'Tokyo', sunny: true } },
  { name: 'nomic-embed-text', capabilities: ['embedding'] },
  { name: 'slow', tokens: Array.from({ length: 50 }, (_, i) => `t${i} `), tokenDelayMs: 50 },
];

let h: Harness;
let client: OpenAI;
beforeAll(() => {
  h = startHarness({ MINATO_API_KEYS: `${USER} id=user, ${ADMIN} admin id=admin`, MINATO_RATE_LIMIT: '0' }, MODELS);
  client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: USER, maxRetries: 0 });
});
afterAll(() => h.close());

describe('the openai SDK through Minato /v1', () => {
  test('chat completions, whole and streamed; tokens counted even when the client asked for no usage', async () => {
    const before = await generatedTokens(h.url, ADMIN, 'llama3.2');
    const whole = await client.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why?' }] });
    expect(whole.choices[0]!.message.content).toBe('The sky is blue.');
    let text = '';
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of await client.chat.completions.create({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
    })) {
      chunks.push(chunk);
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe('The sky is blue.');
    // The usage chunk Minato asked for is not handed to a client that did not ask for it.
    expect(chunks.some((chunk) => chunk.choices.length === 0)).toBe(false);
    expect(h.ollama.last('/v1/chat/completions')!.body).toMatchObject({ stream_options: { include_usage: true } });
    expect(await generatedTokens(h.url, ADMIN, 'llama3.2')).toBe(before + 10);
  });

  test('a client that asks for usage gets it', async () => {
    let usage: OpenAI.CompletionUsage | undefined | null;
    const stream = await client.chat.completions.create({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage).toMatchObject({ completion_tokens: 5 });
  });

  test('tools, structured output, models and embeddings (base64 by default)', async () => {
    const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
    ];
    const called = await client.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'Weather?' }], tools });
    const call = called.choices[0]!.message.tool_calls![0]!;
    expect(call.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ city: 'Tokyo' });
    const structured = await client.chat.completions.create({
      model: 'structured',
      messages: [{ role: 'user', content: 'JSON' }],
      response_format: { type: 'json_object' },
    });
    expect(JSON.parse(structured.choices[0]!.message.content!)).toEqual({ city: 'Tokyo', sunny: true });
    const models = await client.models.list();
    expect(models.data.map((model) => model.id)).toContain('llama3.2:latest');
    expect((await client.models.retrieve('llama3.2:latest')).id).toBe('llama3.2:latest');
    const embedding = await client.embeddings.create({ model: 'nomic-embed-text', input: ['a', 'bb'] });
    expect(embedding.data).toHaveLength(2);
    expect(Math.hypot(...embedding.data[0]!.embedding)).toBeCloseTo(1, 5);
    expect(h.ollama.last('/v1/embeddings')!.body).toMatchObject({ encoding_format: 'base64' });
  });

  test('no key, a wrong scope, a missing model: errors the SDK reports with their status and message', async () => {
    const anonymous = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'not-a-key-0123456789abc', maxRetries: 0 });
    const unauthorized = await anonymous.models.list().catch((error) => error);
    expect(unauthorized).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(unauthorized.message).toContain('not valid');
    const missing = await client.chat.completions
      .create({ model: 'nosuch', messages: [{ role: 'user', content: 'Hi' }] })
      .catch((error) => error);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect(missing.message).toContain('nosuch');
  });

  test("aborting a stream stops Ollama's generation within a second", async () => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'slow', messages: [{ role: 'user', content: 'Count' }], stream: true },
      { signal: controller.signal },
    );
    let parts = 0;
    // The SDK ends the iteration (quietly, or with an abort error) once the signal fires.
    await (async () => {
      for await (const _ of stream) if (++parts === 3) controller.abort();
    })().catch(() => {});
    expect(parts).toBe(3);
    const startedAt = Date.now();
    await h.ollama.waitFor(() => h.ollama.last('/v1/chat/completions')!.aborted, 1000);
    expect(Date.now() - startedAt).toBeLessThan(1000);
  });
});
