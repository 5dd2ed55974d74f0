import { createApp, type AppDependencies } from './app';
import { maxVisionBodyBytes } from './lib/images';

/** Serves the app with Bun the way `bun run start` does; tests start it the same way on port 0. */
export function startServer(dependencies: AppDependencies, overrides: { port?: number; hostname?: string } = {}) {
  const { config } = dependencies;
  const app = createApp(dependencies);
  return Bun.serve({
    hostname: overrides.hostname ?? config.host,
    port: overrides.port ?? config.port,
    // Vision bodies are checked while read; this is only the outer bound Bun enforces itself.
    maxRequestBodySize: maxVisionBodyBytes(config),
    fetch: (request, server) => app.fetch(request, { server }),
  });
}
