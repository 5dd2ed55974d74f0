import { imageHeader } from '../../fixtures/images';
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Harness, json, readChunks, startHarness, TINY_PNG } from '../../helpers';

let h: Harness;
const MAX_IMAGE = 64 * 1024;
beforeAll(() => {
  h = startHarness({ MINATO_MAX_IMAGE_BYTES: String(MAX_IMAGE), MINATO_MAX_IMAGES: '3' });
  h.ollama.models.set('gemma-new-vision', {
    name: 'gemma-new-vision',
    capabilities: ['completion', 'vision'],
    tokens: ['Two', ' dogs'],
    tokenDelayMs: 150,
  });
});
afterAll(() => h.close());

const JPEG = imageHeader('jpeg');
const GIF = new TextEncoder().encode('GIF89a\x01\x00\x01\x00\x00\x00\x00;');

const form = (...files: Uint8Array[]) => {
  const data = new FormData();
  for (const [index, file] of files.entries()) data.append('images', new Blob([file as Uint8Array<ArrayBuffer>]), `image-${index}.png`);
  return data;
};

type Body = RequestInit['body'];

const post = (path: string, body: Body, headers: Record<string, string> = {}) =>
  fetch(`${h.url}${path}`, { method: 'POST', body, headers });
const postJson = (path: string, body: unknown) => post(path, JSON.stringify(body), { 'Content-Type': 'application/json' });
const sentImages = () => (h.ollama.last('/api/generate')?.body as { images?: string[] } | undefined)?.images;

/** Sends `opening` then endless `filler`; returns the response and how many bytes went out before it. */
async function endless(opening: string, filler: string, contentType = 'application/json') {
  let sent = 0;
  const chunk = new TextEncoder().encode(filler.repeat(16 * 1024));
  let first = true;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (first) {
        first = false;
        controller.enqueue(new TextEncoder().encode(opening));
      }
      if (sent > 64 * 1024 * 1024) return controller.close();
      sent += chunk.length;
      controller.enqueue(chunk);
      await new Promise((resolve) => setTimeout(resolve, 1));
    },
  });
  const response = await fetch(`${h.url}/vision/llava?message=hi`, {
    method: 'POST',
    body,
    headers: { 'Content-Type': contentType },
    duplex: 'half',
  } as RequestInit);
  return { response, sent };
}

describe('what a vision body may hold, refused before Ollama or a slot', () => {
  const generations = () => h.ollama.requests.filter((r) => r.path === '/api/generate').length;

  test('a JSON field other than images is a 422 as soon as its name is read, not after its value', async () => {
    const before = generations();
    const { response, sent } = await endless('{"junk": "', 'x');
    expect(response.status).toBe(422);
    expect(await json(response)).toEqual({
      detail: [{ loc: ['body', 'junk'], msg: expect.stringContaining('only "images"'), type: 'extra_forbidden' }],
      code: 'validation_error',
    });
    expect(sent).toBeLessThan(4 * 1024 * 1024);
    expect((await postJson('/vision/llava?message=hi', { images: [TINY_PNG.toString('base64')], prompt: 'x' })).status).toBe(422);
    expect(generations()).toBe(before);
  });

  test('base64 whose length is 1 mod 4 is a 422 (Ollama would refuse it after a slot was used)', async () => {
    const before = generations();
    const response = await postJson('/vision/llava?message=hi', { images: [`${TINY_PNG.toString('base64').replace(/=+$/, '')}AAA`] });
    expect(response.status).toBe(422);
    expect(JSON.stringify(await json(response))).toContain('not possible for base64');
    expect(generations()).toBe(before);
  });

  test('an image header cut short (a PNG signature alone) is a 415, in JSON and multipart', async () => {
    const signature = TINY_PNG.subarray(0, 8);
    const viaJson = await postJson('/vision/llava?message=hi', { images: [Buffer.from(signature).toString('base64')] });
    expect(viaJson.status).toBe(415);
    const viaForm = await post('/vision/llava?message=hi', form(signature));
    expect(viaForm.status).toBe(415);
    expect((await json(viaForm)).detail).toContain('complete');
  });

  test('JSON escapes writers use in base64 (\\/ from PHP, \\n line breaks) are read as base64', async () => {
    const standard = Buffer.from(GIF).toString('base64');
    const wrapped = `${standard.slice(0, 4)}\n${standard.slice(4)}`;
    const text = `{"images": [${JSON.stringify(wrapped).replaceAll('/', '\\/')}]}`;
    const response = await post('/vision/llava?message=hi', text, { 'Content-Type': 'application/json' });
    expect(response.status).toBe(200);
    expect(sentImages()).toEqual([standard]);
  });

  test('multipart fields besides images: their bytes count against MINATO_MAX_BODY_BYTES, their number is named when too many', async () => {
    const big = new FormData();
    big.append('note', 'x'.repeat(70 * 1024));
    big.append('images', new Blob([TINY_PNG]), 'a.png');
    const tooBig = await post('/vision/llava?message=hi', big);
    expect(tooBig.status).toBe(413);
    expect(await json(tooBig)).toMatchObject({ code: 'fields_too_large', detail: expect.stringContaining('MINATO_MAX_BODY_BYTES') });

    const many = new FormData();
    for (let i = 0; i < 100; i++) many.append(`field${i}`, 'x');
    many.append('images', new Blob([TINY_PNG]), 'a.png');
    const tooMany = await post('/vision/llava?message=hi', many);
    expect(tooMany.status).toBe(413);
    const body = await json(tooMany);
    expect(body.code).toBe('too_many_fields');
    expect(body.detail).toContain('form fields besides "images"');

    const few = form(TINY_PNG);
    few.append('note', 'a small field is fine, and ignored');
    expect((await post('/vision/llava?message=hi', few)).status).toBe(200);
  });
});

