import { describe, expect, test } from 'bun:test';
import { relaySse } from '../../src/streaming/sse-relay';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An upstream SSE body: the given pieces (split anywhere), then the end, or nothing more (`hang`). */
function upstream(pieces: string[], { hang = false } = {}) {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (at < pieces.length) controller.enqueue(encoder.encode(pieces[at++]!));
      else if (!hang) controller.close();
      else await new Promise(() => {});
    },
  });
}

async function readAll(stream: ReadableStream<Uint8Array>) {
  let text = '';
  for await (const chunk of stream) text += decoder.decode(chunk);
  return text;
}

describe('relaySse', () => {
  test('passes events on whole, however the bytes were split, and keeps [DONE]', async () => {
    const body = 'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n';
    const pieces = [body.slice(0, 7), body.slice(7, 20), body.slice(20)];
    const text = await readAll(relaySse(upstream(pieces), { idleTimeoutMs: 1000, idleSetting: 'X', abortUpstream: () => {} }));
    expect(text).toBe(body);
  });

  test('bytes pass as they came: a character split across chunks, \\r\\n framing, events split anywhere', async () => {
    const body = 'data: {"c":"東京 🍣"}\n\ndata: {"d":"é"}\r\n\r\ndata: {"usage":1}\n\ndata: [DONE]\n\n';
    const bytes = encoder.encode(body);
    // Every split point, including inside the multi-byte characters.
    for (let at = 1; at < bytes.length; at += 3) {
      const pieces = [bytes.subarray(0, at), bytes.subarray(at)];
      let i = 0;
      const source = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (i < pieces.length) controller.enqueue(pieces[i++]!);
          else controller.close();
        },
      });
      const seen: string[] = [];
      const text = await readAll(
        relaySse(source, {
          idleTimeoutMs: 1000,
          idleSetting: 'X',
          abortUpstream: () => {},
          onEventMentioning: '"usage"',
          onEvent: (data) => {
            seen.push(data);
            return true;
          },
        }),
      );
      expect(text.replace(/\r\n/g, '\n')).toBe(body.replace(/\r\n/g, '\n'));
      expect(seen).toEqual(['{"usage":1}']);
    }
  });

  test('a chunk the client did not ask for (usage) can be left out', async () => {
    const body = 'data: {"choices":[{"delta":{}}]}\n\ndata: {"choices":[],"usage":{"completion_tokens":3}}\n\ndata: [DONE]\n\n';
    const seen: string[] = [];
    const text = await readAll(
      relaySse(upstream([body]), {
        idleTimeoutMs: 1000,
        idleSetting: 'X',
        abortUpstream: () => {},
        onEvent: (data) => {
          seen.push(data);
          return !data.includes('usage');
        },
      }),
    );
    expect(text).toBe('data: {"choices":[{"delta":{}}]}\n\ndata: [DONE]\n\n');
    expect(seen).toHaveLength(2);
  });

  test('an upstream that ends without [DONE], or goes silent, ends with an error event, not silently', async () => {
    const cut = await readAll(
      relaySse(upstream(['data: {"a":1}\n\n']), { idleTimeoutMs: 1000, idleSetting: 'X', abortUpstream: () => {} }),
    );
    expect(cut).toContain('data: {"error":{"message":"Ollama closed the stream before the answer was complete."');
    let aborted = false;
    const silent = await readAll(
      relaySse(upstream(['data: {"a":1}\n\n'], { hang: true }), {
        idleTimeoutMs: 100,
        idleSetting: 'MINATO_STREAM_IDLE_TIMEOUT',
        abortUpstream: () => {
          aborted = true;
        },
      }),
    );
    expect(silent).toContain('MINATO_STREAM_IDLE_TIMEOUT');
    expect(aborted).toBe(true);
  });

  test('a client that stops reading is cut off after the stall timeout, and the upstream aborted', async () => {
    let aborted = false;
    let ended: { errorKind?: string } | undefined;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(encoder.encode('data: {"t":1}\n\n'));
      },
    });
    const stream = relaySse(endless, {
      idleTimeoutMs: 10_000,
      idleSetting: 'X',
      stallTimeoutMs: 100,
      abortUpstream: () => {
        aborted = true;
      },
      onEnd: (result) => {
        ended = result;
      },
    });
    const reader = stream.getReader();
    await reader.read(); // one event, then the client reads no more
    await Bun.sleep(250);
    expect(aborted).toBe(true);
    expect(ended?.errorKind).toBe('client_stalled');
  });
});
