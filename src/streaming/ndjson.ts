import { networkErrorText } from '../http/errors';
import type { StreamObserver } from '../observability/metrics';

/**
 * Ollama streams NDJSON: one JSON object per line, flushed line by line, no end sentinel, and
 * TCP chunks that do not align with lines. These helpers relay such a stream to a client without
 * buffering more than the current partial line, in one of three client-facing formats.
 */

export type StreamFormat = 'ndjson' | 'sse' | 'text';

export const STREAM_CONTENT_TYPES: Record<StreamFormat, string> = {
  ndjson: 'application/x-ndjson',
  sse: 'text/event-stream; charset=utf-8',
  text: 'text/plain; charset=utf-8',
};

/** Headers every streamed answer carries, so that proxies in front (nginx, …) do not buffer it. */
export const STREAM_HEADERS = {
  'Cache-Control': 'no-cache',
  'X-Accel-Buffering': 'no',
} as const;

/**
 * Picks the stream format from an Accept header: `text/event-stream` gives SSE, `text/plain`
 * bare text, anything else (including `*\/*` and `application/x-ndjson`) Ollama's NDJSON.
 * Quality values are honoured; among equals the order of the header wins.
 */
export function negotiateStreamFormat(accept: string | undefined): StreamFormat {
  if (!accept) return 'ndjson';
  let best: { format: StreamFormat; q: number } | undefined;
  for (const part of accept.split(',')) {
    const [rawType = '', ...params] = part.split(';');
    const type = rawType.trim().toLowerCase();
    const qParam = params.map((p) => p.trim()).find((p) => p.toLowerCase().startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    if (!(q > 0)) continue;
    const format: StreamFormat | undefined =
      type === 'application/x-ndjson' || type === 'application/ndjson' || type === 'application/*' || type === '*/*'
        ? 'ndjson'
        : type === 'text/event-stream'
          ? 'sse'
          : type === 'text/plain'
            ? 'text'
            : undefined;
    if (format && (!best || q > best.q)) best = { format, q };
  }
  return best?.format ?? 'ndjson';
}

const NEWLINE = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** True for Ollama's in-band error line, `{"error":"…"}` (spaces tolerated: not every server is Go's json.Marshal). */
const ERROR_LINE = /^\s*\{\s*"error"\s*:/;
export const isErrorLine = (line: string) => ERROR_LINE.test(line);

/** A line's JSON object, or undefined when it is not one. */
export function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The last line of a run of lines that is not blank; only that line is decoded. */
function lastNonBlankLine(lines: Uint8Array | undefined): string {
  if (!lines) return '';
  let end = lines.length;
  while (end > 0 && (lines[end - 1] === NEWLINE || lines[end - 1] === 0x0d || lines[end - 1] === 0x20)) end--;
  if (end === 0) return '';
  const start = lines.lastIndexOf(NEWLINE, end - 1) + 1;
  return decoder.decode(lines.subarray(start, end));
}

/** What a formatter makes of a run of complete lines (each ending in `\n`). */
type Formatted = { output?: Uint8Array; error?: string };
type Formatter = (lines: Uint8Array) => Formatted;

const splitLines = (bytes: Uint8Array) => decoder.decode(bytes).split('\n').slice(0, -1);

const errorMessageOf = (line: string) => {
  const error = parseObject(line)?.error;
  return typeof error === 'string' ? error : line;
};

/**
 * One SSE event per Ollama line, numbered with `id:`; Ollama's error line becomes `event: error`.
 * The ids matter: an EventSource reconnects by itself when a stream ends, sending the last id
 * in `Last-Event-ID`, and Minato answers that with 204, which tells it to stop (see
 * `isEventSourceReconnect`), rather than generating the whole answer again.
 */
function sseFormatter(): Formatter {
  let id = 0;
  return (lines) => {
    let out = '';
    for (const line of splitLines(lines)) {
      if (line === '') continue;
      id++;
      out += isErrorLine(line) ? `id: ${id}\nevent: error\ndata: ${line}\n\n` : `id: ${id}\ndata: ${line}\n\n`;
    }
    return { output: encoder.encode(out) };
  };
}

/** An EventSource coming back after its stream ended (or broke): there is nothing to resume. */
export const isEventSourceReconnect = (headers: { header(name: string): string | undefined }) =>
  headers.header('last-event-id') !== undefined;

/** Bare text deltas, as the original served them; an error cannot be said in-band here. */
const textFormatter: Formatter = (lines) => {
  let out = '';
  for (const line of splitLines(lines)) {
    if (line === '') continue;
    if (isErrorLine(line)) return { output: encoder.encode(out), error: errorMessageOf(line) };
    try {
      const value = JSON.parse(line) as { response?: unknown; message?: { content?: unknown } };
      const delta = typeof value.response === 'string' ? value.response : value.message?.content;
      if (typeof delta === 'string') out += delta;
    } catch {
      return { output: encoder.encode(out), error: 'Ollama sent a line that is not JSON' };
    }
  }
  return { output: encoder.encode(out) };
};

/** NDJSON as it came (not called on the hot path, which sends the bytes itself). */
const unchanged: Formatter = (lines) => ({ output: lines });

/** Minato's own in-band error, in the client's format (text has none: the stream is aborted instead). */
export function inBandError(format: StreamFormat, message: string): Uint8Array {
  const line = JSON.stringify({ error: message });
  return encoder.encode(format === 'sse' ? `id: error\nevent: error\ndata: ${line}\n\n` : `${line}\n`);
}

type ReadResult = { done: true; value?: undefined } | { done: false; value: Uint8Array };

class IdleTimeout extends Error {}

/** A line that is not a JSON object: whatever answered is not speaking Ollama's NDJSON. */
export class MalformedLine extends Error {
  constructor(line: string) {
    super(`a line that is not JSON: ${JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line)}`);
  }
}

function objectOrThrow(line: string): Record<string, unknown> {
  const value = parseObject(line);
  if (!value) throw new MalformedLine(line);
  return value;
}

/**
 * One timer per stream rather than one per read (profiling showed a timer and a promise per
 * chunk costing a fifth of the streaming throughput), and no clock read per chunk either (two
 * `performance.now()` per chunk were another twentieth): reads and hand-overs only flip flags and
 * bump counters, and a check every quarter of the deadline sees whether anything moved since the
 * check before. Silence is counted from the first check that finds a read already pending, so a
 * deadline never fires early, and at most a quarter late. Silence counts only while Minato waits
 * on Ollama, not while a slow client is still reading. When it expires the reader is cancelled,
 * which ends the pending read.
 *
 * The same timer watches the other side when `stallMs` is given: a client that leaves what it was
 * handed unread (its socket buffer full) that long is cut off (its `owner` is told), since it
 * holds a generation slot and Ollama's runner blocked on its writes.
 */
class IdleWatchdog {
  // What the reads and the client did: flags for now, counters for "anything since?".
  #reading = false;
  #reads = 0;
  #handed = false;
  #handOvers = 0;
  // What the previous check saw, and how long nothing has moved.
  #sawReading = false;
  #sawReads = 0;
  #sawHanded = false;
  #sawHandOvers = 0;
  #silentMs = 0;
  #unreadMs = 0;
  #expired = false;
  readonly #period: number;
  #timer: ReturnType<typeof setTimeout>;
  /** The one function per stream the timer needs. */
  readonly #check = () => this.#tick();

  constructor(
    readonly reader: { cancel(reason?: unknown): Promise<void> },
    readonly idleTimeoutMs: number,
    /** Watch the client too: told (`stalled()`) when it leaves what it was handed unread this long. */
    readonly stallMs?: number,
    readonly owner?: { stalled(): void },
  ) {
    this.#period = Math.max(5, Math.min(idleTimeoutMs, stallMs ?? Number.POSITIVE_INFINITY) / 4);
    this.#timer = setTimeout(this.#check, this.#period);
  }

  #tick() {
    const period = this.#period;
    this.#silentMs = this.#reading && this.#sawReading && this.#reads === this.#sawReads ? this.#silentMs + period : 0;
    this.#unreadMs = this.#handed && this.#sawHanded && this.#handOvers === this.#sawHandOvers ? this.#unreadMs + period : 0;
    this.#sawReading = this.#reading;
    this.#sawReads = this.#reads;
    this.#sawHanded = this.#handed;
    this.#sawHandOvers = this.#handOvers;
    if (this.#silentMs >= this.idleTimeoutMs) {
      this.#expired = true;
      this.reader.cancel(new IdleTimeout()).catch(() => {});
      return;
    }
    if (this.stallMs !== undefined && this.#unreadMs >= this.stallMs) {
      this.owner?.stalled();
      return;
    }
    this.#timer = setTimeout(this.#check, period);
  }

  /** A read from Ollama starts; at the start of a pull, the client has taken what it was handed. */
  waiting() {
    this.#reading = true;
    this.#handed = false;
  }
  idle() {
    this.#reading = false;
    this.#reads++;
  }
  /** A chunk was handed to the client; the next pull says it was taken. */
  handedOver() {
    this.#handed = true;
    this.#handOvers++;
  }
  get expired() {
    return this.#expired;
  }
  stop() {
    clearTimeout(this.#timer);
  }
}

export type RelayOptions = {
  format: StreamFormat;
  /** Longest silence allowed between two chunks from Ollama. */
  idleTimeoutMs: number;
  idleSetting: string;
  /** Aborts the upstream request, so that Ollama stops generating. */
  abortUpstream: (reason?: unknown) => void;
  /** Whether the stream's last object is a proper end (a `done: true` line, a final status). */
  isFinalLine: (line: Record<string, unknown>) => boolean;
  /** Told of the first byte and of the end (with the final line, which it may read). */
  observer?: StreamObserver;
  /** Cut off a client that leaves the stream unread this long (MINATO_CLIENT_STALL_TIMEOUT). */
  stallTimeoutMs?: number;
};

/**
 * Where the first line of a run of complete lines that does not start like a JSON object begins,
 * or -1. Ollama writes one object per line, so its lines start with `{`; checking that first
 * byte of each line costs one `indexOf` per line, not a parse, on the relay's hot path.
 */
function firstLineNotAnObject(lines: Uint8Array): number {
  let start = 0;
  while (start < lines.length) {
    if (lines[start] !== OPEN_BRACE && lines[start] !== NEWLINE) return start;
    start = lines.indexOf(NEWLINE, start) + 1;
  }
  return -1;
}
const OPEN_BRACE = 0x7b;

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

/**
 * Relays an NDJSON body line-aligned, in the client's format. It pulls from Ollama only when the
 * client is ready for more (no queue builds up), passes bytes on as soon as a line is complete,
 * and turns every way Ollama's stream can go wrong (silence, a dropped connection, an early end,
 * an error line) into a prompt, in-band end of the client's stream. A client that goes away
 * cancels the stream, which aborts the upstream request.
 */
export function relayNdjson(upstream: ReadableStream<Uint8Array>, options: RelayOptions): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(new NdjsonRelay(upstream, options), { highWaterMark: 0 });
}

