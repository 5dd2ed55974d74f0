/**
 * Lines for stdout (the request log, lifecycle lines), written in batches: one write per turn of
 * the event loop rather than one per request. A write to stdout is a system call, and profiling
 * the streaming benchmark showed one per request costing an eighth of Minato's CPU. Lines keep
 * their order; what is pending is written before the process exits.
 *
 * Written with Bun's own writer: `process.stdout` is a Node stream, whose machinery adds ≈ 7 MB
 * to an idle Minato's memory.
 */
let pending: string[] = [];
let scheduled = false;
/** The writes in flight, one after the other (a slow reader of the pipe must not reorder lines). */
let writing: Promise<unknown> = Promise.resolve();

function flush() {
  scheduled = false;
  if (pending.length === 0) return;
  const text = `${pending.join('\n')}\n`;
  pending = [];
  // A closed stdout (the reader went away) loses the log, never the process.
  writing = writing.then(() => Bun.write(Bun.stdout, text)).catch(() => {});
}

export function writeLine(line: string) {
  pending.push(line);
  if (scheduled) return;
  scheduled = true;
  setImmediate(flush);
}

/** Resolves when every line written so far is out: await it before `process.exit()`. */
export function logWritten(): Promise<unknown> {
  flush();
  return writing;
}

// An exit without logWritten (an uncaught error): nothing asynchronous runs any more, so what is
// still pending goes straight to the descriptor.
process.on('exit', () => {
  if (pending.length === 0) return;
  const { writeSync } = require('node:fs') as typeof import('node:fs');
  writeSync(1, `${pending.join('\n')}\n`);
  pending = [];
});
