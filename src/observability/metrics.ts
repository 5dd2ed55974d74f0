import { resolvedModelName } from '../http/model-name';
/**
 * Prometheus metrics in the text exposition format (version 0.0.4), kept in plain maps: a few
 * counters and histograms do not need a client library, and recording one costs a map lookup.
 */

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

type Histogram = { buckets: number[]; sum: number; count: number };

const escapeLabel = (value: string) => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (pairs: Record<string, string>) =>
  `{${Object.entries(pairs)
    .map(([key, value]) => `${key}="${escapeLabel(value)}"`)
    .join(',')}}`;

/** Counts per bucket, not cumulative: one increment per observation; `render` adds them up. */
function observe(histograms: Map<string, Histogram>, key: string, seconds: number) {
  let histogram = histograms.get(key);
  if (!histogram) {
    histogram = { buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 };
    histograms.set(key, histogram);
  }
  let i = 0;
  while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
  if (i < DURATION_BUCKETS.length) histogram.buckets[i]!++;
  histogram.sum += seconds;
  histogram.count++;
}

function renderHistogram(lines: string[], name: string, help: string, histograms: Map<string, Histogram>) {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  for (const [route, histogram] of histograms) {
    let cumulative = 0;
    DURATION_BUCKETS.forEach((bound, i) => {
      cumulative += histogram.buckets[i]!;
      lines.push(`${name}_bucket${labels({ route, le: String(bound) })} ${cumulative}`);
    });
    lines.push(`${name}_bucket${labels({ route, le: '+Inf' })} ${histogram.count}`);
    lines.push(`${name}_sum${labels({ route })} ${histogram.sum}`, `${name}_count${labels({ route })} ${histogram.count}`);
  }
}

/** How a streamed answer ended. */
export type StreamEnd = {
  /** The final line's object, when the stream ended properly (or with Ollama's error line). */
  final?: Record<string, unknown>;
  /** What went wrong, as counted in minato_upstream_errors_total. */
  errorKind?: string;
  /** The client went away before the end. */
  clientAborted?: boolean;
  /** The Ollama instance that answered, with several (a label on errors and tokens). */
  instance?: string;
  /** Bytes handed to the client. */
  bytes: number;
};

/** What a streamed answer reports as it goes (to the metrics, the request log, …); all calls are cheap. */
export type StreamObserver = {
  /** The first bytes were handed to the client. */
  firstByte: () => void;
  /** The stream ended, called once. */
  end: (result: StreamEnd) => void;
  /** Registers what ends the stream when shutdown cuts it off (until `end`). */
  onCutOff?: (cut: () => void) => void;
};

export type Metrics = ReturnType<typeof createMetrics>;

/** Distinct model labels kept before further models are counted as `other`. */
export const MAX_MODEL_LABELS = 100;

