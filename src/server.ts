import { createApp } from './app';
import type { AppDependencies } from './deps';
import { ownBodyLimits } from './http/route-facts';
import { createLifecycle, type Lifecycle } from './lifecycle';
import { IDLE_TIMEOUT_SECONDS } from './middleware/request-context';

/** Serves the app with Bun the way `bun run start` does; tests start it the same way on port 0. */
export function startServer(dependencies: AppDependencies, overrides: { port?: number; hostname?: string } = {}) {
  const { config } = dependencies;
  const lifecycle = dependencies.lifecycle ?? createLifecycle();
  const app = createApp({ ...dependencies, lifecycle });
  const server = Bun.serve({
    hostname: overrides.hostname ?? config.host,
    port: overrides.port ?? config.port,
    // Routes count their bodies while read and refuse them with a JSON 413 at their own limit.
    // Bun's own bound sits just above the largest: Bun's 413 has an empty body.
    maxRequestBodySize: Math.max(config.maxBodyBytes, ...ownBodyLimits(config)) + 64 * 1024,
    idleTimeout: IDLE_TIMEOUT_SECONDS,
    fetch: (request, server) => app.fetch(request, { server }),
  });
  return { server, lifecycle, shutdown: () => shutdown(server, lifecycle, config.shutdownGrace.ms) };
}

export type ShutdownResult = { drained: boolean; cutOff: number };

/**
 * Graceful shutdown. While draining, the listener stays open so that probes see it: /ready and
 * every new request answer 503 (`Connection: close`, `Retry-After`), and a load balancer moves
 * on; what is in flight may finish within `graceMs`. What is still running then is cut off, each
 * request in a way its client understands: a 503 `shutting_down` when no response has started, an
 * in-band error line ending an NDJSON or SSE stream (plain text can only be cut), each with its
 * log line (`cut_off_by_shutdown`). Then the listener closes, the last bytes get a moment to reach
 * their clients, and every connection is closed; the process's exit closes its connections to
 * Ollama, so Ollama stops generating.
 */
export async function shutdown(server: { stop(closeActive?: boolean): Promise<void> }, lifecycle: Lifecycle, graceMs: number) {
  lifecycle.startDraining();
  const drained = await lifecycle.whenIdle(graceMs);
  const cutOff = lifecycle.inFlight;
  if (!drained) {
    // Every request left is told so (503, or an in-band error line) and logged before the close.
    lifecycle.cutOff();
    await lifecycle.whenIdle(1000);
  }
  // A stream counts as done when its last chunk is handed to Bun, not when it is on the wire.
  await Promise.race([server.stop(false), Bun.sleep(drained ? 1000 : 500)]);
  await server.stop(true);
  lifecycle.close();
  return { drained, cutOff } satisfies ShutdownResult;
}
