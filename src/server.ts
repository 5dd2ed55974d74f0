import { type AppDependencies, createApp } from './app';
import { maxVisionBodyBytes } from './lib/images';
import { createLifecycle, type Lifecycle } from './lib/lifecycle';

/** Serves the app with Bun the way `bun run start` does; tests start it the same way on port 0. */
export function startServer(dependencies: AppDependencies, overrides: { port?: number; hostname?: string } = {}) {
  const { config } = dependencies;
  const lifecycle = dependencies.lifecycle ?? createLifecycle();
  const app = createApp({ ...dependencies, lifecycle });
  const server = Bun.serve({
    hostname: overrides.hostname ?? config.host,
    port: overrides.port ?? config.port,
    // Vision bodies are counted while read and refused with a JSON 413 at maxVisionBodyBytes.
    // Bun's own bound sits just above it: Bun's 413 has an empty body.
    maxRequestBodySize: maxVisionBodyBytes(config) + 64 * 1024,
    fetch: (request, server) => app.fetch(request, { server }),
  });
  return { server, lifecycle, shutdown: () => shutdown(server, lifecycle, config.shutdownGraceMs) };
}

export type ShutdownResult = { drained: boolean; cutOff: number };

/**
 * Graceful shutdown: stop accepting connections, answer new requests on open connections with
 * 503 (and /ready with 503), let what is in flight finish within `graceMs`, then close every
 * connection; the requests cut off abort their upstream requests, so Ollama stops generating.
 */
export async function shutdown(server: { stop(closeActive?: boolean): Promise<void> }, lifecycle: Lifecycle, graceMs: number) {
  lifecycle.startDraining();
  // Stops listening at once; open connections stay, and with them the streams still running.
  server.stop(false).catch(() => {});
  const drained = await lifecycle.whenIdle(graceMs);
  const cutOff = lifecycle.inFlight;
  await server.stop(true);
  return { drained, cutOff } satisfies ShutdownResult;
}
