/**
 * What graceful shutdown needs to know: whether Minato is draining (then /ready answers 503 and
 * new work is refused) and how many requests are still in flight (a stream counts until its end).
 */
export function createLifecycle() {
  let draining = false;
  let cutting = false;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  /**
   * Held weakly: a long-lived set that reaches each request's pending promise and frame (its
   * cut-off resolver) made the benchmark's requests 25% slower (measured: ~8 µs each, most likely
   * the garbage collector keeping every in-flight request's objects alive through old memory).
   * The function `onCutOff` returns holds its listener strongly instead, for as long as the
   * request keeps that function.
   */
  const cutOffListeners = new Set<WeakRef<() => void>>();
  const closeListeners: (() => void)[] = [];

  return {
    get draining() {
      return draining;
    },
    get inFlight() {
      return inFlight;
    },
    startDraining() {
      draining = true;
    },
    /** Whether the grace period is over and what is left is being cut off. */
    get cuttingOff() {
      return cutting;
    },
    /**
     * The grace period is over: tells every request still in flight to end now, each in the way
     * its client can understand (a 503 not yet answered, an in-band error line in a stream).
     */
    cutOff() {
      cutting = true;
      for (const listener of [...cutOffListeners]) listener.deref()?.();
      cutOffListeners.clear();
    },
    /**
     * Runs `listener` at cut-off (at once when it has happened). The function returned
     * unsubscribes, and keeps the listener alive: hold on to it until the request ends.
     */
    onCutOff(listener: () => void): () => void {
      if (cutting) {
        listener();
        return () => {};
      }
      const ref = new WeakRef(listener);
      cutOffListeners.add(ref);
      return () => {
        cutOffListeners.delete(ref);
        return listener;
      };
    },
    /** Runs `listener` when the server has stopped (background work such as the fleet's checks ends). */
    onClose(listener: () => void) {
      closeListeners.push(listener);
    },
    close() {
      for (const listener of closeListeners.splice(0)) listener();
    },
    /** Counts a request in; the function it returns counts it out (once, however often called). */
    begin(): () => void {
      inFlight++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        inFlight--;
        if (inFlight === 0) onIdle?.();
      };
    },
    /** Resolves true once nothing is in flight, or false when `timeoutMs` passes first. */
    whenIdle(timeoutMs: number): Promise<boolean> {
      if (inFlight === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          onIdle = undefined;
          resolve(false);
        }, timeoutMs);
        onIdle = () => {
          clearTimeout(timer);
          onIdle = undefined;
          resolve(true);
        };
      });
    },
  };
}

export type Lifecycle = ReturnType<typeof createLifecycle>;
