import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { loadConfig } from '../../src/config';
import { startServer } from '../../src/server';
import { json, readChunks, TINY_PNG } from '../helpers';

// Runs only where a real Ollama is reachable: OLLAMA_TEST_HOST=127.0.0.1:11434 bun test tests/integration
// OLLAMA_TEST_MODEL picks the model (default: the smallest one Ollama has installed).
const host = process.env.OLLAMA_TEST_HOST;

describe.skipIf(!host)('against a real Ollama (OLLAMA_TEST_HOST)', () => {
  let url = '';
  let model = process.env.OLLAMA_TEST_MODEL ?? '';
  let stop = () => {};
  beforeAll(async () => {
    const { server } = startServer({ config: loadConfig({ OLLAMA_HOST: host }) }, { port: 0, hostname: '127.0.0.1' });
    url = `http://127.0.0.1:${server.port}`;
    stop = () => server.stop(true);
    if (!model) {
      const list = await json(await fetch(`${url}/models_list`));
      const smallest = [...list.models_list].sort((a, b) => a.size_mb - b.size_mb)[0];
      if (!smallest) throw new Error('Ollama has no models installed; set OLLAMA_TEST_MODEL and install it');
      model = smallest.name;
    }
  });
  afterAll(() => stop());

  test('/ready reports the version', async () => {
    const body = await json(await fetch(`${url}/ready`));
    expect(body.status).toBe('ready');
    expect(body.ollama.version).toMatch(/^\d+\.\d+/);
  });

  test('a synchronous answer with statistics', async () => {
    const body = await json(await fetch(`${url}/${model}?message=Say%20hi&num_predict=8&temperature=0`));
    expect(typeof body.response).toBe('string');
    expect(body.done).toBe(true);
    expect(body.eval_count).toBeGreaterThan(0);
  }, 300_000);

  test('a stream arrives line by line and ends with done', async () => {
    const { chunks, text } = await readChunks(await fetch(`${url}/stream/${model}?message=Count%20to%2010&num_predict=32`));
    expect(chunks.length).toBeGreaterThan(2);
    expect(JSON.parse(text.trim().split('\n').at(-1)!).done).toBe(true);
  }, 300_000);

  test('an unknown model is a 404 pointing at /install', async () => {
    const response = await fetch(`${url}/minato-no-such-model-xyz?message=hi`);
    expect(response.status).toBe(404);
    expect((await json(response)).detail).toContain('/install/');
  });

  test('SSE and plain text from the real thing', async () => {
    const sse = await (await fetch(`${url}/stream/${model}?message=Hi&num_predict=8`, { headers: { Accept: 'text/event-stream' } })).text();
    expect(sse).toStartWith('id: 1\ndata: {');
    const text = await fetch(`${url}/stream/${model}?message=Hi&num_predict=8`, { headers: { Accept: 'text/plain' } });
    expect(text.headers.get('content-type')).toStartWith('text/plain');
    await text.text();
  }, 300_000);

  // OLLAMA_TEST_VISION_MODEL names an installed model with the vision capability (e.g. llava).
  test.skipIf(!process.env.OLLAMA_TEST_VISION_MODEL)(
    'a vision answer about a tiny image',
    async () => {
      const form = new FormData();
      form.append('images', new Blob([TINY_PNG]), 'dot.png');
      const response = await fetch(`${url}/vision/${process.env.OLLAMA_TEST_VISION_MODEL}?message=What%20colour%3F&num_predict=16`, {
        method: 'POST',
        body: form,
      });
      expect(response.status).toBe(200);
      expect(typeof (await json(response)).response).toBe('string');
    },
    300_000,
  );

  test('preloading with an empty message', async () => {
    const body = await json(await fetch(`${url}/${model}?message=`));
    expect(body.done_reason).toBe('load');
  }, 300_000);
});
