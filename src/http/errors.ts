import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/**
 * An error a client is meant to read. Its JSON body keeps the FastAPI shape the original
 * service's clients parse (`{"detail": "..."}`) and adds a stable machine-readable `code`.
 */
export class ApiError extends HTTPException {
  constructor(
    readonly statusCode: ContentfulStatusCode,
    readonly detail: string,
    readonly code: string,
    readonly headers: Record<string, string> = {},
    /** For 422: FastAPI's list of `{loc, msg, type}` instead of a single message. */
    readonly validationDetail?: { loc: (string | number)[]; msg: string; type: string }[],
  ) {
    super(statusCode, { message: detail });
  }
}

/** The client closed its connection; nobody is left to read an answer. */
export class ClientGoneError extends Error {
  constructor() {
    super('client disconnected');
  }
}

/** A network error's gist, without Bun's "For more information, pass `verbose: true`…" advice. */
export function networkErrorText(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split(' For more information')[0]!.trim() || 'connection failed';
}
