import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Harness, json, readChunks, sleep, startHarness } from '../../helpers';

let h: Harness;
beforeAll(() => {
  h = startHarness({ MINATO_STREAM_IDLE_TIMEOUT: '1', MINATO_FIRST_BYTE_TIMEOUT: '3' });
  h.ollama.models.set('slow', { name: 'slow', tokens: ['one', ' two', ' three', ' four'], tokenDelayMs: 250 });
  h.ollama.models.set('endless', { name: 'endless', tokens: Array.from({ length: 400 }, (_, i) => ` t${i}`), tokenDelayMs: 25 });
  h.ollama.models.set('cold', { name: 'cold', firstByteDelayMs: 1500 });
  h.ollama.models.set('frozen', { name: 'frozen', firstByteDelayMs: 60_000 });
  h.ollama.models.set('broken', { name: 'broken', tokens: ['a', 'b', 'c'], errorAfterTokens: 2 });
  h.ollama.models.set('dropped', { name: 'dropped', tokens: ['a', 'b', 'c'], dropAfterTokens: 2 });
  h.ollama.models.set('hung', { name: 'hung', tokens: ['a', 'b', 'c'], hangAfterTokens: 1 });
  h.ollama.models.set('crashing', { name: 'crashing', crashOnLoad: true });
  h.ollama.models.set('split', { name: 'split', tokens: ['<think>', ' a & b', ' "quoted"'], splitLines: true });
  h.ollama.models.set('thinker', { name: 'thinker', thinking: ['Hmm', ', sky'], tokens: ['Blue'] });
});
afterAll(() => h.close());

const get = (path: string, init?: RequestInit) => fetch(`${h.url}${path}`, init);

