import { ApiError, ClientGoneError } from '../http/errors';

/**
 * Admission control for generations. Ollama queues every request for a loaded model without
 * bound (and answers 503 only when its scheduler queue of 512 is full), so a shared GPU box can be
 * buried. Minato decides first: at most `perModel` generations of one model and `total` in all run
 * at once; the rest wait in one FIFO queue, bounded per model and in all, for at most `timeoutMs`.
 *
 * Fairness: a request starts at once only when its model and the total both have room; a slot
 * that frees up goes to the first waiter that can use it, synchronously in `release`, so a newcomer
 * never overtakes a waiter that could have run.
 */

export type AdmissionLimits = {
  perModel: number;
  total: number;
  /** Generations one owner (an API key, or a client address) may run at once; no limit when absent. */
  perOwner?: number;
  queuePerModel: number;
  queueTotal: number;
  timeoutMs: number;
};

export type Slot = {
  /** Gives the slot back; safe to call more than once. */
  release(): void;
  /** The Ollama instance the slot is on ('' with a single instance). */
  readonly place: string;
  /**
   * Moves the slot to another instance (a failover before the first byte): counted there from now
   * on, even if that briefly puts one more than its limits there, rather than sending the request
   * back to the end of the queue.
   */
  move(place: string): void;
  /** 1-based place in the queue on arrival; 0 when it started at once. */
  readonly queuedAt: number;
  /** Time spent waiting. */
  readonly waitedMs: number;
};

type Waiter = {
  model: string;
  /** Instances it may run on, best first ([''] with a single instance). */
  places: readonly string[];
  owner: string | undefined;
  enqueuedAt: number;
  queuedAt: number;
  grant: (slot: Slot) => void;
  onPosition?: (position: number) => void;
  lastPosition: number;
};

/** A request that has to wait: where it stands, and the slot when it comes. */
export type Ticket = {
  position: number;
  slot: Promise<Slot>;
  /** Told the new position whenever a waiter ahead leaves the queue. */
  onPosition: (listener: (position: number) => void) => void;
};

export type Admission = ReturnType<typeof createAdmission>;

/** The places of a single instance. */
const ONE_PLACE: readonly string[] = [''];

/**
 * With several Ollama instances (`places`), every limit but the per-owner one applies to each
 * instance: `perModel` generations of a model and `total` in all on each GPU. A waiter names the
 * instances it may run on, best first, and takes the first of them to have room.
 */