/** A resolved model name without Ollama's default registry and namespace: `llama3.2:latest`. */
const shortModelName = (resolved: string) => resolved.replace(/^registry\.ollama\.ai\/library\//, '');

export function createMetrics() {
  const requests = new Map<string, number>();
  const durations = new Map<string, Histogram>();
  const firstBytes = new Map<string, Histogram>();
  const upstreamErrors = new Map<string, number>();
  /** Keyed by model label and instance (`''` with a single instance, which then has no label). */
  const generations = new Map<string, { tokens: number; evalSeconds: number; lastRate: number }>();
  const modelLabels = new Set<string>();
  const keyed = (pairs: Record<string, string>, instance: string | undefined) => (instance ? { ...pairs, instance } : pairs);
  const countUpstreamError = (kind: string, instance?: string) => {
    const key = `${kind}\u0000${instance ?? ''}`;
    upstreamErrors.set(key, (upstreamErrors.get(key) ?? 0) + 1);
  };
  let streamsInFlight = 0;
  let waitingOnOllama = 0;
  const gauges: { name: string; help: string; read: () => number }[] = [];

  const countRequest = (route: string, method: string, status: number) => {
    const key = `${route}\u0000${method}\u0000${status}`;
    requests.set(key, (requests.get(key) ?? 0) + 1);
  };

  /**
   * Per-model series are labelled with the name Ollama resolved (spellings of one model are one
   * series) and bounded: past MAX_MODEL_LABELS models the rest are counted as `other`, so that
   * clients cannot grow /metrics and Minato's memory without limit.
   */
  const modelLabel = (model: string) => {
    const label = shortModelName(resolvedModelName(model));
    if (modelLabels.has(label)) return label;
    if (modelLabels.size >= MAX_MODEL_LABELS) return 'other';
    modelLabels.add(label);
    return label;
  };

  const generation = (model: string, evalCount: unknown, evalDurationNs: unknown, instance?: string) => {
    if (typeof evalCount !== 'number' || typeof evalDurationNs !== 'number' || evalDurationNs <= 0) return;
    const key = `${modelLabel(model)}\u0000${instance ?? ''}`;
    const entry = generations.get(key) ?? { tokens: 0, evalSeconds: 0, lastRate: 0 };
    entry.tokens += evalCount;
    entry.evalSeconds += evalDurationNs / 1e9;
    entry.lastRate = evalCount / (evalDurationNs / 1e9);
    generations.set(key, entry);
  };
  const labelled: { name: string; help: string; read: () => [Record<string, string>, number][] }[] = [];

  return {
    /** A request that ended when its response was returned (not streamed). */
    request(route: string, method: string, status: number, seconds: number) {
      countRequest(route, method, status);
      observe(durations, route, seconds);
      observe(firstBytes, route, seconds);
    },

    /** Requests sent to Ollama that have not had its first byte yet: queued in Ollama, or waiting on a model load. */
    waiting(delta: 1 | -1) {
      waitingOnOllama += delta;
    },

    /** A gauge read when the metrics are rendered (queue depth, slots in use, …). */
    gauge(name: string, help: string, read: () => number) {
      gauges.push({ name, help, read });
    },

    /** A gauge with one series per label set (per instance, …), read when the metrics are rendered. */
    labelledGauge(name: string, help: string, read: () => [Record<string, string>, number][]) {
      labelled.push({ name, help, read });
    },

    upstreamError: countUpstreamError,

    generation,

    /** Starts watching a streamed response; its duration and count are recorded when it ends. */
    stream(route: string, method: string, startedAt: number): StreamObserver {
      streamsInFlight++;
      let ended = false;
      return {
        firstByte: () => observe(firstBytes, route, (performance.now() - startedAt) / 1000),
        end: ({ final, errorKind, instance }) => {
          if (ended) return;
          ended = true;
          streamsInFlight--;
          countRequest(route, method, 200);
          observe(durations, route, (performance.now() - startedAt) / 1000);
          // Only Ollama's trouble: a stalled client or a queue timeout is not an upstream error.
          if (errorKind?.startsWith('stream_')) countUpstreamError(errorKind, instance);
          // Only the final line is ever parsed (by the relay): the bytes that passed were not looked at.
          if (final?.done === true && typeof final.model === 'string')
            generation(final.model, final.eval_count, final.eval_duration, instance);
        },
      };
    },

    render(): string {
      const lines: string[] = [];
      lines.push('# HELP minato_requests_total Requests answered, by route, method and status.', '# TYPE minato_requests_total counter');
      for (const [key, count] of requests) {
        const [route = '', method = '', status = ''] = key.split('\u0000');
        lines.push(`minato_requests_total${labels({ route, method, status })} ${count}`);
      }
      renderHistogram(
        lines,
        'minato_request_duration_seconds',
        'Time from request to the end of the response (streams: to their last byte).',
        durations,
      );
      renderHistogram(lines, 'minato_time_to_first_byte_seconds', 'Time from request to the first byte of the response body.', firstBytes);
      lines.push(
        '# HELP minato_streams_in_flight Streamed responses currently open.',
        '# TYPE minato_streams_in_flight gauge',
        `minato_streams_in_flight ${streamsInFlight}`,
      );
      lines.push(
        "# HELP minato_upstream_waiting Requests sent to Ollama still waiting for its first byte: Ollama's queue and model loads, as seen from here.",
        '# TYPE minato_upstream_waiting gauge',
        `minato_upstream_waiting ${waitingOnOllama}`,
      );
      for (const gauge of gauges)
        lines.push(`# HELP ${gauge.name} ${gauge.help}`, `# TYPE ${gauge.name} gauge`, `${gauge.name} ${gauge.read()}`);
      for (const gauge of labelled) {
        lines.push(`# HELP ${gauge.name} ${gauge.help}`, `# TYPE ${gauge.name} gauge`);
        for (const [pairs, value] of gauge.read()) lines.push(`${gauge.name}${labels(pairs)} ${value}`);
      }
      lines.push('# HELP minato_upstream_errors_total Trouble with Ollama, by kind.', '# TYPE minato_upstream_errors_total counter');
      for (const [key, count] of upstreamErrors) {
        const [kind = '', instance] = key.split('\u0000');
        lines.push(`minato_upstream_errors_total${labels(keyed({ kind }, instance))} ${count}`);
      }
      const series = [...generations].map(([key, entry]) => {
        const [model = '', instance] = key.split('\u0000');
        return { pairs: keyed({ model }, instance), entry };
      });
      lines.push(
        "# HELP minato_generated_tokens_total Tokens generated, from the eval_count of Ollama's final lines.",
        '# TYPE minato_generated_tokens_total counter',
      );
      for (const { pairs, entry } of series) lines.push(`minato_generated_tokens_total${labels(pairs)} ${entry.tokens}`);
      lines.push(
        '# HELP minato_generation_seconds_total Time Ollama spent generating them (eval_duration); tokens/s = rate of tokens / rate of this.',
        '# TYPE minato_generation_seconds_total counter',
      );
      for (const { pairs, entry } of series) lines.push(`minato_generation_seconds_total${labels(pairs)} ${entry.evalSeconds}`);
      lines.push(
        '# HELP minato_last_tokens_per_second Tokens per second of the last answer, per model.',
        '# TYPE minato_last_tokens_per_second gauge',
      );
      for (const { pairs, entry } of series) lines.push(`minato_last_tokens_per_second${labels(pairs)} ${entry.lastRate}`);
      return `${lines.join('\n')}\n`;
    },
  };
}
