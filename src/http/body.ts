import type { Context } from 'hono';
import { ApiError, ClientGoneError } from './errors';

/**
 * Request bodies, read only when a handler asks for one: after the key, its scope, its rate limit
 * and (where the route knows the model before the body) admission have all said yes. A request
 * that is refused never has its body read; Bun discards what it did not read.
 *
 * Each body is read within its route's size limit, within MINATO_BODY_TIMEOUT (408 after it), and
 * within a budget shared by all the bodies in flight (MINATO_BODY_BUDGET): past it, a 503 with
 * `Retry-After` before a byte is read when the length is declared, or as soon as the budget runs
 * out for a chunked one. Never an out-of-memory.
 */

/** What the bodies in flight may hold in all, in bytes. */
export type BodyBudget = {
  /** Takes `bytes` from the budget; false (and nothing taken) when they do not fit. */
  take(bytes: number): boolean;
  give(bytes: number): void;
  readonly used: number;
  readonly limit: number;
};

export function createBodyBudget(limit: number): BodyBudget {
  let used = 0;
  return {
    take(bytes) {
      if (used + bytes > limit) return false;
      used += bytes;
      return true;
    },
    give(bytes) {
      used = Math.max(0, used - bytes);
    },
    get used() {
      return used;
    },
    limit,
  };
}

/** The 503 for a body that does not fit in the budget now. */
function budgetExhausted(budget: BodyBudget): ApiError {
  return new ApiError(
    503,
    `Minato is holding ${Math.round(budget.used / 1024 / 1024)} MiB of request bodies, its budget is ${Math.round(budget.limit / 1024 / 1024)} MiB (MINATO_BODY_BUDGET); this body does not fit now. Retry after the number of seconds in Retry-After.`,
    'body_budget_exhausted',
    { 'Retry-After': '2' },
  );
}

/** What one request's body holds of the budget: taken as it arrives, given back at once. */
class BudgetShare {
  #held = 0;
  constructor(readonly budget: BodyBudget) {}

  /** Takes `bytes` more, or throws the 503 when they do not fit. */
  take(bytes: number) {
    if (!this.budget.take(bytes)) throw budgetExhausted(this.budget);
    this.#held += bytes;
  }

  release() {
    this.budget.give(this.#held);
    this.#held = 0;
  }
}

const bodyTimeout = (ms: number) =>
  new ApiError(
    408,
    `The request body did not arrive within ${ms / 1000} s (MINATO_BODY_TIMEOUT). Send it faster, or raise the limit.`,
    'body_timeout',
    { Connection: 'close' },
  );

/**
 * Deadlines of bodies being read, checked by one timer four times a second instead of a timer
 * per request (a deadline fires up to 250 ms late; MINATO_BODY_TIMEOUT is seconds).
 */
const deadlines = new Set<{ at: number; expire: () => void }>();
let sweeper: ReturnType<typeof setInterval> | undefined;
function sweep() {
  if (deadlines.size === 0) {
    clearInterval(sweeper);
    sweeper = undefined;
    return;
  }
  const now = performance.now();
  for (const deadline of deadlines) {
    if (deadline.at <= now) {
      deadlines.delete(deadline);
      deadline.expire();
    }
  }
}

/** `work`, or `timedOut(ms)` if it has not settled within `ms` (up to the sweep's 250 ms later). */
export function withinDeadline<T>(work: Promise<T>, ms: number, timedOut: (ms: number) => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const deadline = { at: performance.now() + ms, expire: () => reject(timedOut(ms)) };
    deadlines.add(deadline);
    sweeper ??= setInterval(sweep, 250);
    work.then(
      (value) => {
        deadlines.delete(deadline);
        resolve(value);
      },
      (error) => {
        deadlines.delete(deadline);
        reject(error);
      },
    );
  });
}

const readFailures = new WeakMap<Request, unknown>();

/** Why reading this request's body failed, if it did (a 408, 413 or 503 behind a validator's 400). */
export const bodyReadFailure = (request: Request): unknown => readFailures.get(request);

/** How a route's body is to be read. */
export type BodyRules = {
  limit: number;
  overLimit: (what: string) => ApiError;
  budget: BodyBudget;
  /** Budget bytes per body byte: a body parsed whole into objects holds several times its size. */
  weight: number;
  timeoutMs: number;
};

/** A body being read, and the budget it holds until the request is answered. */
export class DeferredBody {
  readonly #share: BudgetShare;
  #promise: Promise<ArrayBuffer> | undefined;
  constructor(
    readonly request: Request,
    readonly rules: BodyRules,
  ) {
    this.#share = new BudgetShare(rules.budget);
  }

