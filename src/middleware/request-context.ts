import { createMiddleware } from 'hono/factory';
import type { Lifecycle } from '../lifecycle';
import type { Metrics, StreamEnd } from '../observability/metrics';
import { attachRecord, type RequestRecord } from '../observability/request-record';
import { type AppEnv, requestPath } from '../http/router';
import { routeLabel } from '../observability/route-label';

/** A client's own request id is kept when it is a plain token; anything else (CR/LF, quotes, 200 characters) is replaced. */
const CLIENT_REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

export type RequestLog = (line: string) => void;

export type RequestContextOptions = {
  metrics?: Metrics;
  lifecycle: Lifecycle;
  /** Where request log lines go (stdout by default); undefined turns the log off. */
  log?: RequestLog;
};

/**
 * The outermost middleware: gives every request an id (the client's `X-Request-Id`, or a new
 * one) returned on every response; counts it in flight for graceful shutdown; and when it is
 * over — for a stream, at the stream's end — records it in the metrics and writes one JSON line
 * to the log: id, route, model, key id (never the key), status, time to first byte, duration,
 * bytes, whether the client left, Ollama's status. Prompts and query strings are never logged.
 */
export function requestContext({ metrics, lifecycle, log }: RequestContextOptions) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const startedAt = performance.now();
    const given = c.req.header('x-request-id');
    const requestId = given !== undefined && CLIENT_REQUEST_ID.test(given) ? given : crypto.randomUUID();
    const record: RequestRecord = {};
    c.set('record', record);
    attachRecord(c.req.raw.signal, record);
    const done = lifecycle.begin();

    // One line per request, even when a stream its 503 replaced (shutdown) ends later.
    let finished = false;
    /** `firstByteAt` 'end': a whole answer, whose first byte goes out with the rest of it. */
    const finish = (status: number, route: string, firstByte: number | 'end' | undefined, end?: StreamEnd) => {
      if (finished) return;
      finished = true;
      done();
      if (!log) return;
      const now = performance.now();
      const firstByteAt = firstByte === 'end' ? now : firstByte;
      const contentLength = c.res.headers.get('content-length');
      const path = requestPath(c.req.raw.url);
      log(
        JSON.stringify({
          time: new Date().toISOString(),
          level: status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info',
          msg: 'request',
          request_id: requestId,
          method: c.req.method,
          route,
          path: path.length > 200 ? `${path.slice(0, 200)}…` : path,
          model: record.model,
          instance: record.instance,
          key_id: record.keyId,
          status,
          error: record.errorCode ?? end?.errorKind,
          ttfb_ms: firstByteAt === undefined ? undefined : round(firstByteAt - startedAt),
          duration_ms: round(now - startedAt),
          bytes: end ? end.bytes : (record.bytes ?? (contentLength === null ? undefined : Number(contentLength))),
          client_aborted: end?.clientAborted === true || status === 499,
          upstream_status: record.upstreamStatus,
          queued_at: record.queuedAt || undefined,
          queue_ms: record.queueMs === undefined ? undefined : round(record.queueMs),
          ignored_params: record.ignoredParams,
        }),
      );
    };

    let streaming = false;
    c.set('observeStream', () => {
      streaming = true;
      const route = routeLabel(c);
      const observer = metrics?.stream(route, c.req.method, startedAt);
      let firstByteAt: number | undefined;
      let ended = false;
      let unsubscribe: (() => void) | undefined;
      return {
        firstByte: () => {
          firstByteAt = performance.now();
          observer?.firstByte();
        },
        end: (result) => {
          if (ended) return;
          ended = true;
          unsubscribe?.();
          observer?.end(record.instance === undefined ? result : { ...result, instance: record.instance });
          finish(200, route, firstByteAt, result);
        },
        onCutOff: (cut) => {
          if (!ended) unsubscribe = lifecycle.onCutOff(cut);
        },
      };
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
      c.res = Response.json(
        {
          detail: 'Minato is shutting down and could not finish this request in time. Retry on another instance, or in a few seconds.',
          code: 'shutting_down',
        },
        { status: 503, headers: { 'Retry-After': '5', Connection: 'close' } },
      );
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
      finish(c.res.status, route, 'end');
    }
  });
}

const round = (ms: number) => Math.round(ms * 10) / 10;
