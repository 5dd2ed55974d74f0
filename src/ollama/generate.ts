import type { Config } from '../config';
import { ApiError, ClientGoneError, networkErrorText } from '../lib/errors';
import { type StreamFormat, relayNdjson, readNdjson, STREAM_CONTENT_TYPES, STREAM_HEADERS } from '../lib/ndjson';
import { type OllamaClient, type UpstreamCall, upstreamError } from './client';

export type Deps = { config: Config; ollama: OllamaClient };

type GenerateBody = { model: string; stream: boolean } & Record<string, unknown>;

const isFinalGenerateLine = (line: string) => line.includes('"done":true');

/** Starts `/api/generate` and turns any non-2xx answer into the client-facing error. */
async function startGeneration({ config, ollama }: Deps, body: GenerateBody, signal: AbortSignal): Promise<UpstreamCall> {
  const call = await ollama.call('/api/generate', body, {
    signal,
    firstByteTimeoutMs: config.firstByteTimeoutMs,
    timeoutSetting: 'MINATO_FIRST_BYTE_TIMEOUT',
  });
  if (!call.response.ok) throw await upstreamError(call.response, body.model);
  return call;
}

// An empty prompt makes Ollama load the model and answer one plain JSON object even when
// streaming was asked for (docs: "Empty-prompt load"); branch on Content-Type, not on `stream`.
const isSingleObject = (response: Response) => (response.headers.get('content-type') ?? '').startsWith('application/json');

/**
 * The synchronous answer. Ollama is asked to stream and Minato joins the pieces exactly as
 * Ollama's own `stream:false` does (response and thinking concatenated, everything else from the
 * final line), so that a long generation is bounded by the idle deadline between tokens rather
 * than by one deadline for the whole answer, and a client that leaves stops it at once.
 */
export async function answerSync(deps: Deps, body: GenerateBody, signal: AbortSignal): Promise<Record<string, unknown>> {
  const { response, abort } = await startGeneration(deps, { ...body, stream: true }, signal);
  try {
    if (isSingleObject(response)) return (await response.json()) as Record<string, unknown>;
    if (!response.body) throw new ApiError(502, 'Ollama answered with an empty body.', 'upstream_error');
    const idleMs = deps.config.streamIdleTimeoutMs;
    let text = '';
    let thinking = '';
    let final: Record<string, unknown> | undefined;
    const lines = readNdjson(response.body, idleMs, () => {
      throw new ApiError(
        504,
        `Ollama sent nothing for ${Math.round(idleMs / 1000)} s mid-answer (MINATO_STREAM_IDLE_TIMEOUT); the generation was stopped.`,
        'upstream_timeout',
      );
    });
    for await (const line of lines) {
      if (typeof line.error === 'string') {
        throw new ApiError(502, `Ollama failed while answering: ${line.error}`, 'upstream_error');
      }
      if (typeof line.response === 'string') text += line.response;
      if (typeof line.thinking === 'string') thinking += line.thinking;
      if (line.done === true) final = line;
    }
    if (!final) throw new ApiError(502, 'Ollama closed the connection before the answer was complete. Retry the request.', 'upstream_error');
    return { ...final, response: text, ...(thinking !== '' && { thinking }) };
  } catch (error) {
    if (signal.aborted) throw new ClientGoneError();
    if (error instanceof ApiError) throw error;
    throw new ApiError(
      502,
      `Lost the connection to Ollama mid-answer (${networkErrorText(error)}). Retry the request.`,
      'upstream_error',
    );
  } finally {
    abort();
  }
}

/** A relayed NDJSON stream as a streamed Response in the client's format. */
export function streamResponse(
  deps: Deps,
  call: UpstreamCall,
  body: ReadableStream<Uint8Array>,
  format: StreamFormat,
  isFinalLine: (line: string) => boolean,
): Response {
  const stream = relayNdjson(body, {
    format,
    idleTimeoutMs: deps.config.streamIdleTimeoutMs,
    idleSetting: 'MINATO_STREAM_IDLE_TIMEOUT',
    abortUpstream: call.abort,
    isFinalLine,
  });
  return new Response(stream, {
    status: 200,
    headers: { 'Content-Type': STREAM_CONTENT_TYPES[format], ...STREAM_HEADERS },
  });
}

/** The streamed answer: Ollama's lines relayed as they come, in the negotiated format. */
export async function answerStream(deps: Deps, body: GenerateBody, signal: AbortSignal, format: StreamFormat): Promise<Response> {
  const call = await startGeneration(deps, { ...body, stream: true }, signal);
  let upstream = call.response.body;
  if (isSingleObject(call.response) || !upstream) {
    const line = (await call.response.text()).trim();
    upstream = new Response(`${line}\n`).body as ReadableStream<Uint8Array>;
  }
  return streamResponse(deps, call, upstream, format, isFinalGenerateLine);
}
