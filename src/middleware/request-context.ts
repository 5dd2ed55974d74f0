import { createMiddleware } from 'hono/factory';
import { ApiError } from '../http/errors';
import { errorPayload } from '../http/render-error';
import { factsOf } from '../http/route-facts';
import type { Lifecycle } from '../lifecycle';
import type { Metrics, StreamEnd, StreamObserver } from '../observability/metrics';
import { attachRecord, type RequestRecord } from '../observability/request-record';
import { type AppEnv, hasParsedHost, requestPath } from '../http/router';
import { routeLabel } from '../observability/route-label';

/** A client's own request id is kept when it is a plain token; anything else (CR/LF, quotes, 200 characters) is replaced. */
const CLIENT_REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

export type RequestLog = (line: string) => void;

export type RequestContextOptions = {
  metrics?: Metrics;
  lifecycle: Lifecycle;
  /** Where request log lines go (stdout by default); undefined turns the log off. */
  log?: RequestLog;
  /** The client's address from the peer's and `X-Forwarded-For` (see MINATO_TRUSTED_PROXIES). */
  clientAddress?: (peer: string, forwardedFor: string | undefined) => string;
};

/** Bun.serve's idle timeout (seconds): a connection silent this long is closed. */
export const IDLE_TIMEOUT_SECONDS = 10;

/**
 * The outermost middleware: gives every request an id (the client's `X-Request-Id`, or a new
 * one) returned on every response; counts it in flight for graceful shutdown; and when it is
 * over — for a stream, at the stream's end — records it in the metrics and writes one JSON line
 * to the log: id, route, model, key id (never the key), status, time to first byte, duration,
 * bytes, whether the client left, Ollama's status. Prompts and query strings are never logged.
 */