describe('POST /vision/{model_name}', () => {
  test('multipart files in the field `images` reach Ollama as base64', async () => {
    const response = await post('/vision/llava?message=What%20is%20this%3F', form(TINY_PNG, JPEG));
    expect(response.status).toBe(200);
    const body = await json(response);
    expect(body.response).toBe('A cat.');
    expect(body.done).toBe(true);
    expect(sentImages()).toEqual([TINY_PNG.toString('base64'), Buffer.from(JPEG).toString('base64')]);
    expect((h.ollama.last('/api/generate')?.body as { prompt: string } | undefined)?.prompt).toBe('What is this?');
  });

  test('JSON base64, data: URLs (prefix stripped) and URL-safe base64 all arrive as standard base64', async () => {
    const standard = TINY_PNG.toString('base64');
    const response = await postJson('/vision/llava?message=hi', {
      images: [standard, `data:image/png;base64,${standard}`, Buffer.from(GIF).toString('base64url')],
    });
    expect(response.status).toBe(200);
    expect(sentImages()).toEqual([standard, standard, Buffer.from(GIF).toString('base64')]);
  });

  test('a model is judged by its capabilities, not its name', async () => {
    expect((await post('/vision/gemma-new-vision?message=hi', form(TINY_PNG))).status).toBe(200);
    const refused = await post('/vision/llama3.2?message=hi', form(TINY_PNG));
    expect(refused.status).toBe(400);
    expect((await json(refused)).detail).toContain('vision');
  });

  test('capabilities are cached briefly: one /api/show for several requests', async () => {
    const shows = () =>
      h.ollama.requests.filter((request) => request.path === '/api/show' && (request.body as { model: string }).model === 'llava').length;
    await post('/vision/llava?message=hi', form(TINY_PNG));
    const before = shows();
    await post('/vision/llava?message=hi', form(TINY_PNG));
    await post('/vision/llava?message=hi', form(TINY_PNG));
    expect(shows()).toBe(before);
  });

  test('an unknown model is a 404 pointing at /install', async () => {
    const response = await post('/vision/nosuch?message=hi', form(TINY_PNG));
    expect(response.status).toBe(404);
    expect((await json(response)).detail).toContain('POST /install/nosuch');
  });

  test('files are checked by their bytes, not their declared type', async () => {
    const data = new FormData();
    data.append('images', new Blob(['#!/bin/sh\necho not an image\n'], { type: 'image/png' }), 'evil.png');
    const response = await post('/vision/llava?message=hi', data);
    expect(response.status).toBe(415);
    expect((await json(response)).detail).toContain('images[0]');
  });

  test('an image over MINATO_MAX_IMAGE_BYTES is a 413', async () => {
    const big = new Uint8Array(MAX_IMAGE + 1);
    big.set(TINY_PNG);
    const response = await post('/vision/llava?message=hi', form(big));
    expect(response.status).toBe(413);
    expect((await json(response)).detail).toContain('MINATO_MAX_IMAGE_BYTES');
    const asJson = await postJson('/vision/llava?message=hi', { images: [Buffer.from(big).toString('base64')] });
    expect(asJson.status).toBe(413);
  });

  test('more than MINATO_MAX_IMAGES images is a 413', async () => {
    const response = await post('/vision/llava?message=hi', form(TINY_PNG, TINY_PNG, TINY_PNG, TINY_PNG));
    expect(response.status).toBe(413);
    expect((await json(response)).detail).toContain('MINATO_MAX_IMAGES');
  });

  for (const [what, opening, filler, code] of [
    ['an image string', '{"images":["', 'A', 'image_too_large'],
    ['whitespace', '{', ' ', 'payload_too_large'],
  ] as const) {
    test(`an oversized chunked JSON upload (${what}) is refused while it is read, without waiting for the rest`, async () => {
      const { response, sent } = await endless(opening, filler);
      expect(response.status).toBe(413);
      expect((await json(response)).code).toBe(code);
      // Refused at the limit: nowhere near all 64 MiB was read.
      expect(sent).toBeLessThan(16 * 1024 * 1024);
    });
  }

  test('one oversized image in a multipart upload is refused as soon as that part passes the limit', async () => {
    const boundary = 'minato-test-boundary';
    const encoder = new TextEncoder();
    let sent = 0;
    const chunks = [
      encoder.encode(
        `--${boundary}\r\nContent-Disposition: form-data; name="images"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n`,
      ),
      TINY_PNG,
    ];
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = chunks.shift() ?? (sent < 8 * 1024 * 1024 ? new Uint8Array(16 * 1024) : undefined);
        if (!next) return controller.close();
        sent += next.length;
        controller.enqueue(next);
        await new Promise((resolve) => setTimeout(resolve, 1));
      },
    });
    const response = await fetch(`${h.url}/vision/llava?message=hi`, {
      method: 'POST',
      body,
      headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` },
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(413);
    // The image's own limit (64 KiB here), not the body's: refused long before the total.
    expect((await json(response)).code).toBe('image_too_large');
    expect(sent).toBeLessThan(2 * 1024 * 1024);
  });

  test('a Content-Length over the limit is refused before reading', async () => {
    const response = await fetch(`${h.url}/vision/llava?message=hi`, {
      method: 'POST',
      body: new Uint8Array(2 * 1024 * 1024),
      headers: { 'Content-Type': 'application/json' },
    });
    expect(response.status).toBe(413);
  });

  test('no images is a 422 naming the field', async () => {
    const response = await postJson('/vision/llava?message=hi', {});
    expect(response.status).toBe(422);
    expect((await json(response)).detail[0].loc).toEqual(['body', 'images']);
    expect((await post('/vision/llava?message=hi', new FormData())).status).toBe(422);
  });

  test('malformed bodies are 4xx with a JSON detail', async () => {
    const cases: [Body, Record<string, string>, number][] = [
      ['{not json', { 'Content-Type': 'application/json' }, 400],
      [JSON.stringify({ images: 'abc' }), { 'Content-Type': 'application/json' }, 422],
      [JSON.stringify({ images: ['***not base64***'] }), { 'Content-Type': 'application/json' }, 422],
      ['plain text', { 'Content-Type': 'text/plain' }, 415],
    ];
    for (const [body, headers, status] of cases) {
      const response = await post('/vision/llava?message=hi', body, headers);
      expect(response.status).toBe(status);
      const error = await json(response);
      expect(error.detail).toBeDefined();
      if (status === 415)
        expect(error).toMatchObject({ code: 'unsupported_media_type', detail: expect.stringContaining('multipart/form-data') });
    }
  });

  test('query validation applies as on the text routes', async () => {
    const response = await post('/vision/llava?temperature=2', form(TINY_PNG));
    expect(response.status).toBe(422);
    const locs = (await json(response)).detail.map((item: { loc: string[] }) => item.loc.join('.'));
    expect(locs).toContain('query.message');
    expect(locs).toContain('query.temperature');
  });
});

describe('POST /stream/vision/{model_name}', () => {
  test('streams the answer line by line', async () => {
    const started = Date.now();
    const response = await post('/stream/vision/gemma-new-vision?message=count', form(TINY_PNG));
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const { chunks, text } = await readChunks(response);
    const tokens = chunks.filter((chunk) => chunk.text.includes('"done":false'));
    expect(tokens.length).toBe(2);
    expect(tokens[1]!.at - tokens[0]!.at).toBeGreaterThan(100);
    expect(tokens[0]!.at - started).toBeLessThan(1000);
    expect(
      text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).response)
        .join(''),
    ).toBe('Two dogs');
  });

  test('negotiates SSE and plain text like the text routes', async () => {
    const sse = await post('/stream/vision/llava?message=hi', form(TINY_PNG), { Accept: 'text/event-stream' });
    expect(sse.headers.get('content-type')).toStartWith('text/event-stream');
    expect(await sse.text()).toStartWith('id: 1\ndata: {');
    const text = await post('/stream/vision/llava?message=hi', form(TINY_PNG), { Accept: 'text/plain' });
    expect(await text.text()).toBe('A cat.');
  });

  test('refuses a model without vision before streaming anything', async () => {
    const response = await post('/stream/vision/llama3.2?message=hi', form(TINY_PNG));
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toStartWith('application/json');
  });
});

describe('cancellation on the vision routes', () => {
  test('a client that leaves a streamed vision answer stops it upstream', async () => {
    h.ollama.models.set('long-vision', {
      name: 'long-vision',
      capabilities: ['completion', 'vision'],
      tokens: Array.from({ length: 200 }, () => ' x'),
      tokenDelayMs: 20,
    });
    const response = await post('/stream/vision/long-vision?message=hi', form(TINY_PNG));
    const reader = response.body!.getReader();
    await reader.read();
    const record = h.ollama.last('/api/generate')!;
    await reader.cancel();
    await h.ollama.waitFor(() => record.aborted, 1000);
    expect(record.completed).toBe(false);
  });
});
