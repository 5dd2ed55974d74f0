import type { Deadline } from '../config';
import { ApiError, ClientGoneError, networkErrorText } from '../http/errors';
import { parseObject } from '../streaming/ndjson';
import { noteUpstreamStatus } from '../observability/request-record';

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export type OllamaClientOptions = {
  baseUrl: string;
  /** Injected so tests and other runtimes can supply their own; defaults to the global fetch. */
  fetch?: FetchLike;
  /** After this long without response headers, check that Ollama's port accepts connections at all. */
  probeAfterMs?: number;
  /** Told when a request starts and stops waiting for Ollama's first byte (+1 / -1), for metrics. */
  onWaiting?: (delta: 1 | -1) => void;
};

/**
 * Opens and closes a TCP connection to Ollama's host and port. A refused connection fails at
 * once anyway; this catches the host that does not answer at all (down, firewalled, wrong
 * address), which fetch would otherwise wait on until the first-byte deadline, minutes away.
 */
export async function probeTcp(baseUrl: string, timeoutMs: number): Promise<string | undefined> {
  // Loaded when first needed (Ollama slow to answer): node:net adds ≈ 6 MB to an idle Minato.
  const { createConnection } = await import('node:net');
  const url = new URL(baseUrl);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  return new Promise((resolve) => {
    const socket = createConnection({ host: url.hostname.replace(/^\[|\]$/g, ''), port });
    const done = (problem: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(problem);
    };
    const timer = setTimeout(() => done(`no answer from ${url.host} within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (error) => done(networkErrorText(error)));
  });
}

export type UpstreamCall = {
  response: Response;
  /** Aborts the upstream request (and so Ollama's work on it). */
  abort: (reason?: unknown) => void;
};

export type CallOptions = {
  /** The client's signal: when the client goes away, so does the upstream request. */
  signal?: AbortSignal;
  /** Deadline for Ollama's response headers (Ollama sends none until its first line), and its setting for the 504. */
  deadline: Deadline;
  method?: 'GET' | 'POST' | 'DELETE' | 'HEAD';
  /** The model the request is for, when the body is not read by Minato: chooses the instance among several. */
  model?: string;
};

/** A body, or a function that builds it: a streamed body (images) can then be built again for a retry on another instance. */
export type CallBody = unknown;

export type OllamaClient = {
  baseUrl: string;
  call: (path: string, body: unknown, options: CallOptions) => Promise<UpstreamCall>;
};

/**
 * The call's own AbortController, aborted when the client goes away, and the function that aborts
 * it: what outlives the call while its body streams. Made in a scope of their own, as closures
 * made in `call` would keep all of that scope (the body, the timers' functions) alive with them
 * for as long as the stream runs.
 */
function abortable(signal: AbortSignal | undefined) {
  const controller = new AbortController();
  // The listener stays while the body streams: a client that leaves mid-stream must still abort it.
  signal?.addEventListener('abort', () => controller.abort(new ClientGoneError()), { once: true });
  return { controller, abort: (reason?: unknown) => controller.abort(reason) };
}

export function createOllamaClient({
  baseUrl,
  fetch = globalThis.fetch,
  probeAfterMs = 750,
  onWaiting,
}: OllamaClientOptions): OllamaClient {
  /**
   * One probe at a time for all requests, and a success remembered for a second: thousands of
   * requests waiting at once (a burst of streams, a model load) must not each open a connection
   * to Ollama, which would only slow its accept queue down and make probes time out falsely.
   */
  let probing: Promise<string | undefined> | undefined;
  let reachableAt = Number.NEGATIVE_INFINITY;
  const sharedProbe = (): Promise<string | undefined> => {
    if (performance.now() - reachableAt < 1000) return Promise.resolve(undefined);
    probing ??= probeTcp(baseUrl, probeAfterMs).then((problem) => {
      probing = undefined;
      if (problem === undefined) reachableAt = performance.now();
      return problem;
    });
    return probing;
  };

  const call = async (path: string, given: CallBody, options: CallOptions): Promise<UpstreamCall> => {
    const body = typeof given === 'function' ? (given as () => unknown)() : given;
    const { signal, deadline: limit, method = body === undefined ? 'GET' : 'POST' } = options;
    const firstByteTimeoutMs = limit.ms;
    const timeoutSetting = limit.setting;
    if (signal?.aborted) throw new ClientGoneError();
    const { controller, abort } = abortable(signal);
    let timedOut = false;
    let unreachable: string | undefined;
    let settled = false;
    const deadline = () => {
      timedOut = true;
      controller.abort(new Error('first byte timeout'));
    };
    // Ollama is silent while it loads a model, so silence alone proves nothing; a port that does
    // not accept connections does. Check once, shortly after the request went out. One timer
    // serves both: at the probe it is set again for the rest of the first-byte deadline (most
    // answers start long before either, and a timer per request is a cost on each).
    const probe = async () => {
      timer = setTimeout(deadline, firstByteTimeoutMs - probeAfterMs);
      const problem = await sharedProbe();
      if (problem !== undefined && !settled && !controller.signal.aborted) {
        unreachable = problem;
        controller.abort(new Error(problem));
      }
    };
    let timer = probeAfterMs < firstByteTimeoutMs ? setTimeout(probe, probeAfterMs) : setTimeout(deadline, firstByteTimeoutMs);
    onWaiting?.(1);
    try {
      // Only our own headers go upstream: never the client's Host, Origin, cookies or
      // Authorization, which Ollama answers with 403 (DNS-rebinding guard and CORS).
      const streamed = body instanceof ReadableStream;
      // Bytes are a client's JSON body relayed as it came (the /api surface): sent unchanged.
      const raw = body instanceof Uint8Array;
      const init: RequestInit & { timeout?: boolean; duplex?: 'half' } = {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        // A stream is a JSON body written as it is sent (large images); anything else is serialized here.
        body: body === undefined ? undefined : streamed || raw ? (body as RequestInit['body']) : JSON.stringify(body),
        ...(streamed && { duplex: 'half' as const }),
        signal: controller.signal,
        // Bun's fetch has its own 5-minute idle timeout; our deadlines replace it.
        timeout: false,
      };
      const response = await fetch(`${baseUrl}${path}`, init);
      noteUpstreamStatus(signal, response.status);
      // Ollama has no authentication: a 401 comes from something else at OLLAMA_HOST (another
      // Minato with keys, a proxy that authenticates). Relayed as it came, its "needs an API key"
      // would read as this Minato asking the client for a key.
      if (response.status === 401) throw await askedForCredentials(response, baseUrl);
      return { response, abort };
    } catch (error) {
      if (error instanceof ApiError) throw error;
      if (signal?.aborted) throw new ClientGoneError();
      if (unreachable !== undefined) {
        throw new ApiError(
          502,
          `Cannot reach Ollama at ${baseUrl} (${unreachable}). Check that Ollama is running and that OLLAMA_HOST points at it.`,
          'upstream_unreachable',
        );
      }
      if (timedOut) {
        throw new ApiError(
          504,
          `Ollama sent no answer within ${Math.round(firstByteTimeoutMs / 1000)} s (${timeoutSetting}). A model may still be loading, or Ollama is busy with other requests: retry, or raise ${timeoutSetting}.`,
          'upstream_timeout',
        );
      }
      // Ollama took the connection, then dropped it before answering (a crash or restart mid-request).
      if ((error as { code?: string }).code === 'ECONNRESET') {
        throw new ApiError(
          502,
          `Ollama at ${baseUrl} dropped the connection before answering (${networkErrorText(error)}); it may have crashed or restarted. Retry the request, and check Ollama's log if it happens again.`,
          'upstream_dropped',
        );
      }
      throw new ApiError(
        502,
        `Cannot reach Ollama at ${baseUrl} (${networkErrorText(error)}). Check that Ollama is running and that OLLAMA_HOST points at it.`,
        'upstream_unreachable',
      );
    } finally {
      onWaiting?.(-1);
      settled = true;
      clearTimeout(timer);
    }
  };
  return { baseUrl, call };
}