export function createAdmission(limits: AdmissionLimits) {
  /** Running generations per instance and model (`place\nmodel`), and per instance. */
  const running = new Map<string, number>();
  const runningPerPlace = new Map<string, number>();
  let placesSeen = 1;
  const runningPerOwner = new Map<string, number>();
  let runningTotal = 0;
  const queue: Waiter[] = [];
  const queuedPerModel = new Map<string, number>();
  const decrement = (map: Map<string, number>, key: string) => {
    const left = (map.get(key) ?? 1) - 1;
    if (left === 0) map.delete(key);
    else map.set(key, left);
  };

  const ownerHasRoom = (owner: string | undefined) =>
    owner === undefined || (runningPerOwner.get(owner) ?? 0) < (limits.perOwner ?? Number.POSITIVE_INFINITY);
  /** The per-instance count's key: the model alone with one instance (no string built per request). */
  const keyOf = (place: string, model: string) => (place === '' ? model : `${place}\n${model}`);
  const placeHasRoom = (place: string, model: string) =>
    (runningPerPlace.get(place) ?? 0) < limits.total && (running.get(keyOf(place, model)) ?? 0) < limits.perModel;
  /** The first of `places` with room for `model`, if the owner has room too. */
  const roomAt = (model: string, owner: string | undefined, places: readonly string[]) => {
    if (!ownerHasRoom(owner)) return undefined;
    for (const place of places) if (placeHasRoom(place, model)) return place;
    return undefined;
  };

  const count = (place: string, model: string, delta: 1 | -1) => {
    const key = keyOf(place, model);
    if (delta === 1) {
      running.set(key, (running.get(key) ?? 0) + 1);
      runningPerPlace.set(place, (runningPerPlace.get(place) ?? 0) + 1);
    } else {
      decrement(running, key);
      decrement(runningPerPlace, place);
    }
  };

  /**
   * A slot is one object with its methods on a class (not a closure per method): thousands of
   * streams each hold one for their whole length.
   */
  class RunningSlot implements Slot {
    #released = false;
    #place: string;
    readonly #startedAt = performance.now();
    readonly waitedMs: number;
    constructor(
      readonly model: string,
      place: string,
      readonly owner: string | undefined,
      readonly queuedAt: number,
      enqueuedAt: number,
    ) {
      this.#place = place;
      this.waitedMs = queuedAt === 0 ? 0 : this.#startedAt - enqueuedAt;
    }
    get place() {
      return this.#place;
    }
    move(to: string) {
      if (this.#released || to === this.#place) return;
      count(this.#place, this.model, -1);
      count(to, this.model, 1);
      this.#place = to;
      dispatch();
    }
    release() {
      if (this.#released) return;
      this.#released = true;
      runningTotal--;
      count(this.#place, this.model, -1);
      if (this.owner !== undefined) decrement(runningPerOwner, this.owner);
      recordDuration(performance.now() - this.#startedAt);
      dispatch();
    }
  }

  const take = (model: string, place: string, owner: string | undefined, queuedAt: number, enqueuedAt: number): Slot => {
    runningTotal++;
    count(place, model, 1);
    if (owner !== undefined) runningPerOwner.set(owner, (runningPerOwner.get(owner) ?? 0) + 1);
    return new RunningSlot(model, place, owner, queuedAt, enqueuedAt);
  };

  const leaveQueue = (waiter: Waiter) => {
    const index = queue.indexOf(waiter);
    if (index === -1) return false;
    queue.splice(index, 1);
    decrement(queuedPerModel, waiter.model);
    return true;
  };

  const announcePositions = () => {
    queue.forEach((waiter, index) => {
      if (waiter.onPosition && waiter.lastPosition !== index + 1) {
        waiter.lastPosition = index + 1;
        waiter.onPosition(index + 1);
      }
    });
  };

  function dispatch() {
    let granted = false;
    for (let i = 0; i < queue.length; ) {
      const waiter = queue[i]!;
      const place = roomAt(waiter.model, waiter.owner, waiter.places);
      if (place !== undefined) {
        leaveQueue(waiter);
        waiter.grant(take(waiter.model, place, waiter.owner, waiter.queuedAt, waiter.enqueuedAt));
        granted = true;
      } else {
        i++;
      }
    }
    if (granted) announcePositions();
  }

  const queueFull = (why: string) =>
    new ApiError(503, `Minato is at capacity: ${why}. Retry after the number of seconds in Retry-After.`, 'queue_full', {
      'Retry-After': String(retryAfterSeconds()),
    });

  /**
   * Recent generation times (an exponentially weighted mean), for Retry-After: how long the
   * queue takes to drain is about (waiters / slots + 1) generations.
   */
  let meanMs: number | undefined;
  const recordDuration = (ms: number) => {
    meanMs = meanMs === undefined ? ms : meanMs * 0.8 + ms * 0.2;
  };
  /** A hint for Retry-After: the time the queue ahead takes to drain at the recent pace (1 s to 5 min). */
  const retryAfterSeconds = () => {
    const rounds = Math.ceil((queue.length + 1) / Math.max(1, limits.total * placesSeen));
    const seconds = meanMs === undefined ? rounds : (rounds * meanMs) / 1000;
    return Math.max(1, Math.min(300, Math.ceil(seconds)));
  };

  /** Throws the 503 a request for `model` would get now because the queue is full. */
  function refuseWhenFull(model: string) {
    if (queue.length >= limits.queueTotal) {
      throw queueFull(`${queue.length} requests are already waiting (MINATO_MAX_QUEUE=${limits.queueTotal})`);
    }
    const waitingForModel = queuedPerModel.get(model) ?? 0;
    if (waitingForModel >= limits.queuePerModel) {
      throw queueFull(
        `${waitingForModel} requests for '${model}' are already waiting (MINATO_MAX_QUEUE_PER_MODEL=${limits.queuePerModel})`,
      );
    }
  }

  return {
    /**
     * Refuses early (503) a request that could neither start nor wait now: for work that must
     * be done before asking for a slot (reading an upload), so that it is not done in vain.
     */
    check(model: string, owner?: string, places: readonly string[] = ONE_PLACE) {
      if (roomAt(model, owner, places) === undefined) refuseWhenFull(model);
    },

    /**
     * Refuses early (503) a request that could neither start nor wait now whatever its model: before
     * its body, which names the model, is read (the queue is full, and its owner or every slot is busy).
     */
    checkAnyModel(owner?: string) {
      if (queue.length < limits.queueTotal) return;
      if (!ownerHasRoom(owner) || runningTotal >= limits.total * placesSeen) {
        throw queueFull(`${queue.length} requests are already waiting (MINATO_MAX_QUEUE=${limits.queueTotal})`);
      }
    },

    /**
     * A slot for a generation of `model`: at once when there is room, else a ticket for a place
     * in the queue. Throws a 503 when the queue is full; the ticket's slot rejects with a 503 at
     * the queue timeout and with ClientGoneError when `signal` aborts.
     */
    enter(model: string, signal: AbortSignal, owner?: string, places: readonly string[] = ONE_PLACE): Slot | Ticket {
      placesSeen = Math.max(placesSeen, places.length);
      const place = roomAt(model, owner, places);
      if (place !== undefined) return take(model, place, owner, 0, 0);
      refuseWhenFull(model);
      const waitingForModel = queuedPerModel.get(model) ?? 0;
      if (signal.aborted) throw new ClientGoneError();
      const position = queue.length + 1;
      let waiter!: Waiter;
      const slot = new Promise<Slot>((resolve, reject) => {
        const timer = setTimeout(() => {
          if (!leaveQueue(waiter)) return;
          cleanup();
          announcePositions();
          reject(
            new ApiError(
              503,
              `Waited ${Math.round(limits.timeoutMs / 1000)} s for a free slot for '${model}' (MINATO_QUEUE_TIMEOUT); the GPU is busy. Retry after the number of seconds in Retry-After.`,
              'queue_timeout',
              { 'Retry-After': String(retryAfterSeconds()) },
            ),
          );
        }, limits.timeoutMs);
        const onAbort = () => {
          if (!leaveQueue(waiter)) return;
          cleanup();
          announcePositions();
          reject(new ClientGoneError());
        };
        const cleanup = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        waiter = {
          model,
          places,
          owner,
          enqueuedAt: performance.now(),
          queuedAt: position,
          lastPosition: position,
          grant: (granted) => {
            cleanup();
            resolve(granted);
          },
        };
      });
      queue.push(waiter);
      queuedPerModel.set(model, waitingForModel + 1);
      return {
        position,
        slot,
        onPosition: (listener) => {
          waiter.onPosition = listener;
        },
      };
    },

    /** Generations running now. */
    get running() {
      return runningTotal;
    },
    /** Generations running now on one instance (its requests in flight from Minato). */
    runningOn(place: string) {
      return runningPerPlace.get(place) ?? 0;
    },
    /** Generations waiting for a slot now. */
    get queued() {
      return queue.length;
    },
  };
}

export const isTicket = (entry: Slot | Ticket): entry is Ticket => 'slot' in entry;
