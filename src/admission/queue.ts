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
  release: () => void;
  /** 1-based place in the queue on arrival; 0 when it started at once. */
  queuedAt: number;
  /** Time spent waiting. */
  waitedMs: number;
};

type Waiter = {
  model: string;
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

export function createAdmission(limits: AdmissionLimits) {
  const running = new Map<string, number>();
  const runningPerOwner = new Map<string, number>();
  let runningTotal = 0;
  const queue: Waiter[] = [];
  const queuedPerModel = new Map<string, number>();
  const decrement = (map: Map<string, number>, key: string) => {
    const left = (map.get(key) ?? 1) - 1;
    if (left === 0) map.delete(key);
    else map.set(key, left);
  };

  const hasRoom = (model: string, owner: string | undefined) =>
    runningTotal < limits.total &&
    (running.get(model) ?? 0) < limits.perModel &&
    (owner === undefined || (runningPerOwner.get(owner) ?? 0) < (limits.perOwner ?? Number.POSITIVE_INFINITY));

  const take = (model: string, owner: string | undefined, queuedAt: number, enqueuedAt: number): Slot => {
    runningTotal++;
    running.set(model, (running.get(model) ?? 0) + 1);
    if (owner !== undefined) runningPerOwner.set(owner, (runningPerOwner.get(owner) ?? 0) + 1);
    let released = false;
    const startedAt = performance.now();
    return {
      queuedAt,
      waitedMs: queuedAt === 0 ? 0 : performance.now() - enqueuedAt,
      release: () => {
        if (released) return;
        released = true;
        runningTotal--;
        decrement(running, model);
        if (owner !== undefined) decrement(runningPerOwner, owner);
        recordDuration(performance.now() - startedAt);
        dispatch();
      },
    };
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
    for (let i = 0; i < queue.length && runningTotal < limits.total; ) {
      const waiter = queue[i]!;
      if (hasRoom(waiter.model, waiter.owner)) {
        leaveQueue(waiter);
        waiter.grant(take(waiter.model, waiter.owner, waiter.queuedAt, waiter.enqueuedAt));
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
    const rounds = Math.ceil((queue.length + 1) / Math.max(1, limits.total));
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
    check(model: string, owner?: string) {
      if (!hasRoom(model, owner)) refuseWhenFull(model);
    },

    /**
     * A slot for a generation of `model`: at once when there is room, else a ticket for a place
     * in the queue. Throws a 503 when the queue is full; the ticket's slot rejects with a 503 at
     * the queue timeout and with ClientGoneError when `signal` aborts.
     */
    enter(model: string, signal: AbortSignal, owner?: string): Slot | Ticket {
      if (hasRoom(model, owner)) return take(model, owner, 0, 0);
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
    /** Generations waiting for a slot now. */
    get queued() {
      return queue.length;
    },
  };
}

export const isTicket = (entry: Slot | Ticket): entry is Ticket => 'slot' in entry;