/** What a failed answer from OLLAMA_HOST said: Ollama's own message, or a one-line description of something else. */
type UpstreamMessage = { message: string; fromOllama: boolean; json?: boolean };

async function readUpstreamMessage(response: Response): Promise<UpstreamMessage> {
  const text = (await response.text().catch(() => '')).trim();
  const error = parseObject(text)?.error;
  if (typeof error === 'string' && error !== '') return { message: error, fromOllama: true, json: true };
  if (text === '') return { message: `HTTP ${response.status}`, fromOllama: true };
  const type = response.headers.get('content-type')?.split(';')[0]?.trim();
  // Ollama answers JSON, or a short plain line for its own router's 404/405. Anything else (an
  // HTML page, a long text) is another server: describe it in one line rather than paste it.
  if (type !== 'text/plain' || text.length > 200 || text.startsWith('<')) {
    return {
      message: `HTTP ${response.status} with ${type ? `a ${type}` : 'an untyped'} body of ${text.length} bytes, not Ollama's JSON`,
      fromOllama: false,
    };
  }
  return { message: text, fromOllama: true };
}

/** Ollama's `{"error": "..."}` message; for an answer that is not Ollama's, a one-line description of it. */
export async function readUpstreamError(response: Response): Promise<string> {
  return (await readUpstreamMessage(response)).message;
}

