import { ApiError } from './errors';

/**
 * The fields of a relayed JSON body that Minato reads or sets (`model`, `stream`, …), found the way
 * Ollama finds them, without parsing the rest.
 *
 * Ollama decodes bodies with Go's encoding/json, which matches a key to a field case-insensitively
 * (`"Model"` and `"MODEL"` are its `model`; so are keys with `ſ` for `s` and the Kelvin sign `K` for
 * `k`, the two non-ASCII letters that fold into ASCII) and lets the last of several win. Were
 * Minato to read only `model`, `{"Model": "x"}` would run with no admission and
 * `{"model": "a", "Model": "b"}` would be admitted as `a` and run as `b`. So a key that Ollama would
 * read as one of these fields must be spelt exactly as the field, once: anything else is refused
 * with a 400 that names it.
 *
 * The body is scanned as bytes: a 30 MiB conversation of images costs its bytes and nothing more
 * (no string of it, no objects); only the fields asked for are parsed.
 */

/** Go's encoding/json key folding, for ASCII field names: upper-case ASCII, `ſ` → S, `K` (U+212A) → K. */
export function goFold(key: string): string {
  let folded = '';
  for (const ch of key) {
    if (ch === '\u017f') folded += 'S';
    else if (ch === '\u212a') folded += 'K';
    else folded += ch.length === 1 && ch.charCodeAt(0) < 0x80 ? ch.toUpperCase() : ch;
  }
  return folded;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MAX_DEPTH = 1000;

const malformed = (detail: string) => new ApiError(400, `The body is not a JSON object: ${detail}.`, 'malformed_body');

const isSpace = (byte: number) => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

/** A top-level field's value, as the byte range it takes in the body. */
export type FieldSpan = { start: number; end: number };

/** What a body holds of the fields asked for. */
export class JsonFields {
  constructor(
    readonly bytes: Uint8Array,
    readonly spans: ReadonlyMap<string, FieldSpan>,
    /** Where the object's opening brace is. */
    readonly openAt: number,
  ) {}

  has(name: string): boolean {
    return this.spans.has(name);
  }

  /** The field's value, parsed (undefined when absent). */
  get(name: string): unknown {
    const span = this.spans.get(name);
    if (!span) return undefined;
    return JSON.parse(decoder.decode(this.bytes.subarray(span.start, span.end)));
  }

  /** The body with `name` set to `value` (replaced where it is, else added first). */
  with(name: string, value: unknown): Uint8Array {
    const encoded = new TextEncoder().encode(JSON.stringify(value));
    const span = this.spans.get(name);
    if (span) return concat(this.bytes.subarray(0, span.start), encoded, this.bytes.subarray(span.end));
    const empty = this.spans.size === 0 && isEmptyObject(this.bytes, this.openAt);
    const field = new TextEncoder().encode(`${JSON.stringify(name)}:`);
    return concat(
      this.bytes.subarray(0, this.openAt + 1),
      field,
      encoded,
      empty ? new Uint8Array(0) : new Uint8Array([0x2c]),
      this.bytes.subarray(this.openAt + 1),
    );
  }
}

function isEmptyObject(bytes: Uint8Array, openAt: number) {
  let i = openAt + 1;
  while (i < bytes.length && isSpace(bytes[i]!)) i++;
  return bytes[i] === 0x7d;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The end (index of the closing quote) of the string whose opening quote is at `at`. */
function endOfString(bytes: Uint8Array, at: number): number {
  let from = at + 1;
  for (;;) {
    const quote = bytes.indexOf(QUOTE, from);
    if (quote === -1) throw malformed('a string is not closed');
    let backslashes = 0;
    for (let i = quote - 1; i > at && bytes[i] === BACKSLASH; i--) backslashes++;
    if (backslashes % 2 === 0) return quote;
    from = quote + 1;
  }
}

const decoder = new TextDecoder();
/** The map of folded name to name, per list of names (callers pass the same lists). */
const wantedByNames = new WeakMap<readonly string[], Map<string, string>>();

/** The key whose quotes are at `open` and `close`: its text, and folded as Go folds it. */
function keyAt(bytes: Uint8Array, open: number, close: number): { text: string; folded: string } {
  // The usual key: short, ASCII, no escapes (no decoder, no JSON.parse).
  if (close - open <= 64) {
    let text = '';
    for (let i = open + 1; i < close; i++) {
      const byte = bytes[i]!;
      if (byte >= 0x80 || byte === BACKSLASH) return decodedKey(bytes, open, close);
      text += String.fromCharCode(byte);
    }
    return { text, folded: text.toUpperCase() };
  }
  return decodedKey(bytes, open, close);
}

function decodedKey(bytes: Uint8Array, open: number, close: number): { text: string; folded: string } {
  const raw = bytes.subarray(open, close + 1);
  let text: string;
  try {
    text = raw.includes(BACKSLASH) ? (JSON.parse(decoder.decode(raw)) as string) : decoder.decode(raw.subarray(1, -1));
  } catch {
    throw malformed(`the key at byte ${open} is not a valid string`);
  }
  return { text, folded: goFold(text) };
}

/** The end (exclusive) of the value starting at `at`: containers by their brackets, strings by their quotes. */
function endOfValue(bytes: Uint8Array, at: number): number {
  const first = bytes[at];
  if (first === QUOTE) return endOfString(bytes, at) + 1;
  if (first === 0x7b || first === 0x5b) {
    let depth = 0;
    for (let i = at; i < bytes.length; i++) {
      const byte = bytes[i]!;
      if (byte === QUOTE) i = endOfString(bytes, i);
      else if (byte === 0x7b || byte === 0x5b) {
        if (++depth > MAX_DEPTH) throw malformed(`it is nested more than ${MAX_DEPTH} levels deep`);
      } else if (byte === 0x7d || byte === 0x5d) {
        if (--depth === 0) return i + 1;
      }
    }
    throw malformed('an object or array is not closed');
  }
  // A number, true, false or null: up to the next delimiter.
  let i = at;
  while (i < bytes.length) {
    const byte = bytes[i]!;
    if (byte === 0x2c || byte === 0x7d || byte === 0x5d || isSpace(byte)) break;
    i++;
  }
  if (i === at) throw malformed(`a value is missing at byte ${at}`);
  return i;
}

/**
 * Finds `names` (exact spellings) among the top-level keys of the JSON object in `bytes`. Throws a
 * 400 when the body is not one object, or when a key Ollama would read as one of `names` is spelt
 * otherwise or given twice.
 */
export function scanFields(bytes: Uint8Array, names: readonly string[], where = ''): JsonFields {
  let wanted = wantedByNames.get(names);
  if (!wanted) {
    wanted = new Map(names.map((name) => [goFold(name), name]));
    wantedByNames.set(names, wanted);
  }
  const spans = new Map<string, FieldSpan>();
  let i = 0;
  const skipSpace = () => {
    while (i < bytes.length && isSpace(bytes[i]!)) i++;
  };
  // A UTF-8 byte order mark is not JSON (Go refuses it too).
  skipSpace();
  if (bytes[i] !== 0x7b) throw malformed('it does not start with {');
  const openAt = i;
  i++;
  skipSpace();
  if (bytes[i] === 0x7d) i++;
  else {
    for (;;) {
      skipSpace();
      if (bytes[i] !== QUOTE) throw malformed(`a key was expected at byte ${i}`);
      const keyEnd = endOfString(bytes, i);
      const key = keyAt(bytes, i, keyEnd);
      i = keyEnd + 1;
      skipSpace();
      if (bytes[i] !== 0x3a) throw malformed(`":" was expected at byte ${i}`);
      i++;
      skipSpace();
      const start = i;
      i = endOfValue(bytes, i);
      const name = wanted.get(key.folded);
      if (name !== undefined) {
        if (key.text !== name) {
          throw new ApiError(
            400,
            `The field "${where}${key.text.slice(0, 40)}" would be read by Ollama as "${where}${name}" (its JSON decoder ignores case); spell it "${name}".`,
            'ambiguous_field',
          );
        }
        if (spans.has(name)) {
          throw new ApiError(400, `The field "${where}${name}" is given more than once; give it once.`, 'ambiguous_field');
        }
        spans.set(name, { start, end: i });
      }
      skipSpace();
      if (bytes[i] === 0x2c) {
        i++;
        continue;
      }
      if (bytes[i] === 0x7d) {
        i++;
        break;
      }
      throw malformed(`"," or "}" was expected at byte ${i}`);
    }
  }
  skipSpace();
  if (i !== bytes.length) throw malformed(`there is more after the object, at byte ${i}`);
  return new JsonFields(bytes, spans, openAt);
}