export function requestContext({ metrics, lifecycle, log, clientAddress = (peer) => peer }: RequestContextOptions) {
  /** One request's log line; `end` for a stream. Written once, however many ends are reported. */
  const finish = (
    request: RequestSummary,
    status: number,
    route: string,
    firstByteAt: number | 'end' | undefined,
    end?: StreamEnd,
    contentLength?: string | null,
  ) => {
    if (request.finished) return;
    request.finished = true;
    request.done();
    request.restoreIdle?.();
    if (!log) return;
    const { record, startedAt } = request;
    const now = performance.now();
    const firstByte = firstByteAt === 'end' ? now : firstByteAt;
    const path = requestPath(request.url);
    log(
      JSON.stringify({
        time: new Date().toISOString(),
        level: status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info',
        msg: 'request',
        request_id: request.id,
        method: request.method,
        route,
        path: path.length > 200 ? `${path.slice(0, 200)}…` : path,
        model: record.model,
        instance: record.instance,
        key_id: record.keyId,
        client: request.client(),
        status,
        error: record.errorCode ?? end?.errorKind,
        ttfb_ms: firstByte === undefined ? undefined : round(firstByte - startedAt),
        duration_ms: round(now - startedAt),
        bytes: end ? end.bytes : (record.bytes ?? (contentLength == null ? undefined : Number(contentLength))),
        client_aborted: end?.clientAborted === true || status === 499,
        upstream_status: record.upstreamStatus,
        queued_at: record.queuedAt || undefined,
        queue_ms: record.queueMs === undefined ? undefined : round(record.queueMs),
        ignored_params: record.ignoredParams,
      }),
    );
  };

  /**
   * A stream's observer: its first byte and its end go to the metrics and the log line. One
   * object holding what those need and not the request's Hono context, which a closure here
   * would keep alive (with everything parsed from the request) for as long as the stream runs.
   */
  class StreamWatch implements StreamObserver {
    #firstByteAt: number | undefined;
    #ended = false;
    #unsubscribe: (() => void) | undefined;
    readonly #metric: StreamObserver | undefined;
    constructor(
      readonly request: RequestSummary,
      readonly route: string,
      /** Given back when the stream ends (the admission slot), before anything is recorded. */
      readonly slot: { release(): void } | undefined,
    ) {
      this.#metric = metrics?.stream(route, request.method, request.startedAt);
      // Known while the request is live: its log line is written when the stream ends.
      request.client();
    }
    firstByte() {
      this.#firstByteAt = performance.now();
      this.#metric?.firstByte();
    }
    end(result: StreamEnd) {
      if (this.#ended) return;
      this.#ended = true;
      this.slot?.release();
      this.#unsubscribe?.();
      const { instance } = this.request.record;
      this.#metric?.end(instance === undefined ? result : { ...result, instance });
      finish(this.request, 200, this.route, this.#firstByteAt, result);
    }
    onCutOff(cut: () => void) {
      if (!this.#ended) this.#unsubscribe = lifecycle.onCutOff(cut);
    }
  }

  return createMiddleware<AppEnv>(async (c, next) => {
    const startedAt = performance.now();
    // Without a usable Host header Bun leaves the URL relative (`/echo?message=x`), and Hono looks
    // for the query from the 8th character on (after `http://`): on a short path it found none.
    if (!hasParsedHost(c.req.raw.url)) Object.defineProperty(c.req, 'url', { value: `http://_${c.req.raw.url}` });
    const given = c.req.header('x-request-id');
    const requestId = given !== undefined && CLIENT_REQUEST_ID.test(given) ? given : crypto.randomUUID();
    const record: RequestRecord = {};
    c.set('record', record);
    attachRecord(c.req.raw.signal, record);
    let client: string | undefined;
    const request: RequestSummary = {
      id: requestId,
      method: c.req.method,
      url: c.req.raw.url,
      startedAt,
      record,
      done: lifecycle.begin(),
      finished: false,
      client: () => {
        client ??= clientAddress(c.env?.server?.requestIP(c.req.raw)?.address ?? 'local', c.req.header('x-forwarded-for'));
        return client;
      },
    };
    c.set('client', request.client);
    // A generation holding a slot, or a pull, may wait on Ollama for minutes in silence: Bun's idle
    // timer is off while it does, and back on when its answer ends (Bun keeps the setting for the
    // whole keep-alive connection).
    c.set('holdConnection', () => {
      const server = c.env?.server;
      if (!server || request.restoreIdle || request.finished) return;
      const raw = c.req.raw;
      server.timeout(raw, 0);
      request.restoreIdle = () => server.timeout(raw, IDLE_TIMEOUT_SECONDS);
    });

    let streaming = false;
    c.set('observeStream', (slot) => {
      streaming = true;
      return new StreamWatch(request, routeLabel(c), slot);
    });

    // Shutdown past its grace period answers a request that has no response yet with a 503
    // (its handler is left to the process's exit, which closes its connection to Ollama).
    let cut: (() => void) | undefined;
    const cutOff = new Promise<'cut'>((resolve) => {
      cut = () => resolve('cut');
    });
    const unsubscribe = lifecycle.onCutOff(cut!);
    const handled = next();
    const outcome = await Promise.race([handled, cutOff]);
    unsubscribe();
    if (outcome === 'cut' && !streaming) {
      handled.catch(() => {});
      record.errorCode = 'cut_off_by_shutdown';
      // In the dialect of the route, as every error (the error handler is not in this path).
      const error = new ApiError(
        503,
        'Minato is shutting down and could not finish this request in time. Retry on another instance, or in a few seconds.',
        'shutting_down',
        { 'Retry-After': '5', Connection: 'close' },
      );
      c.res = Response.json(errorPayload(factsOf(c)?.surface ?? 'minato', error), {
        status: 503,
        headers: error.headers,
      });
    } else if (outcome === 'cut') {
      await handled;
    }

    try {
      c.res.headers.set('X-Request-Id', requestId);
    } catch {
      // Headers of a Response built elsewhere can be immutable.
      c.res = new Response(c.res.body, c.res);
      c.res.headers.set('X-Request-Id', requestId);
    }
    if (!streaming) {
      const route = routeLabel(c);
      metrics?.request(route, c.req.method, c.res.status, (performance.now() - startedAt) / 1000);
      // A whole answer's first byte goes out with the rest of it.
      finish(request, c.res.status, route, 'end', undefined, c.res.headers.get('content-length'));
    }
  });
}

/** What the log line of a request needs, kept apart from its Hono context. */
type RequestSummary = {
  id: string;
  method: string;
  url: string;
  startedAt: number;
  record: RequestRecord;
  /** Counts the request out of those in flight (graceful shutdown). */
  done: () => void;
  /** Its line is written (one per request, even when a stream its 503 replaced ends later). */
  finished: boolean;
  /** The client's address (resolved once, on first use). */
  client: () => string;
  /** Switches Bun's idle timer back on, when it was switched off for a long wait. */
  restoreIdle?: () => void;
};

const round = (ms: number) => Math.round(ms * 10) / 10;
