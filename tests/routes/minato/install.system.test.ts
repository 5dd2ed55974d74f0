import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Harness, json, readChunks, startHarness } from '../../helpers';

let h: Harness;
beforeAll(() => {
  h = startHarness();
  h.ollama.registry.set('qwen3:0.6b', { layers: 3 });
  h.ollama.registry.set('slowpull', { layers: 4, tickDelayMs: 200 });
  h.ollama.registry.set('hugepull', { layers: 1000, tickDelayMs: 20 });
});
afterAll(() => h.close());

const install = (model: string, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${h.url}/install/${model}`, { method: 'POST', headers, signal });

describe('POST /install/{model_name}', () => {
  test('waits for the pull and answers {"status": "success"} (the original contract)', async () => {
    const response = await install('qwen3:0.6b');
    expect(response.status).toBe(200);
    expect(await json(response)).toEqual({ status: 'success' });
    expect(h.ollama.last('/api/pull')?.body).toEqual({ model: 'qwen3:0.6b', stream: true });
    const list = await json(await fetch(`${h.url}/models_list`));
    expect(list.models_list.map((model: { name: string }) => model.name)).toContain('qwen3:0.6b');
  });

  test('a model the registry does not have is a 404, not a 200', async () => {
    const response = await install('no-such-model:7b');
    expect(response.status).toBe(404);
    const body = await json(response);
    expect(body.detail).toContain('does not exist');
    expect(body.code).toBe('model_not_found');
  });

  test('Accept: application/x-ndjson streams progress lines as they come', async () => {
    const started = Date.now();
    const response = await install('slowpull', { Accept: 'application/x-ndjson' });
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const { chunks, text } = await readChunks(response);
    const lines = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines[0]).toEqual({ status: 'pulling manifest' });
    expect(lines.at(-1)).toEqual({ status: 'success' });
    const progress = lines.filter((line) => typeof line.completed === 'number');
    expect(progress.length).toBe(4);
    expect(progress.at(-1).completed).toBe(progress.at(-1).total);
    // The first progress arrives long before the pull ends.
    expect(chunks[0]!.at - started).toBeLessThan(400);
    expect(chunks.at(-1)!.at - chunks[0]!.at).toBeGreaterThan(500);
  });

  test('Accept: text/event-stream streams progress as SSE; a missing model ends with event: error', async () => {
    const ok = await install('qwen3:0.6b', { Accept: 'text/event-stream' });
    expect(ok.headers.get('content-type')).toStartWith('text/event-stream');
    expect(await ok.text()).toContain('data: {"status":"success"}');
    const missing = await (await install('nope', { Accept: 'text/event-stream' })).text();
    expect(missing).toContain('event: error\ndata: {"error":"pull model manifest: file does not exist"}');
  });

  test('a client that leaves cancels the pull upstream', async () => {
    const controller = new AbortController();
    const pending = install('hugepull', {}, controller.signal).catch(() => undefined);
    await h.ollama.waitFor(() => (h.ollama.last('/api/pull')?.linesWritten ?? 0) > 2);
    const record = h.ollama.last('/api/pull')!;
    controller.abort();
    await pending;
    await h.ollama.waitFor(() => record.aborted, 1000);
    expect(record.completed).toBe(false);
  });

  test('silence during a pull is judged by MINATO_PULL_IDLE_TIMEOUT, not the answer deadline', async () => {
    const pulls = startHarness({ MINATO_STREAM_IDLE_TIMEOUT: '1', MINATO_PULL_IDLE_TIMEOUT: '2' });
    try {
      pulls.ollama.registry.set('verifying', { layers: 1, tickDelayMs: 1500 });
      pulls.ollama.registry.set('stuck', { layers: 1, tickDelayMs: 5000 });
      const slow = await fetch(`${pulls.url}/install/verifying`, { method: 'POST' });
      expect(await json(slow)).toEqual({ status: 'success' });
      const stuck = await fetch(`${pulls.url}/install/stuck`, { method: 'POST' });
      expect(stuck.status).toBe(504);
      expect((await json(stuck)).detail).toContain('MINATO_PULL_IDLE_TIMEOUT');
    } finally {
      await pulls.close();
    }
  });

  test('an invalid name is a 422 before Ollama is called', async () => {
    const before = h.ollama.requests.length;
    const response = await install('bad%20name');
    expect(response.status).toBe(422);
    expect(h.ollama.requests.length).toBe(before);
  });
});
