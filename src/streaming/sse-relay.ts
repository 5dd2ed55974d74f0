import { concat } from './ndjson';

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
  /** Only events containing this text are shown to `onEvent` (the others pass unread). */
  onEventMentioning?: string;
  /**
   * Told when the stream ends: whether it ended with `[DONE]`, bytes sent, and what ended it
   * otherwise (`errorKind`, as the NDJSON relay names it for the log and metrics).
   */
  onEnd?: (result: { done: boolean; errorKind?: string; clientAborted?: boolean; bytes: number }) => void;
  onFirstByte?: () => void;
  /** Registers what ends the stream (with an error event) when shutdown cuts it off. */
  onCutOff?: (cut: () => void) => void;
};

const encoder = new TextEncoder();
const BLANK_LINE = /\r?\n\r?\n/;
const CR = 0x0d;

/**
 * Whether a run of whole events needs looking at: only the end (`[DONE]`) and the events
 * `onEvent` asks about (those that contain `needle`) do. Searched on the bytes (Buffer's native
 * indexOf): the rest is passed on as it came, never decoded or re-encoded, which profiling showed
 * to be most of the relay's cost.
 */
const mentions = (bytes: Buffer, needles: string[]) => needles.some((needle) => bytes.indexOf(needle) !== -1);

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
  const { idleTimeoutMs, idleSetting, stallTimeoutMs, abortUpstream, onEvent, onEventMentioning, onEnd, onFirstByte, onCutOff } = options;
  const reader = upstream.getReader();
  // Bytes of an event not yet complete; and a decoder for the events that are looked at.
  let partial: Uint8Array | undefined;
  const decoder = new TextDecoder();
  // `onEvent` without `onEventMentioning` reads every event: the empty needle is found in every run.
  const needles = ['[DONE]', ...(onEvent ? [onEventMentioning ?? ''] : [])];
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
      onEnd?.({ done: sawDone, errorKind: 'client_stalled', bytes: sent });
      downstream?.error();
    }
  }, period);

  const end = (controller: ReadableStreamDefaultController<Uint8Array>, error?: string, errorKind?: string) => {
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
    onEnd?.({ done: sawDone, errorKind, bytes: sent });
    controller.close();
  };

  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        downstream = controller;
        onCutOff?.(() =>
          end(
            controller,
            'Minato is shutting down; the answer was cut off. Retry on another instance, or in a few seconds.',
            'cut_off_by_shutdown',
          ),
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
              expired ? 'stream_idle_timeout' : 'stream_connection_lost',
            );
            return;
          }
          reading = false;
          if (finished) return;
          if (expired) {
            end(
              controller,
              `Ollama sent nothing for ${Math.round(idleTimeoutMs / 1000)} s (${idleSetting}); the answer was stopped.`,
              'stream_idle_timeout',
            );
            return;
          }
          if (result.done) {
            if (sawDone) end(controller);
            else end(controller, 'Ollama closed the stream before the answer was complete.', 'stream_incomplete');
            return;
          }
          let chunk = result.value as Uint8Array;
          if (partial) {
            chunk = concat(partial, chunk);
            partial = undefined;
          }
          const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          // Where the last whole event ends (`\n\n`, or `\r\n\r\n` from servers that use it).
          const lf = view.lastIndexOf('\n\n');
          const crlf = view.indexOf(CR) === -1 ? -1 : view.lastIndexOf('\r\n\r\n');
          const cut = Math.max(lf === -1 ? -1 : lf + 2, crlf === -1 ? -1 : crlf + 4);
          if (cut === -1) {
            partial = chunk;
            continue;
          }
          const whole = cut === chunk.length ? chunk : chunk.subarray(0, cut);
          if (cut < chunk.length) partial = chunk.slice(cut);
          let bytes: Uint8Array | undefined;
          if (crlf === -1 && !mentions(view.subarray(0, cut), needles)) {
            // The hot path: whole events that nobody needs to read go out as the bytes they came in.
            bytes = whole;
          } else {
            // Events to look at (the end, usage), or `\r\n` line ends: event by event, as text.
            let text = decoder.decode(whole);
            let out = '';
            for (let match = BLANK_LINE.exec(text); match; match = BLANK_LINE.exec(text)) {
              const event = text.slice(0, match.index);
              text = text.slice(match.index + match[0].length);
              const data = dataOf(event);
              if (data === '[DONE]') sawDone = true;
              else if (
                data !== undefined &&
                onEvent &&
                (onEventMentioning === undefined || data.includes(onEventMentioning)) &&
                !onEvent(data)
              )
                continue;
              out += `${event}\n\n`;
            }
            // Mixed line ends can leave the start of an event: keep it, ahead of the bytes still to come.
            if (text !== '') {
              const head = encoder.encode(text);
              partial = partial ? concat(head, partial) : head;
            }
            if (out !== '') bytes = encoder.encode(out);
          }
          if (bytes) {
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
