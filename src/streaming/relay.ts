import type { Config, Deadline } from '../config';
import { ApiError, ClientGoneError, networkErrorText } from '../http/errors';
import type { StreamObserver } from '../observability/metrics';
import { MalformedLine, type StreamFormat, relayNdjson, readNdjson, STREAM_CONTENT_TYPES, STREAM_HEADERS } from './ndjson';
import type { UpstreamCall } from '../ollama/client';

/**
 * The longest silence allowed from Ollama, and the setting that says so (named in errors); and
 * the longest a streaming client may leave what it was sent unread.
 */
export type IdleDeadline = Deadline & { clientStallMs: number };

/** Between the lines of an answer. */
export const answerIdle = (config: Config): IdleDeadline => ({ ...config.streamIdle, clientStallMs: config.clientStall.ms });
/** Between pull progress lines: Ollama says nothing while it verifies a downloaded model's digest. */
export const pullIdle = (config: Config): IdleDeadline => ({ ...config.pullIdle, clientStallMs: config.clientStall.ms });

/**
 * Ollama's answer body as a stream of lines. A model load (an empty prompt or history) is one
 * plain JSON object even when streaming was asked for (ollama-api.md: "Empty-prompt load"):
 * branch on the Content-Type, not on `stream`, and make it one line.
 */
export function linesOf(response: Response): ReadableStream<Uint8Array> | Promise<ReadableStream<Uint8Array>> {
  // A stream, the usual case, is handed on as it is: no promise on the way to the first byte.
  if (response.body && !(response.headers.get('content-type') ?? '').startsWith('application/json')) return response.body;
  return response.text().then((text) => new Response(`${text.trim()}\n`).body as ReadableStream<Uint8Array>);
}

/** A relayed NDJSON stream as a streamed Response in the client's format. */
export function streamResponse(
  idle: IdleDeadline,
  call: UpstreamCall,
  body: ReadableStream<Uint8Array>,
  format: StreamFormat,
  isFinalLine: (line: Record<string, unknown>) => boolean,
  /** Starts a metrics observer; called only here, once the stream really starts. */
  observe?: () => StreamObserver,
): Response {
  const stream = relayNdjson(body, {
    format,
    idleTimeoutMs: idle.ms,
    idleSetting: idle.setting,
    abortUpstream: call.abort,
    isFinalLine,
    observer: observe?.(),
    stallTimeoutMs: idle.clientStallMs,
  });
  return new Response(stream, {
    status: 200,
    headers: { 'Content-Type': STREAM_CONTENT_TYPES[format], ...STREAM_HEADERS },
  });
}

/**
 * Reads an upstream NDJSON body to its end where Minato answers only once it is over (the
 * synchronous answer, a waiting install). Silence past the idle deadline is a 504, a
 * dropped connection a 502, a client that left stops it; the upstream request is always released.
 */
export async function consumeNdjson(
  idle: IdleDeadline,
  call: UpstreamCall,
  signal: AbortSignal,
  activity: string,
  onLine: (line: Record<string, unknown>) => void,
): Promise<void> {
  const idleMs = idle.ms;
  let finished = false;
  try {
    if (!call.response.body) throw new ApiError(502, 'Ollama answered with an empty body.', 'upstream_error');
    const lines = readNdjson(call.response.body, idleMs, () => {
      throw new ApiError(
        504,
        `Ollama sent nothing for ${Math.round(idleMs / 1000)} s during the ${activity} (${idle.setting}); it was stopped.`,
        'upstream_timeout',
      );
    });
    for await (const line of lines) onLine(line);
    finished = true;
  } catch (error) {
    if (signal.aborted) throw new ClientGoneError();
    if (error instanceof ApiError) throw error;
    if (error instanceof MalformedLine) {
      throw new ApiError(502, `Ollama sent ${error.message}. Check that OLLAMA_HOST points at Ollama.`, 'upstream_error');
    }
    throw new ApiError(
      502,
      `Lost the connection to Ollama during the ${activity} (${networkErrorText(error)}). Retry the request.`,
      'upstream_error',
    );
  } finally {
    // Only an unfinished read has anything to stop: aborting a finished fetch still builds an
    // AbortError, which profiling showed costing a tenth of a small request.
    if (!finished) call.abort();
  }
}
