import type { Context, TypedResponse } from 'hono';
import type { JSONParsed } from 'hono/utils/types';
import { isTicket, type Slot, type Ticket } from './queue';
import { ApiError, ClientGoneError } from '../http/errors';
import type { StreamObserver } from '../observability/metrics';
import { inBandError, STREAM_CONTENT_TYPES, STREAM_HEADERS, type StreamFormat } from '../streaming/ndjson';
import { ownerOf } from '../security/owner';
import { resolvedModelName } from '../http/model-name';
import type { AppEnv } from '../http/router';
import type { Deps } from '../deps';
import type { Fleet } from '../ollama/fleet';

/**
 * Generations pass through Minato's admission control (src/admission/queue.ts) before they reach
 * Ollama. Every answer says where it stood: `X-Queue-Position` (its place on arrival, 0 when it
 * started at once) and `Server-Timing: queue;dur=<ms>`. An SSE client that has to wait gets its
 * response at once, with a `queued` event each time its place changes, and the answer after.
 */

const encoder = new TextEncoder();
const queuedEvent = (position: number) => encoder.encode(`event: queued\ndata: {"position":${position}}\n\n`);

/** Where the answer stood in the queue (see above), on the response it gets. */
function setQueueHeaders(headers: Headers, slot: Slot) {
  headers.set('X-Queue-Position', String(slot.queuedAt));
  headers.set('Server-Timing', `queue;dur=${slot.waitedMs.toFixed(1)}`);
}

function noteSlot(c: Context<AppEnv>, slot: Slot) {
  c.var.record.queuedAt = slot.queuedAt;
  c.var.record.queueMs = slot.waitedMs;
  // With several instances the slot is on one of them: the request goes there (and moves the slot if it fails over).
  if (slot.place !== '') {
    c.var.record.instance = slot.place;
    c.var.record.slot = slot;
  }
}

/** With several instances, where `model` may run (best first). */
async function placesFor(c: Context<AppEnv>, fleet: Fleet, deps: Deps, model: string): Promise<string[]> {
  // `?host=` (where a route takes it) pins the request to one instance.
  if (c.var.record.pinned !== undefined) return [c.var.record.pinned];
  return (await fleet.candidates(model, deps.admission.runningOn, c.var.record.conversation)).map((instance) => instance.name);
}

/**
 * Asks for a slot for `model` (on one of the instances that have it, with several): one at once,
 * or a ticket to wait on (throws 503 when the queue is full, 404 when no instance has the model).
 */
function enter(c: Context<AppEnv>, deps: Deps, model: string): Slot | Ticket | Promise<Slot | Ticket> {
  c.var.record.model = model;
  // Waiting in the queue, or on a model that loads, sends nothing for minutes: Bun's idle timer
  // is off from here until the answer ends.
  c.var.holdConnection?.();
  const { fleet } = deps;
  // One instance: no promise on the way (the common case, on every generation).
  if (!fleet) return deps.admission.enter(resolvedModelName(model), c.req.raw.signal, ownerOf(c, deps.config));
  return placesFor(c, fleet, deps, model).then((places) =>
    deps.admission.enter(resolvedModelName(model), c.req.raw.signal, ownerOf(c, deps.config), places),
  );
}

/** Refuses now (503) a generation that could neither start nor wait, before work that precedes the slot (reading an upload). */
export async function checkAdmission(c: Context<AppEnv>, deps: Deps, model: string) {
  c.var.record.model = model;
  const places = deps.fleet ? await placesFor(c, deps.fleet, deps, model) : undefined;
  deps.admission.check(resolvedModelName(model), ownerOf(c, deps.config), places);
}

/** Refuses now (503) a generation that could neither start nor wait whatever its model: before its body is read. */
export function checkAdmissionAnyModel(c: Context<AppEnv>, deps: Deps) {
  deps.admission.checkAnyModel(ownerOf(c, deps.config));
}

/** The slot itself, waiting for it when it came as a ticket (a 503 when the wait is too long). */
async function slotOf(c: Context<AppEnv>, entry: Slot | Ticket): Promise<Slot> {
  const slot = isTicket(entry) ? await entry.slot : entry;
  noteSlot(c, slot);
  return slot;
}

/** A synchronous answer inside a slot, released when the answer is over. */
export async function admittedSync<T extends object>(
  c: Context<AppEnv>,
  deps: Deps,
  model: string,
  answer: () => Promise<T>,
): Promise<TypedResponse<JSONParsed<T>, 200, 'json'>> {
  const slot = await slotOf(c, await enter(c, deps, model));
  try {
    // Serialised here rather than by c.json, so that the request log can say how many bytes it
    // sent; typed as what c.json would have returned, so that routes and hc<AppType> see the answer.
    const body = JSON.stringify(await answer());
    c.var.record.bytes = Buffer.byteLength(body);
    const response = c.body(body, 200, { 'Content-Type': 'application/json' });
    setQueueHeaders(response.headers, slot);
    return response as unknown as TypedResponse<JSONParsed<T>, 200, 'json'>;
  } finally {
    slot.release();
  }
}

