/**
 * Relays an upstream Server-Sent Events body (Ollama's `/v1` streams) event by event: an event is
 * passed on as soon as its blank line arrives, as the bytes it came in (unless `onEvent` drops
 * it), nothing is read ahead of the client, and the stream always ends properly — with the
 * upstream's `data: [DONE]`, or with an error event when the upstream breaks, goes silent past the
 * idle deadline, or ends without `[DONE]`. A client that goes away aborts the upstream request.
 */

export type SseRelayOptions = {
  idleTimeoutMs: number;
  idleSetting: string;
  /** Cut off a client that leaves what it was handed unread this long (MINATO_CLIENT_STALL_TIMEOUT). */
  stallTimeoutMs?: number;
  abortUpstream: (reason?: unknown) => void;
  /** Sees each event's data (the text after `data: `); returns false to leave the event out. */
  onEvent?: (data: string) => boolean;
  /** Told when the stream ends: whether it ended with `[DONE]`, and bytes sent. */
  onEnd?: (result: { done: boolean; error?: string; clientAborted?: boolean; bytes: number }) => void;
  onFirstByte?: () => void;
  /** Registers what ends the stream (with an error event) when shutdown cuts it off. */
  onCutOff?: (cut: () => void) => void;
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const BLANK_LINE = /\r?\n\r?\n/;

/** OpenAI's error event, which the openai SDK throws from: `data: {"error": {...}}`. */
const errorEvent = (message: string) =>
  encoder.encode(`data: ${JSON.stringify({ error: { message, type: 'api_error', param: null, code: null } })}\n\n`);

/** The data of one event (its `data:` lines joined), or undefined for a comment-only event. */
function dataOf(event: string): string | undefined {
  const lines = event.split(/\r?\n/).filter((line) => line.startsWith('data:'));
  if (lines.length === 0) return undefined;
  return lines.map((line) => line.slice(line.startsWith('data: ') ? 6 : 5)).join('\n');
}

export function relaySse(upstream: ReadableStream<Uint8Array>, options: SseRelayOptions): ReadableStream<Uint8Array> {
  const { idleTimeoutMs, idleSetting, stallTimeoutMs, abortUpstream, onEvent, onEnd, onFirstByte, onCutOff } = options;
  const reader = upstream.getReader();
  let buffered = '';
  let sent = 0;
  let started = false;
  let finished = false;
  let sawDone = false;
  // One timer per stream: a read that has been pending for a whole period fails the stream.
  let pendingSince = 0;
  let reading = false;
  const period = Math.max(5, Math.min(idleTimeoutMs, stallTimeoutMs ?? Number.POSITIVE_INFINITY) / 4);
  let expired = false;
  // A client that does not come back for what it was handed holds a slot and Ollama's runner.
  let handedAt = 0;
  let unread = false;
  let downstream: ReadableStreamDefaultController<Uint8Array> | undefined;
  const timer = setInterval(() => {
    const now = performance.now();
    if (reading && now - pendingSince >= idleTimeoutMs) {
      expired = true;
      reader.cancel().catch(() => {});
    } else if (stallTimeoutMs !== undefined && unread && !finished && now - handedAt >= stallTimeoutMs) {
      finished = true;
      clearInterval(timer);
      abortUpstream(new Error('client stopped reading'));
      reader.cancel().catch(() => {});
      onEnd?.({ done: sawDone, error: 'client_stalled', bytes: sent });
      downstream?.error();
    }
  }, period);

  const end = (controller: ReadableStreamDefaultController<Uint8Array>, error?: string) => {
    if (finished) return;
    finished = true;
    clearInterval(timer);
    if (error !== undefined) {
      abortUpstream(new Error(error));
      reader.cancel().catch(() => {});
      const bytes = errorEvent(error);
      sent += bytes.length;
      controller.enqueue(bytes);
    }
    onEnd?.({ done: sawDone, error, bytes: sent });
    controller.close();
  };

  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        downstream = controller;
        onCutOff?.(() =>
          end(controller, 'Minato is shutting down; the answer was cut off. Retry on another instance, or in a few seconds.'),
        );
      },
      async pull(controller) {
        unread = false;
        for (;;) {
          if (finished) return;
          let result: { done: boolean; value?: Uint8Array };
          reading = true;
          pendingSince = performance.now();
          try {
            result = await reader.read();
          } catch (error) {
            reading = false;
            end(
              controller,
              expired
                ? `Ollama sent nothing for ${Math.round(idleTimeoutMs / 1000)} s (${idleSetting}); the answer was stopped.`
                : `Lost the connection to Ollama mid-stream (${String((error as Error)?.message ?? error)}); the answer is incomplete.`,
            );
            return;
          }
          reading = false;
          if (finished) return;
          if (expired) {
            end(controller, `Ollama sent nothing for ${Math.round(idleTimeoutMs / 1000)} s (${idleSetting}); the answer was stopped.`);
            return;
          }
          if (result.done) {
            if (sawDone) end(controller);
            else end(controller, 'Ollama closed the stream before the answer was complete.');
            return;
          }
          buffered += decoder.decode(result.value as Uint8Array, { stream: true });
          let out = '';
          for (let match = BLANK_LINE.exec(buffered); match; match = BLANK_LINE.exec(buffered)) {
            const event = buffered.slice(0, match.index);
            buffered = buffered.slice(match.index + match[0].length);
            const data = dataOf(event);
            if (data === '[DONE]') sawDone = true;
            else if (data !== undefined && onEvent && !onEvent(data)) continue;
            out += `${event}\n\n`;
          }
          if (out !== '') {
            const bytes = encoder.encode(out);
            if (!started) {
              started = true;
              onFirstByte?.();
            }
            sent += bytes.length;
            controller.enqueue(bytes);
            handedAt = performance.now();
            unread = true;
            return;
          }
        }
      },
      cancel(reason) {
        if (!finished) {
          finished = true;
          clearInterval(timer);
          onEnd?.({ done: sawDone, clientAborted: true, bytes: sent });
        }
        abortUpstream(reason);
        return reader.cancel(reason).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}