/**
 * The relay's state and steps, as one object per stream with its methods on the class: thousands
 * of streams each held a dozen closures and their scopes when this was a function of closures.
 * It is the stream's underlying source (`start`, `pull`, `cancel` are called on it).
 */
class NdjsonRelay {
  readonly #reader: { read(): Promise<unknown>; cancel(reason?: unknown): Promise<void> };
  readonly #options: RelayOptions;
  // NDJSON, the default, has no formatter on the hot path: Ollama's bytes go out as they arrive.
  readonly #formatter: Formatter;
  readonly #watchdog: IdleWatchdog;
  #partial: Uint8Array | undefined;
  // The last run of complete lines, kept whole (no subarray per chunk: thousands of streams each
  // relaying lines allocate enough already); its last line is only looked at when the stream ends.
  #lastChunk: Uint8Array | undefined;
  #started = false;
  #sent = 0;
  #downstream: ReadableStreamDefaultController<Uint8Array> | undefined;
  // Set once the stream is ended by Minato (an error, a cut-off): a read still pending then must not end it twice.
  #closed = false;

  constructor(upstream: ReadableStream<Uint8Array>, options: RelayOptions) {
    this.#options = options;
    this.#formatter = options.format === 'ndjson' ? unchanged : options.format === 'sse' ? sseFormatter() : textFormatter;
    this.#reader = upstream.getReader();
    this.#watchdog = new IdleWatchdog(this.#reader, options.idleTimeoutMs, options.stallTimeoutMs, this);
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>) {
    this.#downstream = controller;
    // Shutdown past its grace period: end with an in-band error line the client can act on.
    this.#options.observer?.onCutOff?.(() =>
      this.#fail(
        controller,
        'Minato is shutting down; the answer was cut off. Retry on another instance, or in a few seconds.',
        'cut_off_by_shutdown',
      ),
    );
  }

  cancel(reason?: unknown) {
    this.#closed = true;
    this.#watchdog.stop();
    this.#options.observer?.end({ clientAborted: true, bytes: this.#sent });
    this.#options.abortUpstream(reason);
    return this.#reader.cancel(reason).catch(() => {});
  }

  /** The watchdog's call: a client that does not read. Nothing can be said in-band to it: end the response. */
  stalled() {
    this.#closed = true;
    this.#options.abortUpstream(new Error('client stopped reading'));
    this.#reader.cancel().catch(() => {});
    this.#options.observer?.end({ errorKind: 'client_stalled', bytes: this.#sent });
    this.#downstream?.error();
  }

  #send(controller: ReadableStreamDefaultController<Uint8Array>, bytes: Uint8Array) {
    if (!this.#started) {
      this.#started = true;
      this.#options.observer?.firstByte();
    }
    this.#sent += bytes.length;
    controller.enqueue(bytes);
    // Every send ends a pull; the next pull (the client took it) clears this.
    this.#watchdog.handedOver();
  }

  #fail(controller: ReadableStreamDefaultController<Uint8Array>, message: string, kind: string) {
    if (this.#closed) return;
    this.#closed = true;
    this.#watchdog.stop();
    const { format, observer, abortUpstream } = this.#options;
    abortUpstream(new Error(message));
    this.#reader.cancel().catch(() => {});
    if (format === 'text') {
      observer?.end({ errorKind: kind, bytes: this.#sent });
      // Plain text cannot say "error" in-band: abort the response so the client cannot take a
      // broken answer for a whole one. No reason is given: Bun prints an Error reason's stack to
      // stderr for every such stream, and the client only ever sees a reset connection.
      controller.error();
    } else {
      this.#send(controller, inBandError(format, message));
      observer?.end({ errorKind: kind, bytes: this.#sent });
      controller.close();
    }
  }

  /** The end of Ollama's body: a last line without its newline, then a proper end or an early one. */
  #finish(controller: ReadableStreamDefaultController<Uint8Array>) {
    const { isFinalLine, observer } = this.#options;
    if (this.#partial?.length) {
      // Ollama ends every line with \n; a last line without one still counts if it is whole JSON.
      const text = decoder.decode(this.#partial).trim();
      this.#partial = undefined;
      if (text !== '') {
        if (!parseObject(text)) {
          this.#fail(controller, 'Ollama closed the stream before the answer was complete.', 'stream_incomplete');
          return;
        }
        this.#lastChunk = encoder.encode(`${text}\n`);
        const { output, error } = this.#formatter(this.#lastChunk);
        if (output?.length) this.#send(controller, output);
        if (error !== undefined) {
          this.#fail(controller, error, 'stream_error_line');
          return;
        }
      }
    }
    const final = parseObject(lastNonBlankLine(this.#lastChunk));
    const failed = typeof final?.error === 'string';
    if (!final || !(failed || isFinalLine(final))) {
      this.#fail(controller, 'Ollama closed the stream before the answer was complete.', 'stream_incomplete');
    } else {
      this.#closed = true;
      this.#watchdog.stop();
      observer?.end({ final, errorKind: failed ? 'stream_error_line' : undefined, bytes: this.#sent });
      controller.close();
    }
  }

  async pull(controller: ReadableStreamDefaultController<Uint8Array>) {
    const watchdog = this.#watchdog;
    for (;;) {
      let result: ReadResult;
      watchdog.waiting();
      try {
        result = (await this.#reader.read()) as ReadResult;
        if (this.#closed) return;
        if (watchdog.expired) throw new IdleTimeout();
      } catch (error) {
        if (this.#closed) return;
        if (error instanceof IdleTimeout) {
          this.#fail(
            controller,
            `Ollama sent nothing for ${Math.round(this.#options.idleTimeoutMs / 1000)} s (${this.#options.idleSetting}); the generation was stopped.`,
            'stream_idle_timeout',
          );
        } else {
          this.#fail(
            controller,
            `Lost the connection to Ollama mid-stream (${networkErrorText(error)}); the answer is incomplete.`,
            'stream_connection_lost',
          );
        }
        return;
      } finally {
        watchdog.idle();
      }
      if (result.done) {
        this.#finish(controller);
        return;
      }
      let chunk = result.value;
      if (this.#partial) {
        chunk = concat(this.#partial, chunk);
        this.#partial = undefined;
      }
      const end = chunk.lastIndexOf(NEWLINE);
      if (end === -1) {
        this.#partial = chunk;
        continue;
      }
      let lines = end === chunk.length - 1 ? chunk : chunk.subarray(0, end + 1);
      if (end < chunk.length - 1) this.#partial = chunk.slice(end + 1);
      const bad = firstLineNotAnObject(lines);
      if (bad !== -1) {
        // Relay the good lines before it, then end: a client must never get a line it cannot parse.
        const badLine = decoder.decode(lines.subarray(bad, lines.indexOf(NEWLINE, bad)));
        lines = lines.subarray(0, bad);
        if (lines.length > 0) {
          const { output } = this.#formatter(lines);
          if (output?.length) this.#send(controller, output);
        }
        this.#fail(
          controller,
          `Ollama sent ${new MalformedLine(badLine).message}; the answer was stopped. Check that OLLAMA_HOST points at Ollama.`,
          'stream_malformed',
        );
        return;
      }
      this.#lastChunk = lines;
      if (this.#options.format === 'ndjson') {
        // The hot path: no formatter call, no result object.
        this.#send(controller, lines);
        return;
      }
      const { output, error } = this.#formatter(lines);
      if (error !== undefined) {
        if (output?.length) this.#send(controller, output);
        this.#fail(controller, error, 'stream_error_line');
        return;
      }
      if (output?.length) {
        this.#send(controller, output);
        return;
      }
    }
  }
}

/**
 * Reads an NDJSON body as parsed objects, with the same idle deadline; used where Minato
 * aggregates a stream itself (the sync answer, a waiting install).
 */
export async function* readNdjson(
  body: ReadableStream<Uint8Array>,
  idleTimeoutMs: number,
  onIdle: () => never,
): AsyncGenerator<Record<string, unknown>> {
  const reader = body.getReader();
  const watchdog = new IdleWatchdog(reader, idleTimeoutMs);
  // Its own decoder: a decoder in stream mode keeps a split multi-byte character between calls,
  // so one shared by concurrent answers would mix their bytes up.
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for (;;) {
      let result: ReadResult;
      watchdog.waiting();
      try {
        result = (await reader.read()) as ReadResult;
      } finally {
        watchdog.idle();
      }
      if (watchdog.expired) onIdle();
      if (result.done) break;
      buffered += decoder.decode(result.value, { stream: true });
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim() !== '') yield objectOrThrow(line);
        newline = buffered.indexOf('\n');
      }
    }
    buffered += decoder.decode();
    if (buffered.trim() !== '') yield objectOrThrow(buffered);
  } finally {
    watchdog.stop();
    reader.cancel().catch(() => {});
  }
}