/**
 * A whole upstream answer (a relayed `stream:false` or embedding) inside a slot: `produce` reads it
 * to its end before the slot is given back.
 */
export async function admittedWhole(c: Context<AppEnv>, deps: Deps, model: string, produce: () => Promise<Response>): Promise<Response> {
  const slot = await slotOf(c, await enter(c, deps, model));
  try {
    const response = await produce();
    setQueueHeaders(response.headers, slot);
    return response;
  } finally {
    slot.release();
  }
}

/** The request's stream observer, which also gives the slot back when the stream ends. */
const releasingObserver = (c: Context<AppEnv>, slot: Slot) => (): StreamObserver =>
  c.var.observeStream?.(slot) ?? { firstByte: () => {}, end: () => slot.release() };

/** Starts the upstream stream; handed the observer it must pass on to the relay. */
type StartStream = (observe: () => StreamObserver) => Promise<Response>;

/**
 * Runs `start`, noting whether the answer is a relayed stream (it asked for its observer). One
 * that is not (Ollama's error, a single object passed on whole) never ends a stream, so the
 * caller must give its slot back itself (`onWhole`).
 */
function startWatched(start: StartStream, observe: () => StreamObserver, onWhole: () => void): Promise<Response> {
  let streamed = false;
  return start(() => {
    streamed = true;
    return observe();
  }).then((response) => {
    if (!streamed) onWhole();
    return response;
  });
}

/** A streamed answer inside a slot, released when the stream ends however it ends. */
export async function admittedStream(
  c: Context<AppEnv>,
  deps: Deps,
  model: string,
  format: StreamFormat,
  start: StartStream,
  { queueEvents = true } = {},
): Promise<Response> {
  const entry = await enter(c, deps, model);
  if (isTicket(entry) && format === 'sse' && queueEvents) return queuedSse(c, entry, start);
  const slot = await slotOf(c, entry);
  try {
    const response = await startWatched(start, releasingObserver(c, slot), () => slot.release());
    setQueueHeaders(response.headers, slot);
    return response;
  } catch (error) {
    slot.release();
    throw error;
  }
}

/**
 * The SSE answer of a request that has to wait: `event: queued` lines while it waits, then the
 * answer's events; an error after the headers are sent (queue timeout, model not installed)
 * arrives in-band as `event: error`, the way Ollama's own mid-stream errors do.
 */
function queuedSse(c: Context<AppEnv>, ticket: Ticket, start: StartStream): Response {
  const observer = c.var.observeStream?.();
  let answer: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> } | undefined;
  let sent = 0;
  let finished = false;
  const finish = (controller: ReadableStreamDefaultController<Uint8Array>, message: string | undefined, errorKind?: string) => {
    if (finished) return;
    finished = true;
    if (message !== undefined) {
      const bytes = inBandError('sse', message);
      sent += bytes.length;
      controller.enqueue(bytes);
    }
    observer?.end({ errorKind, bytes: sent, clientAborted: c.req.raw.signal.aborted });
    controller.close();
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const first = queuedEvent(ticket.position);
        sent += first.length;
        controller.enqueue(first);
        observer?.firstByte();
        ticket.slot.catch(() => {}); // a rejection is handled in pull; never left unhandled
        observer?.onCutOff?.(() => {
          if (answer) answer.cancel().catch(() => {});
          finish(
            controller,
            'Minato is shutting down; the answer was cut off. Retry on another instance, or in a few seconds.',
            'cut_off_by_shutdown',
          );
        });
        ticket.onPosition((position) => {
          if (finished || answer) return;
          const event = queuedEvent(position);
          sent += event.length;
          controller.enqueue(event);
        });
      },
      async pull(controller) {
        if (finished) return;
        if (!answer) {
          let slot: Slot;
          try {
            slot = await ticket.slot;
          } catch (error) {
            finish(controller, error instanceof ApiError ? error.detail : undefined, error instanceof ApiError ? error.code : undefined);
            return;
          }
          if (finished) {
            slot.release();
            return;
          }
          noteSlot(c, slot);
          try {
            const response = await startWatched(
              start,
              () => ({
                firstByte: () => {},
                end: (result) => {
                  slot.release();
                  sent += result.bytes;
                  if (result.errorKind) c.var.record.errorCode = result.errorKind;
                },
              }),
              () => slot.release(),
            );
            answer = (response.body as ReadableStream<Uint8Array>).getReader();
          } catch (error) {
            slot.release();
            if (error instanceof ClientGoneError) return finish(controller, undefined);
            if (error instanceof ApiError) c.var.record.errorCode = error.code;
            finish(controller, error instanceof ApiError ? error.detail : 'Minato failed to start the answer.', 'start_failed');
            return;
          }
        }
        const { done, value } = await answer!.read();
        if (finished) return;
        if (done) finish(controller, undefined);
        else if (value) controller.enqueue(value);
      },
      cancel(reason) {
        finished = true;
        observer?.end({ clientAborted: true, bytes: sent });
        return answer?.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(stream, {
    status: 200,
    headers: { 'Content-Type': STREAM_CONTENT_TYPES.sse, ...STREAM_HEADERS, 'X-Queue-Position': String(ticket.position) },
  });
}
