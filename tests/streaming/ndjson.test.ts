import { describe, expect, test } from 'bun:test';
import { negotiateStreamFormat, relayNdjson, type StreamFormat } from '../../src/streaming/ndjson';

const encoder = new TextEncoder();

/** An upstream body made of the given pieces, then closed. */
const body = (...pieces: string[]) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const piece of pieces) controller.enqueue(encoder.encode(piece));
      controller.close();
    },
  });

async function relay(format: StreamFormat, ...pieces: string[]) {
  let aborted = false;
  const stream = relayNdjson(body(...pieces), {
    format,
    idleTimeoutMs: 1000,
    idleSetting: 'X',
    abortUpstream: () => {
      aborted = true;
    },
    isFinalLine: (line) => line.done === true,
  });
  const text = await new Response(stream).text().catch((error: unknown) => `ABORTED: ${String(error)}`);
  return { text, aborted };
}

describe('relayNdjson', () => {
  test("passes Ollama's lines through unchanged, re-cut at line ends", async () => {
    const { text, aborted } = await relay('ndjson', '{"response":"a","do', 'ne":false}\n{"response":"","done":true}\n');
    expect(text).toBe('{"response":"a","done":false}\n{"response":"","done":true}\n');
    expect(aborted).toBe(false);
  });

  test('accepts servers that put spaces in their JSON or omit the last newline', async () => {
    const { text } = await relay('ndjson', '{"response": "a", "done": false}\n', '{"response": "", "done": true}');
    expect(text).toBe('{"response": "a", "done": false}\n{"response": "", "done": true}\n');
    const sse = await relay('sse', '{ "error" : "boom" }\n');
    expect(sse.text).toBe('id: 1\nevent: error\ndata: { "error" : "boom" }\n\n');
  });

  test('a stream that ends without a final line ends with an error line, and the upstream is released', async () => {
    for (const pieces of [['{"response":"a","done":false}\n'], ['{"response":"a","done":false}\n{"resp']]) {
      const { text, aborted } = await relay('ndjson', ...pieces);
      expect(JSON.parse(text.trim().split('\n').at(-1)!).error).toContain('before the answer was complete');
      expect(aborted).toBe(true);
    }
  });

  test('text mode joins the deltas and aborts on an error line', async () => {
    expect((await relay('text', '{"response":"Hel","done":false}\n{"response":"lo","done":false}\n{"done":true}\n')).text).toBe('Hello');
    expect((await relay('text', '{"response":"Hel","done":false}\n{"error":"boom"}\n')).text).toStartWith('ABORTED');
  });
});

describe('negotiateStreamFormat', () => {
  const cases: [string | undefined, StreamFormat][] = [
    [undefined, 'ndjson'],
    ['*/*', 'ndjson'],
    ['application/x-ndjson', 'ndjson'],
    ['text/event-stream', 'sse'],
    ['text/plain', 'text'],
    ['text/plain;q=0.5, text/event-stream', 'sse'],
    ['text/event-stream;q=0.1, application/x-ndjson;q=0.9', 'ndjson'],
    ['text/html', 'ndjson'],
    ['text/plain;q=0', 'ndjson'],
  ];
  for (const [accept, format] of cases) test(`${accept ?? '(none)'} → ${format}`, () => expect(negotiateStreamFormat(accept)).toBe(format));
});
