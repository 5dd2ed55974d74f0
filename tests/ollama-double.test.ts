import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type OllamaDouble, startOllamaDouble } from './ollama-double';

// The double is only worth what its fidelity is: these pin it to ../shared/ollama-api.md.
let o: OllamaDouble;
beforeAll(() => {
  o = startOllamaDouble([
    { name: 'llama3.2', tokens: ['a<b', '&c'] },
    { name: 'llava', capabilities: ['completion', 'vision'] },
    { name: 'tooly', capabilities: ['completion', 'tools'], toolCalls: [{ name: 'get_weather', arguments: { city: 'Tokyo' } }] },
    { name: 'thinker', capabilities: ['completion', 'thinking'], thinking: ['hm'], tokens: ['ok'] },
  ]);
});
afterAll(() => o.close());

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${o.url}${path}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers });

describe('Ollama test double: /api/chat (ollama-api.md section 2)', () => {
  const ndjson = async (response: Response) =>
    (await response.text())
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));

  test('streams message chunks, then a final line with an empty message and statistics (no context)', async () => {
    const lines = await ndjson(await post('/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }));
    expect(lines[0]).toMatchObject({ model: 'llama3.2', message: { role: 'assistant', content: 'a<b' }, done: false });
    expect(lines.at(-1)).toMatchObject({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', eval_count: 2 });
    expect(lines.at(-1)).not.toHaveProperty('context');
  });

  test('an empty or absent history is the load answer; a missing model is 400 (unlike generate)', async () => {
    const load = await post('/api/chat', { model: 'llama3.2', messages: [] });
    expect(load.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect((await load.json()) as object).toMatchObject({ done: true, done_reason: 'load', message: { role: 'assistant', content: '' } });
    const missing = await post('/api/chat', { messages: [] });
    expect(missing.status).toBe(400);
    expect((await missing.json()) as object).toEqual({ error: 'model is required' });
  });

  test('tool calls arrive in one chunk with empty content, ids call_ + 8 characters, arguments an object', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather' } }];
    const lines = await ndjson(await post('/api/chat', { model: 'tooly', messages: [{ role: 'user', content: 'w?' }], tools }));
    const calls = lines.filter((line) => line.message?.tool_calls);
    expect(calls).toHaveLength(1);
    expect(calls[0].message.content).toBe('');
    expect(calls[0].message.tool_calls[0]).toEqual({
      id: expect.stringMatching(/^call_[a-z0-9]{8}$/),
      function: { index: 0, name: 'get_weather', arguments: { city: 'Tokyo' } },
    });
    const refused = await post('/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'w?' }], tools });
    expect(refused.status).toBe(400);
    expect((await refused.json()) as object).toEqual({ error: 'registry.ollama.ai/library/llama3.2:latest does not support tools' });
  });

  test('thinking chunks come first; think on a model without the capability, or a bad value, is a 400', async () => {
    const lines = await ndjson(await post('/api/chat', { model: 'thinker', messages: [{ role: 'user', content: 'x' }] }));
    expect(lines[0].message).toEqual({ role: 'assistant', content: '', thinking: 'hm' });
    expect(lines[1].message.content).toBe('ok');
    const whole = await post('/api/chat', { model: 'thinker', messages: [{ role: 'user', content: 'x' }], stream: false });
    expect(((await whole.json()) as { message: object }).message).toEqual({ role: 'assistant', content: 'ok', thinking: 'hm' });
    const no = await post('/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], think: true });
    expect((await no.json()) as object).toEqual({ error: '"llama3.2" does not support thinking' });
    const bad = await post('/api/chat', { model: 'thinker', messages: [{ role: 'user', content: 'x' }], think: 'extreme' });
    expect(bad.status).toBe(400);
  });
});

describe('Ollama test double', () => {
  test('streams NDJSON with Go escaping, and a final done line with statistics', async () => {
    const response = await post('/api/generate', { model: 'llama3.2', prompt: 'hi' });
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const text = await response.text();
    expect(text).toContain('"response":"a\\u003cb"');
    expect(text).toContain('"response":"\\u0026c"');
    const last = JSON.parse(text.trim().split('\n').at(-1)!);
    expect(last).toMatchObject({ done: true, done_reason: 'stop', eval_count: 2 });
  });

  test('stream:false and the empty-prompt load answer are single objects with charset', async () => {
    const whole = await post('/api/generate', { model: 'llama3.2', prompt: 'hi', stream: false });
    expect(whole.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect((await whole.json()) as object).toMatchObject({ response: 'a<b&c', done: true });
    const load = await post('/api/generate', { model: 'llama3.2' });
    expect(load.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect((await load.json()) as object).toMatchObject({ done_reason: 'load', response: '' });
  });

  test("answers errors with Ollama's statuses and texts", async () => {
    const cases: [unknown, number, string][] = [
      ['', 400, 'missing request body'],
      ['x', 400, "invalid character 'x' looking for beginning of value"],
      ['{x', 400, "invalid character 'x' looking for beginning of object key string"],
      ['{"model":', 400, 'unexpected EOF'],
      [{ prompt: 'hi' }, 404, "model '' not found"],
      [{ model: 'nope', prompt: 'hi' }, 404, "model 'nope' not found"],
      [{ model: 'llama3.2', prompt: 'hi', keep_alive: '300' }, 400, 'time: missing unit in duration "300"'],
      [{ model: 'llama3.2', prompt: 'hi', images: ['data:image/png;base64,AAAA'] }, 400, 'illegal base64 data at input byte 4'],
      [{ model: 'llama3.2', prompt: 'hi', options: { temperature: '0.7' } }, 500, 'option "temperature" must be of type float32'],
      [{ model: 'llama3.2', prompt: 'hi', options: { stop: 'x' } }, 500, 'option "stop" must be of type array'],
    ];
    for (const [body, status, error] of cases) {
      const response = await post('/api/generate', body);
      expect(response.status).toBe(status);
      expect((await response.json()) as object).toEqual({ error });
    }
  });

  test('ignores removed options such as numa and low_vram', async () => {
    const response = await post('/api/generate', { model: 'llama3.2', prompt: 'hi', options: { numa: true, low_vram: false } });
    expect(response.status).toBe(200);
    await response.text();
  });

  test('answers 403 with an empty body to a foreign Host or any Origin', async () => {
    for (const headers of [{ Host: 'gpu.example.org' }, { Origin: 'https://app.example' }] as Record<string, string>[]) {
      const response = await fetch(`${o.url}/api/tags`, { headers });
      expect(response.status).toBe(403);
      expect(await response.text()).toBe('');
    }
  });

  test('unknown routes and wrong methods are text/plain, not JSON', async () => {
    const missing = await fetch(`${o.url}/api/nothing`);
    expect([missing.status, await missing.text()]).toEqual([404, '404 page not found']);
    const wrong = await fetch(`${o.url}/api/generate`);
    expect([wrong.status, await wrong.text()]).toEqual([405, '405 method not allowed']);
  });

  test('reports capabilities and pull progress', async () => {
    expect(((await (await post('/api/show', { model: 'llava' })).json()) as { capabilities: string[] }).capabilities).toContain('vision');
    expect((await post('/api/show', {})).status).toBe(400);
    o.registry.set('tiny', { layers: 2 });
    const lines = (await (await post('/api/pull', { model: 'tiny' })).text())
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines[0]).toEqual({ status: 'pulling manifest' });
    expect(lines.at(-1)).toEqual({ status: 'success' });
    const missing = await post('/api/pull', { model: 'ghost', stream: false });
    expect(missing.status).toBe(500);
    expect((await missing.json()) as object).toEqual({ error: 'pull model manifest: file does not exist' });
  });
});