describe('GET /{model_name} — synchronous answer', () => {
  test("answers with the text and Ollama's final statistics", async () => {
    const response = await get('/llama3.2?message=Why%20is%20the%20sky%20blue%3F');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toStartWith('application/json');
    const body = await json(response);
    expect(body.response).toBe('The sky is blue.');
    expect(body).toMatchObject({ model: 'llama3.2', done: true, done_reason: 'stop', eval_count: 5 });
    expect(typeof body.total_duration).toBe('number');
    expect(typeof body.prompt_eval_count).toBe('number');
  });

  test("joins a thinking model's reasoning separately from its answer", async () => {
    const body = await json(await get('/thinker?message=why'));
    expect(body.response).toBe('Blue');
    expect(body.thinking).toBe('Hmm, sky');
  });

  test('answers many clients at once (the original served one synchronous call at a time)', async () => {
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 6 }, () => get('/slow?message=hi').then(json)));
    for (const answer of answers) expect(answer.response).toBe('one two three four');
    // Each answer takes about 1 s upstream; one at a time would take 6.
    expect(Date.now() - started).toBeLessThan(2500);
  });

  test('concurrent answers with characters split across chunks each come out whole', async () => {
    // Lines are cut in the middle by the double: long runs of 3- and 4-byte characters make sure
    // many cuts fall inside a character.
    const tokens = ['空'.repeat(40), '青い'.repeat(21), '🌏'.repeat(33), 'ü'.repeat(50), '。'.repeat(41)];
    h.ollama.models.set('multibyte', { name: 'multibyte', tokens, tokenDelayMs: 5, splitLines: true });
    const answers = await Promise.all(Array.from({ length: 8 }, () => get('/multibyte?message=hi').then(json)));
    for (const answer of answers) expect(answer.response).toBe(tokens.join(''));
  });

  test('forwards the prompt and only the parameters the client set', async () => {
    await get('/llama3.2?message=hi');
    expect(h.ollama.last('/api/generate')?.body).toEqual({ model: 'llama3.2', prompt: 'hi', stream: true });
  });

  test('sends every parameter with its real type', async () => {
    const query =
      'message=hi&system_prompt=Be%20brief&keep_alive=5m&numa=true&num_ctx=8192&num_keep=4&num_batch=512&low_vram=0&seed=21&temperature=0.7&num_predict=64&top_k=40&top_p=0.9&min_p=0.05&repeat_penalty=1.1&stop=%0A&stop=END';
    expect((await get(`/llama3.2?${query}`)).status).toBe(200);
    expect(h.ollama.last('/api/generate')?.body).toEqual({
      model: 'llama3.2',
      prompt: 'hi',
      stream: true,
      system: 'Be brief',
      keep_alive: '5m',
      options: {
        numa: true,
        num_ctx: 8192,
        num_keep: 4,
        num_batch: 512,
        low_vram: false,
        seed: 21,
        temperature: 0.7,
        num_predict: 64,
        top_k: 40,
        top_p: 0.9,
        min_p: 0.05,
        repeat_penalty: 1.1,
        stop: ['\n', 'END'],
      },
    });
  });

  test('keep_alive in seconds goes to Ollama as a number (Ollama rejects unitless strings)', async () => {
    for (const [value, sent] of [
      ['300', 300],
      ['-1', -1],
      ['0', 0],
      ['1h30m', '1h30m'],
    ] as const) {
      expect((await get(`/llama3.2?message=hi&keep_alive=${value}`)).status).toBe(200);
      expect((h.ollama.last('/api/generate')?.body as { keep_alive: unknown } | undefined)?.keep_alive).toBe(sent);
    }
  });

  test('a single stop sequence is still sent as the array Ollama requires', async () => {
    await get('/llama3.2?message=hi&stop=END');
    expect((h.ollama.last('/api/generate')?.body as { options: { stop: unknown } } | undefined)?.options.stop).toEqual(['END']);
  });

  test('an empty message preloads the model', async () => {
    const response = await get('/llama3.2?message=');
    expect(response.status).toBe(200);
    expect(await json(response)).toMatchObject({ done: true, done_reason: 'load', response: '' });
    const unload = await json(await get('/llama3.2?message=&keep_alive=0'));
    expect(unload.done_reason).toBe('unload');
  });

  test('model names with tags, namespaces and hosts, raw or percent-encoded', async () => {
    const raw = await get('/hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M?message=hi');
    expect(raw.status).toBe(200);
    expect((await json(raw)).response).toBe('Hi!');
    const encoded = await get('/hf.co%2Fbartowski%2FLlama-3.2-1B-Instruct-GGUF%3AQ4_K_M?message=hi');
    expect(encoded.status).toBe(200);
    expect((h.ollama.last('/api/generate')?.body as { model: string } | undefined)?.model).toBe(
      'hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M',
    );
  });
});

describe('validation errors', () => {
  const expect422 = async (path: string, field: string, type?: string) => {
    const before = h.ollama.requests.length;
    const response = await get(path);
    expect(response.status).toBe(422);
    const body = await json(response);
    expect(body.detail).toBeArray();
    expect(body.detail[0].loc).toEqual(field === 'model_name' ? ['path', field] : ['query', field]);
    expect(typeof body.detail[0].msg).toBe('string');
    if (type) expect(body.detail[0].type).toBe(type);
    expect(h.ollama.requests.length).toBe(before); // nothing reached Ollama
  };

  test('a missing message is FastAPI\'s "Field required"', async () => {
    await expect422('/llama3.2', 'message', 'missing');
    const body = await json(await get('/llama3.2'));
    expect(body.detail[0].msg).toBe('Field required');
  });
  test('temperature must be a number from 0 to 1', async () => {
    await expect422('/llama3.2?message=hi&temperature=1.5', 'temperature');
    await expect422('/llama3.2?message=hi&temperature=-0.1', 'temperature');
    await expect422('/llama3.2?message=hi&temperature=warm', 'temperature');
    expect((await get('/llama3.2?message=hi&temperature=0.7')).status).toBe(200);
  });
  test('integers are integers', async () => {
    await expect422('/llama3.2?message=hi&num_ctx=4096.5', 'num_ctx');
    await expect422('/llama3.2?message=hi&num_ctx=', 'num_ctx');
    await expect422('/llama3.2?message=hi&num_batch=0', 'num_batch');
    await expect422('/llama3.2?message=hi&seed=abc', 'seed');
  });
  test('booleans accept true/false/1/0 only', async () => {
    await expect422('/llama3.2?message=hi&numa=yes', 'numa');
    expect((await get('/llama3.2?message=hi&numa=1&low_vram=false')).status).toBe(200);
  });
  test('a stop sequence cannot be empty', async () => {
    await expect422('/llama3.2?message=hi&stop=', 'stop');
  });
  test('keep_alive must be seconds or a duration', async () => {
    await expect422('/llama3.2?message=hi&keep_alive=soon', 'keep_alive');
    await expect422('/llama3.2?message=hi&keep_alive=5 minutes', 'keep_alive');
  });
  test('model names Ollama could never accept', async () => {
    await expect422('/bad%20name?message=hi', 'model_name');
    await expect422('/stream/a/..%2F..%2Fetc?message=hi', 'model_name');
    await expect422('/stream/-leading-dash?message=hi', 'model_name');
    await expect422(`/stream/${'a'.repeat(600)}?message=hi`, 'model_name');
  });
});

