import { createMiddleware } from 'hono/factory';
import type { AppEnv } from './router';

/**
 * Bun.serve closes a connection that has been silent for `idleTimeout` seconds (10 by default,
 * 255 at most), and Ollama sends nothing while it loads a model, which can take minutes: a
 * request waiting on a cold model was cut with an empty reply. For the routes that wait on
 * Ollama, Bun's idle timer is switched off; Minato's own upstream deadlines
 * (MINATO_FIRST_BYTE_TIMEOUT, MINATO_STREAM_IDLE_TIMEOUT) bound the wait instead.
 */
export const allowLongWait = createMiddleware<AppEnv>(async (c, next) => {
  c.env?.server?.timeout(c.req.raw, 0);
  await next();
});
