import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { embed, generateObject, generateText, jsonSchema, streamText, tool } from 'ai';
import { createOllama } from 'ollama-ai-provider-v2';
import { generatedTokens, type Harness, startHarness } from '../helpers';
import type { DoubleModel } from '../ollama-double';

// The Vercel AI SDK with its two ways to reach Ollama, unchanged, pointed at Minato (keys on):
// ollama-ai-provider-v2 on /api (it sends fields Ollama ignores), and @ai-sdk/openai-compatible on /v1.
const KEY = 'ai-sdk-key-0123456789abcd';
const ADMIN = 'ai-sdk-admin-0123456789a';
const MODELS: DoubleModel[] = [
  {
    name: 'llama3.2',
    capabilities: ['completion', 'tools'],
    tokens: ['The', ' sky', ' is', ' blue', '.'],
    toolCalls: [{ name: 'get_weather', arguments: { city: 'Tokyo' } }],
  },
  { name: 'structured', structured: { city: 'Tokyo', sunny: true } },
  { name: 'nomic-embed-text', capabilities: ['embedding'] },
];

let h: Harness;
beforeAll(() => {
  h = startHarness({ MINATO_API_KEYS: `${KEY} id=app, ${ADMIN} admin id=admin`, MINATO_RATE_LIMIT: '0' }, MODELS);
});
afterAll(() => h.close());

describe('AI SDK through Minato', () => {
  test('ollama-ai-provider-v2 (/api): generateText, streamText and embed; tokens counted', async () => {
    const ollama = createOllama({ baseURL: `${h.url}/api`, headers: { Authorization: `Bearer ${KEY}` } });
    const before = await generatedTokens(h.url, ADMIN, 'llama3.2');
    const { text } = await generateText({ model: ollama('llama3.2'), prompt: 'Why is the sky blue?', temperature: 0.2 });
    expect(text).toBe('The sky is blue.');
    // Fields Ollama ignores (it sends top-level `temperature`, `think`) are relayed as sent.
    expect(h.ollama.last('/api/chat')!.body).toMatchObject({ model: 'llama3.2', think: false });
    const streamed = streamText({ model: ollama('llama3.2'), prompt: 'Hi' });
    let joined = '';
    for await (const delta of streamed.textStream) joined += delta;
    expect(joined).toBe('The sky is blue.');
    expect((await streamed.usage).outputTokens).toBe(5);
    const { embedding } = await embed({ model: ollama.embedding('nomic-embed-text'), value: 'hello' });
    expect(embedding).toHaveLength(4);
    expect(await generatedTokens(h.url, ADMIN, 'llama3.2')).toBe(before + 10);
  });

  test('@ai-sdk/openai-compatible (/v1): generateText and streamText with usage', async () => {
    const provider = createOpenAICompatible({ name: 'minato', baseURL: `${h.url}/v1`, apiKey: KEY, includeUsage: true });
    const { text } = await generateText({ model: provider('llama3.2'), prompt: 'Why?' });
    expect(text).toBe('The sky is blue.');
    const streamed = streamText({ model: provider('llama3.2'), prompt: 'Hi' });
    let joined = '';
    for await (const delta of streamed.textStream) joined += delta;
    expect(joined).toBe('The sky is blue.');
    expect((await streamed.usage).outputTokens).toBe(5);
  });

  test('a wrong key is an error the SDK surfaces with its status', async () => {
    const ollama = createOllama({ baseURL: `${h.url}/api`, headers: { Authorization: 'Bearer wrong-key-0123456789abcdef' } });
    const failure = await generateText({ model: ollama('llama3.2'), prompt: 'Hi', maxRetries: 0 }).catch((error) => error);
    expect(failure.statusCode).toBe(401);
  });

  test('tools and structured output, on both providers', async () => {
    const ollama = createOllama({ baseURL: `${h.url}/api`, headers: { Authorization: `Bearer ${KEY}` } });
    const compatible = createOpenAICompatible({ name: 'minato', baseURL: `${h.url}/v1`, apiKey: KEY });
    const getWeather = tool({
      description: 'The weather in a city',
      inputSchema: jsonSchema<{ city: string }>({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
    });
    for (const model of [ollama('llama3.2'), compatible('llama3.2')]) {
      const { toolCalls } = await generateText({ model, prompt: 'Weather in Tokyo?', tools: { get_weather: getWeather } });
      expect(toolCalls.map((call) => [call.toolName, call.input])).toEqual([['get_weather', { city: 'Tokyo' }]]);
    }
    const schema = jsonSchema<{ city: string; sunny: boolean }>({
      type: 'object',
      properties: { city: { type: 'string' }, sunny: { type: 'boolean' } },
      required: ['city', 'sunny'],
    });
    const { object } = await generateObject({ model: ollama('structured'), schema, prompt: 'Weather as JSON' });
    expect(object).toEqual({ city: 'Tokyo', sunny: true });
  });

  test('a missing model is an error the SDK surfaces with its status', async () => {
    const ollama = createOllama({ baseURL: `${h.url}/api`, headers: { Authorization: `Bearer ${KEY}` } });
    const viaApi = await generateText({ model: ollama('nosuch'), prompt: 'Hi', maxRetries: 0 }).catch((error) => error);
    expect(viaApi.statusCode).toBe(404);
    const compatible = createOpenAICompatible({ name: 'minato', baseURL: `${h.url}/v1`, apiKey: KEY });
    const viaV1 = await generateText({ model: compatible('nosuch'), prompt: 'Hi', maxRetries: 0 }).catch((error) => error);
    expect(viaV1.statusCode).toBe(404);
    expect(viaV1.message).toContain('nosuch');
  });
});
