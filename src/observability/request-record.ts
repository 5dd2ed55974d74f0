/**
 * What the request log says about one request, filled in as it is answered. Ollama's status is
 * noted by the Ollama client, which knows the request only by the client's abort signal it is
 * given; the record is found through that signal rather than threaded through every call.
 */
export type RequestRecord = {
  model?: string;
  keyId?: string;
  upstreamStatus?: number;
  /** The `code` of the error the client was answered with. */
  errorCode?: string;
  /** Place in Minato's queue on arrival (0: started at once) and time spent there. */
  queuedAt?: number;
  queueMs?: number;
  /** Bytes of a whole (not streamed) body, where Minato serialised it itself. */
  bytes?: number;
  /** Query parameters the route does not know, accepted and ignored (`temprature=0.7`). */
  ignoredParams?: string[];
  /** With several Ollama instances: the one the request went to (its admission slot's, or `?host=`). */
  instance?: string;
  /** With several instances: the conversation's opening messages, so that its turns stay on one instance. */
  conversation?: string;
  /** The instance `?host=` named: the request goes there and nowhere else. */
  pinned?: string;
  /** The admission slot, moved along when the request fails over to another instance. */
  slot?: { move: (instance: string) => void };
};

const records = new WeakMap<AbortSignal, RequestRecord>();

export const attachRecord = (signal: AbortSignal, record: RequestRecord) => records.set(signal, record);

export const recordOf = (signal: AbortSignal | undefined): RequestRecord | undefined => (signal ? records.get(signal) : undefined);

export function noteUpstreamStatus(signal: AbortSignal | undefined, status: number) {
  const record = signal && records.get(signal);
  if (record) record.upstreamStatus = status;
}
