import { ApiError } from '../http/errors';
import { type ImageSource, imagesJsonBody } from '../uploads/images';
import type { StreamObserver } from '../observability/metrics';
import type { StreamFormat } from '../streaming/ndjson';
import { type UpstreamCall, upstreamError } from './client';
import type { Deps } from '../deps';
import { recordOf } from '../observability/request-record';
import type { GenerateResult, Statistics } from './answers';
import { answerIdle, consumeNdjson, linesOf, streamResponse } from '../streaming/relay';

type GenerateBody = { model: string; stream: boolean; images?: ImageSource[] } & Record<string, unknown>;

const isFinalGenerateLine = (line: Record<string, unknown>) => line.done === true;

/** Starts a streamed `/api/generate` and turns any non-2xx answer into the client-facing error. */
async function startGeneration({ config, ollama }: Deps, body: GenerateBody, signal: AbortSignal): Promise<UpstreamCall> {
  const { images, ...rest } = body;
  const call = await ollama.call(
    '/api/generate',
    // A function for a streamed body: it can be built again if the request fails over to another instance.
    images?.length ? () => imagesJsonBody({ ...rest, stream: true }, images) : { ...rest, stream: true },
    { signal, deadline: config.firstByte },
  );
  if (!call.response.ok) throw await upstreamError(call.response, body.model);
  return call;
}

/**
 * The synchronous answer. Ollama is asked to stream and Minato joins the pieces exactly as
 * Ollama's own `stream:false` does (response and thinking concatenated, everything else from the
 * final line), so that a long generation is bounded by the idle deadline between tokens rather
 * than by one deadline for the whole answer, and a client that leaves stops it at once.
 */
export async function answerSync(deps: Deps, body: GenerateBody, signal: AbortSignal): Promise<GenerateResult> {
  const call = await startGeneration(deps, body, signal);
  // Read as NDJSON whatever the Content-Type: the single object of a model load is one line too.
  let text = '';
  let thinking = '';
  let final: Record<string, unknown> | undefined;
  await consumeNdjson(answerIdle(deps.config), call, signal, 'answer', (line) => {
    if (typeof line.error === 'string') throw new ApiError(502, `Ollama failed while answering: ${line.error}`, 'upstream_error');
    if (typeof line.response === 'string') text += line.response;
    if (typeof line.thinking === 'string') thinking += line.thinking;
    if (line.done === true) final = line;
  });
  if (!final) throw new ApiError(502, 'Ollama closed the connection before the answer was complete. Retry the request.', 'upstream_error');
  deps.metrics?.generation(body.model, final.eval_count, final.eval_duration, recordOf(signal)?.instance);
  // `context` (the prompt's and answer's token ids) is left out: Ollama has deprecated it, no route
  // of Minato takes it back, and it can be thousands of numbers. Streams relay Ollama's bytes as they are.
  const { context: _context, ...statistics } = final;
  return { ...(statistics as Statistics), response: text, ...(thinking !== '' && { thinking }) };
}

/** The streamed answer: Ollama's lines relayed as they come, in the negotiated format. */
export async function answerStream(
  deps: Deps,
  body: GenerateBody,
  signal: AbortSignal,
  format: StreamFormat,
  observe?: () => StreamObserver,
): Promise<Response> {
  const call = await startGeneration(deps, body, signal);
  const upstream = await linesOf(call.response);
  return streamResponse(answerIdle(deps.config), call, upstream, format, isFinalGenerateLine, observe);
}