describe('upstream errors', () => {
  test('an unknown model is a 404 that points at /install', async () => {
    const response = await get('/nosuchmodel?message=hi');
    expect(response.status).toBe(404);
    const body = await json(response);
    expect(body.detail).toContain("'nosuchmodel'");
    expect(body.detail).toContain('POST /install/nosuchmodel');
  });
  test("Ollama's 400 is a 400 with its message", async () => {
    const response = await get('/nomic-embed-text?message=hi');
    expect(response.status).toBe(400);
    expect((await json(response)).detail).toContain('does not support generate');
  });
  test("Ollama's full queue is a 503 with Retry-After", async () => {
    h.ollama.busy = true;
    try {
      for (const path of ['/llama3.2?message=hi', '/stream/llama3.2?message=hi']) {
        const response = await get(path);
        expect(response.status).toBe(503);
        expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
        expect((await json(response)).detail).toContain('busy');
      }
    } finally {
      h.ollama.busy = false;
    }
  });
  test('a runner that dies before the first byte is a 502 with its message', async () => {
    for (const path of ['/crashing?message=hi', '/stream/crashing?message=hi']) {
      const response = await get(path);
      expect(response.status).toBe(502);
      expect((await json(response)).detail).toContain('model runner has unexpectedly stopped');
    }
  });
  test('a failure in the middle of a synchronous answer is a 502, not a truncated 200', async () => {
    const response = await get('/broken?message=hi');
    expect(response.status).toBe(502);
    expect((await json(response)).detail).toContain('an error was encountered while running the model');
    const dropped = await get('/dropped?message=hi');
    expect(dropped.status).toBe(502);
  });
  test('no first byte before MINATO_FIRST_BYTE_TIMEOUT is a 504 that names the setting', async () => {
    const started = Date.now();
    const response = await get('/frozen?message=hi');
    expect(response.status).toBe(504);
    expect((await json(response)).detail).toContain('MINATO_FIRST_BYTE_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(5000);
    await h.ollama.waitFor(() => h.ollama.last('/api/generate')?.aborted === true);
  });
  test('Ollama down is a 502 within a second that names OLLAMA_HOST', async () => {
    const down = startHarness({ OLLAMA_HOST: 'http://127.0.0.1:9' });
    try {
      const started = Date.now();
      for (const path of ['/llama3.2?message=hi', '/stream/llama3.2?message=hi', '/models_list']) {
        const response = await fetch(`${down.url}${path}`);
        expect(response.status).toBe(502);
        expect((await json(response)).detail).toContain('OLLAMA_HOST');
      }
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      await down.close();
    }
  });
});

describe('GET /stream/{model_name} — streaming', () => {
  test("NDJSON by default, Ollama's bytes unchanged, with anti-buffering headers", async () => {
    const response = await get('/stream/split?message=hi');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    expect(response.headers.get('x-accel-buffering')).toBe('no');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    const text = await response.text();
    // Go's escaping survives byte for byte, and lines split across writes arrive whole.
    expect(text).toContain('"response":"\\u003cthink\\u003e"');
    expect(text).toContain('"response":" a \\u0026 b"');
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    const parsed = lines.map((line) => JSON.parse(line));
    expect(parsed.map((line) => line.response).join('')).toBe('<think> a & b "quoted"');
    expect(parsed.at(-1)).toMatchObject({ done: true, done_reason: 'stop' });
  });

  test('every chunk the client reads holds whole lines, even when Ollama splits them', async () => {
    const { chunks } = await readChunks(await get('/stream/split?message=hi'));
    for (const chunk of chunks) expect(chunk.text.endsWith('\n')).toBe(true);
  });

  test('each line reaches the client as Ollama emits it, not at the end', async () => {
    const started = Date.now();
    const { chunks } = await readChunks(await get('/stream/slow?message=hi'));
    const tokenChunks = chunks.filter((chunk) => chunk.text.includes('"done":false'));
    expect(tokenChunks.length).toBe(4);
    // Tokens are 250 ms apart upstream; they must arrive spread out the same way.
    const first = tokenChunks[0]!.at - started;
    const last = tokenChunks.at(-1)!.at - started;
    expect(first).toBeLessThan(600);
    expect(last - first).toBeGreaterThan(600);
    for (let i = 1; i < tokenChunks.length; i++) expect(tokenChunks[i]!.at - tokenChunks[i - 1]!.at).toBeGreaterThan(150);
  });

  test('Server-Sent Events on Accept: text/event-stream, one event per line', async () => {
    const response = await get('/stream/llama3.2?message=hi', { headers: { Accept: 'text/event-stream' } });
    expect(response.headers.get('content-type')).toStartWith('text/event-stream');
    const events = (await response.text()).split('\n\n').filter(Boolean);
    expect(events.length).toBe(6);
    for (const [index, event] of events.entries()) expect(event).toStartWith(`id: ${index + 1}\ndata: {`);
    expect(JSON.parse(events.at(-1)!.split('data: ')[1]!)).toMatchObject({ done: true });
  });

  test('an EventSource coming back after the stream ended gets 204 (stop), not a second generation', async () => {
    const before = h.ollama.requests.length;
    const response = await get('/stream/llama3.2?message=hi', { headers: { Accept: 'text/event-stream', 'Last-Event-ID': '6' } });
    expect(response.status).toBe(204);
    expect(h.ollama.requests.length).toBe(before);
  });

  test('bare text deltas on Accept: text/plain, as the original streamed', async () => {
    const response = await get('/stream/slow?message=hi', { headers: { Accept: 'text/plain' } });
    expect(response.headers.get('content-type')).toStartWith('text/plain');
    const { chunks, text } = await readChunks(response);
    expect(text).toBe('one two three four');
    expect(chunks.length).toBeGreaterThanOrEqual(4);
  });

  test('quality values decide the format', async () => {
    const response = await get('/stream/llama3.2?message=hi', { headers: { Accept: 'text/plain;q=0.5, text/event-stream' } });
    expect(response.headers.get('content-type')).toStartWith('text/event-stream');
    await response.text();
  });

  test('an empty message streams the single load line', async () => {
    const response = await get('/stream/llama3.2?message=');
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const text = await response.text();
    expect(text.endsWith('\n')).toBe(true);
    expect(JSON.parse(text)).toMatchObject({ done: true, done_reason: 'load' });
  });

  test("Ollama's mid-stream error line passes through unchanged and ends the stream", async () => {
    const text = await (await get('/stream/broken?message=hi')).text();
    const lines = text.trim().split('\n');
    expect(lines.length).toBe(3);
    expect(JSON.parse(lines[2]!)).toEqual({ error: 'an error was encountered while running the model: unexpected EOF' });
  });

  test('in SSE the error is an `event: error`', async () => {
    const text = await (await get('/stream/broken?message=hi', { headers: { Accept: 'text/event-stream' } })).text();
    expect(text).toContain('event: error\ndata: {"error":"an error was encountered while running the model: unexpected EOF"}');
  });

  test('in plain text the connection is aborted, so the client cannot mistake it for a full answer', async () => {
    const outcome = await get('/stream/broken?message=hi', { headers: { Accept: 'text/plain' } })
      .then((response) => response.text())
      .then(
        () => 'completed',
        () => 'aborted',
      );
    expect(outcome).toBe('aborted');
  });

  test('an upstream that drops the connection ends the stream promptly with an error line', async () => {
    const started = Date.now();
    const text = await (await get('/stream/dropped?message=hi')).text();
    expect(Date.now() - started).toBeLessThan(1000);
    const last = JSON.parse(text.trim().split('\n').at(-1)!);
    expect(last.error).toContain('Lost the connection to Ollama');
  });

  test('an upstream that goes silent is cut after MINATO_STREAM_IDLE_TIMEOUT, upstream aborted', async () => {
    const started = Date.now();
    const text = await (await get('/stream/hung?message=hi')).text();
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThan(900);
    expect(elapsed).toBeLessThan(3000);
    expect(JSON.parse(text.trim().split('\n').at(-1)!).error).toContain('MINATO_STREAM_IDLE_TIMEOUT');
    await h.ollama.waitFor(() => h.ollama.last('/api/generate')?.aborted === true);
  });
});

describe('cancellation', () => {
  test('a client that leaves mid-stream stops the generation upstream within a second', async () => {
    const controller = new AbortController();
    const response = await get('/stream/endless?message=hi', { signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    await reader.read();
    const record = h.ollama.last('/api/generate')!;
    expect(record.aborted).toBe(false);
    controller.abort();
    const abortedAt = Date.now();
    await h.ollama.waitFor(() => record.aborted, 1000);
    expect(record.abortedAt! - abortedAt).toBeLessThan(1000);
    expect(record.completed).toBe(false);
    expect(record.linesWritten).toBeLessThan(100);
  });

  test('a client that leaves while the model loads aborts the upstream request', async () => {
    const controller = new AbortController();
    const pending = get('/stream/cold?message=hi', { signal: controller.signal }).catch(() => undefined);
    await h.ollama.waitFor(() => h.ollama.last('/api/generate')?.body !== undefined);
    const record = h.ollama.last('/api/generate')!;
    controller.abort();
    await pending;
    await h.ollama.waitFor(() => record.aborted, 1000);
    expect(record.completed).toBe(false);
  });

  test('a client that leaves a synchronous call stops the generation', async () => {
    const controller = new AbortController();
    const pending = get('/endless?message=hi', { signal: controller.signal }).catch(() => undefined);
    await h.ollama.waitFor(() => (h.ollama.last('/api/generate')?.linesWritten ?? 0) > 2);
    const record = h.ollama.last('/api/generate')!;
    controller.abort();
    await pending;
    await h.ollama.waitFor(() => record.aborted, 1000);
    expect(record.completed).toBe(false);
  });

  test('the sidecar keeps serving after clients leave', async () => {
    const response = await get('/llama3.2?message=hi');
    expect(response.status).toBe(200);
    await sleep(0);
  });
});

describe('the whole answer', () => {
  test("leaves out Ollama's deprecated `context` token array (no route takes it back)", async () => {
    const h = startHarness();
    try {
      const body = await json(await fetch(`${h.url}/llama3.2?message=hi`));
      expect(body.response).toBe('The sky is blue.');
      expect(body.done_reason).toBe('stop');
      expect(body).not.toHaveProperty('context');
      // A stream relays Ollama's bytes unchanged, its final line included.
      const streamed = await (await fetch(`${h.url}/stream/llama3.2?message=hi`)).text();
      expect(streamed).toContain('"context":[');
    } finally {
      await h.close();
    }
  });
});