  /** The body's bytes, read on the first call. */
  read(): Promise<ArrayBuffer> {
    this.#promise ??= this.#read().catch((error) => {
      // A validator that reads the body turns any failure into its own 400 "Malformed JSON":
      // the real reason (408, 413, 503) is kept for the error handler.
      readFailures.set(this.request, error);
      throw error;
    });
    return this.#promise;
  }

  /** Gives back what the body took from the budget (the request is answered). */
  release() {
    this.#share.release();
  }

  /** A declared length over the limit was refused by the limits middleware before this was made. */
  async #read(): Promise<ArrayBuffer> {
    const { request, rules } = this;
    if (!request.body) return new ArrayBuffer(0);
    const length = request.headers.get('content-length');
    // A declared length is taken from the budget before a byte is read; a chunked body as it comes.
    if (length !== null) {
      this.#share.take(Number(length) * rules.weight);
      // Within its limit already: Bun reads it natively (a JS read loop and a timer each cost
      // microseconds on every relayed request), under the shared deadline watch.
      return await withinDeadline(request.arrayBuffer(), rules.timeoutMs, bodyTimeout).catch((error) => {
        throw this.#readError(error);
      });
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    await readChunks(request.body, {
      limit: rules.limit,
      overLimit: () => rules.overLimit('over'),
      readError: (error) => this.#readError(error),
      timeout: { ms: rules.timeoutMs, error: () => bodyTimeout(rules.timeoutMs) },
      onChunk: (chunk) => {
        total += chunk.length;
        this.#share.take(chunk.length * rules.weight);
        chunks.push(chunk);
      },
    });
    if (chunks.length === 1) {
      const only = chunks[0]!;
      return only.byteOffset === 0 && only.byteLength === only.buffer.byteLength
        ? (only.buffer as ArrayBuffer)
        : (only.buffer.slice(only.byteOffset, only.byteOffset + only.byteLength) as ArrayBuffer);
    }
    const whole = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      whole.set(chunk, at);
      at += chunk.length;
    }
    return whole.buffer;
  }

  #readError(error: unknown): Error {
    if (error instanceof ApiError) return error;
    // The client went away mid-upload: nobody is left to answer (logged as 499, not an error).
    if (this.request.signal.aborted) return new ClientGoneError();
    return new ApiError(400, 'The request body could not be read to the end (the upload was interrupted).', 'malformed_body');
  }
}

/**
 * Reads a body chunk by chunk into `onChunk`, giving up with `overLimit()` as soon as it passes
 * `limit` bytes (or `onChunk` throws), and with `timeout.error()` when it takes longer than
 * `timeout.ms`; a failed read is `readError(error)`. The reader is cancelled on any failure.
 */
export async function readChunks(
  body: ReadableStream<Uint8Array>,
  {
    limit,
    onChunk,
    overLimit,
    readError,
    timeout,
  }: {
    limit: number;
    onChunk: (chunk: Uint8Array) => void;
    overLimit: () => Error;
    readError: (error: unknown) => Error;
    timeout?: { ms: number; error: () => Error };
  },
): Promise<void> {
  const reader = body.getReader();
  let timedOut = false;
  const timer =
    timeout &&
    setTimeout(() => {
      timedOut = true;
      reader.cancel().catch(() => {});
    }, timeout.ms);
  let total = 0;
  try {
    for (;;) {
      let next: { done: boolean; value?: Uint8Array };
      try {
        next = await reader.read();
      } catch (error) {
        throw timedOut ? timeout!.error() : readError(error);
      }
      if (timedOut) throw timeout!.error();
      if (next.done || !next.value) break;
      total += next.value.length;
      if (total > limit) throw overLimit();
      onChunk(next.value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Makes every read of the request's body through Hono (`c.req.arrayBuffer()`, `json()`, `text()`,
 * the validators) go through `body`: Hono reads a body from its cache when one is there, so the
 * cache is given a getter that starts the read on first use.
 */
export function deferBody(c: Context, body: DeferredBody) {
  Object.defineProperty((c.req as unknown as { bodyCache: object }).bodyCache, 'arrayBuffer', {
    get: () => body.read(),
    enumerable: true,
    configurable: true,
  });
}

/**
 * An upload its route reads itself (the vision routes' images, held until Ollama has them),
 * counted against the same budget: a declared length at once, a chunked body as its chunks pass.
 * `request` is what the route reads from; `release` gives the budget back.
 */
export class ChargedUpload {
  readonly #share: BudgetShare;
  readonly request: Request;
  constructor(raw: Request, budget: BodyBudget) {
    const share = new BudgetShare(budget);
    this.#share = share;
    const length = raw.headers.get('content-length');
    if (!raw.body || length !== null) {
      if (raw.body && length !== null) share.take(Number(length));
      this.request = raw;
      return;
    }
    const body = raw.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          share.take(chunk.length);
          controller.enqueue(chunk);
        },
      }),
    );
    // What the upload readers use of a request: its headers, body and signal.
    this.request = { headers: raw.headers, body, signal: raw.signal } as unknown as Request;
  }

  release() {
    this.#share.release();
  }
}
