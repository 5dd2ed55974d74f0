/**
 * What graceful shutdown needs to know: whether Minato is draining (then /ready answers 503 and
 * new work is refused) and how many requests are still in flight (a stream counts until its end).
 */
export function createLifecycle() {
  let draining = false;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;

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