/**
 * Maps an unsuccessful Ollama answer onto what the client should see: its own mistakes as 4xx,
 * Ollama's trouble as 502/503 with what to do about it, and an answer from something that is not
 * Ollama as a 502 that says to check OLLAMA_HOST.
 */
async function askedForCredentials(response: Response, baseUrl: string): Promise<ApiError> {
  const { message } = await readUpstreamMessage(response).catch(() => ({ message: 'HTTP 401' }));
  return new ApiError(
    502,
    `The server at OLLAMA_HOST (${baseUrl}) asked Minato for credentials (HTTP 401: ${JSON.stringify(message.slice(0, 200))}). Ollama itself has none, so OLLAMA_HOST points at something else: another Minato or a proxy with authentication. Point OLLAMA_HOST at Ollama's own address, such as http://127.0.0.1:11434. (This is not about the key you sent.)`,
    'upstream_not_ollama',
  );
}

export async function upstreamError(response: Response, model?: string): Promise<ApiError> {
  const { message, fromOllama, json } = await readUpstreamMessage(response);
  const status = response.status;
  // Ollama says a model is missing in JSON; a bare `404 page not found` is its router saying the
  // path does not exist: OLLAMA_HOST has a path that should not be there.
  if (!fromOllama || (status === 404 && !json)) {
    return new ApiError(
      502,
      `${fromOllama ? `OLLAMA_HOST answered ${JSON.stringify(message)} for ${new URL(response.url || 'http://x/').pathname}` : `Something other than Ollama answered at OLLAMA_HOST (${message})`}. Check that OLLAMA_HOST is Ollama's address, such as http://127.0.0.1:11434, with no path.`,
      'upstream_not_ollama',
    );
  }
  if (status === 404 && model !== undefined) {
    return new ApiError(
      404,
      `Model '${model}' is not installed in Ollama. Install it with POST /install/${model} (Ollama said: ${message})`,
      'model_not_found',
    );
  }
  // A capability the model lacks (`… does not support tools`, `"x" does not support thinking`): name it.
  const lacking = status === 400 ? /does not support (\w+)/.exec(message)?.[1] : undefined;
  if (lacking !== undefined) {
    return new ApiError(
      400,
      `Model '${model ?? '?'}' does not support ${lacking} (Ollama said: ${message}). Use a model that lists "${lacking}" among its capabilities, or leave that part of the request out.`,
      'model_lacks_capability',
    );
  }
  if (status === 400) return new ApiError(400, `Ollama rejected the request: ${message}`, 'upstream_bad_request');
  if (status === 503) {
    return new ApiError(503, `Ollama is busy (${message}). Retry after a few seconds.`, 'upstream_busy', {
      'Retry-After': '5',
    });
  }
  if (status === 403) {
    return new ApiError(
      502,
      'Ollama refused the request (403). It checks Host and Origin headers: make sure OLLAMA_HOST points at Ollama directly, not through a proxy that rewrites them.',
      'upstream_forbidden',
    );
  }
  return new ApiError(502, `Ollama failed (HTTP ${status}): ${message}`, 'upstream_error');
}
