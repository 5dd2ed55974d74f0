import { createApp, type AppDependencies } from './app';
import { maxVisionBodyBytes } from './lib/images';

/** Serves the app with Bun the way `bun run start` does; tests start it the same way on port 0. */
export function startServer(dependencies: AppDependencies, overrides: { port?: number; hostname?: string } = {}) {
  const { config } = dependencies;
  const app = createApp(dependencies);
  return Bun.serve({
    hostname: overrides.hostname ?? config.host,
    port: overrides.port ?? config.port,
    // Vision bodies are counted while read and refused with a JSON 413 at maxVisionBodyBytes.
    // Bun's own bound sits just above it: Bun's 413 has an empty body.
    maxRequestBodySize: maxVisionBodyBytes(config) + 64 * 1024,
    fetch: (request, server) => app.fetch(request, { server }),
  });
}
