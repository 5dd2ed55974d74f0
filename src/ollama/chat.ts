import type { Deps } from '../deps';
import { recordOf } from '../observability/request-record';
import type { ChatResult, Statistics, ToolCall } from './answers';
import { ApiError } from '../http/errors';
import type { StreamObserver } from '../observability/metrics';
import type { StreamFormat } from '../streaming/ndjson';
import { answerIdle, consumeNdjson, linesOf, streamResponse } from '../streaming/relay';
import { type UpstreamCall, upstreamError } from './client';

/** The body of Ollama's `POST /api/chat`, holding only what the client set. */
export type ChatBody = { model: string; messages: unknown[] } & Record<string, unknown>;

/** Starts a streamed `/api/chat` and turns any non-2xx answer into the client-facing error. */
async function startChat({ config, ollama }: Deps, body: ChatBody, signal: AbortSignal): Promise<UpstreamCall> {
  const call = await ollama.call('/api/chat', { ...body, stream: true }, { signal, deadline: config.firstByte });
  if (!call.response.ok) throw await upstreamError(call.response, body.model);
  return call;
}

/**
 * The whole answer. Ollama is asked to stream and Minato joins the pieces exactly as Ollama's own
 * `stream:false` does (content and thinking concatenated, tool calls collected from every chunk,
 * everything else from the final line), so a long answer is bounded by the idle deadline between
 * tokens, and a client that leaves stops it at once.
 */
export async function chatSync(deps: Deps, body: ChatBody, signal: AbortSignal): Promise<ChatResult> {
  const call = await startChat(deps, body, signal);
  let content = '';
  let thinking = '';
  const toolCalls: ToolCall[] = [];
  let final: Record<string, unknown> | undefined;
  await consumeNdjson(answerIdle(deps.config), call, signal, 'answer', (line) => {
    if (typeof line.error === 'string') throw new ApiError(502, `Ollama failed while answering: ${line.error}`, 'upstream_error');
    const message = line.message as { content?: unknown; thinking?: unknown; tool_calls?: unknown } | undefined;
    if (typeof message?.content === 'string') content += message.content;
    if (typeof message?.thinking === 'string') thinking += message.thinking;
    if (Array.isArray(message?.tool_calls)) toolCalls.push(...(message.tool_calls as ToolCall[]));
    if (line.done === true) final = line;
  });
  if (!final) throw new ApiError(502, 'Ollama closed the connection before the answer was complete. Retry the request.', 'upstream_error');
  deps.metrics?.generation(body.model, final.eval_count, final.eval_duration, recordOf(signal)?.instance);
  const { message: _last, ...statistics } = final as Statistics & { message?: unknown };
  return {
    ...statistics,
    response: content,
    message: {
      role: 'assistant',
      content,
      ...(thinking !== '' && { thinking }),
      ...(toolCalls.length > 0 && { tool_calls: toolCalls }),
    },
  };
}

/** The streamed answer: Ollama's lines relayed as they come, in the negotiated format. */
export async function chatStream(
  deps: Deps,
  body: ChatBody,
  signal: AbortSignal,
  format: StreamFormat,
  observe?: () => StreamObserver,
): Promise<Response> {
  const call = await startChat(deps, body, signal);
  const upstream = await linesOf(call.response);
  return streamResponse(answerIdle(deps.config), call, upstream, format, (line) => line.done === true, observe);
}
