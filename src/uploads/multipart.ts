/**
 * A streaming `multipart/form-data` reader (RFC 7578) for uploads that must be checked while
 * they arrive: each part's bytes are kept as the chunks they came in (never joined), and the
 * caller's `onPartData` sees the size of every part as it grows, so an oversized image is refused
 * before the rest of it is read. Only what vision uploads need: names, filenames, content types,
 * bytes. Part headers are limited in size; the preamble and epilogue are ignored.
 */

export type Part = {
  name: string;
  filename: string | undefined;
  contentType: string | undefined;
  chunks: Uint8Array[];
  size: number;
};

export class MultipartError extends Error {}

const CRLF_CRLF = Buffer.from('\r\n\r\n');
const MAX_HEADER_BYTES = 16 * 1024;

function parseHeaders(block: string): Pick<Part, 'name' | 'filename' | 'contentType'> {
  let name: string | undefined;
  let filename: string | undefined;
  let contentType: string | undefined;
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon === -1) continue;
    const header = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (header === 'content-type') contentType = value;
    if (header === 'content-disposition') {
      name = /(?:^|;)\s*name="((?:[^"\\]|\\.)*)"/i.exec(value)?.[1] ?? /(?:^|;)\s*name=([^;\s]+)/i.exec(value)?.[1];
      filename = /(?:^|;)\s*filename="((?:[^"\\]|\\.)*)"/i.exec(value)?.[1] ?? /(?:^|;)\s*filename=([^;\s]+)/i.exec(value)?.[1];
    }
  }
  if (name === undefined) throw new MultipartError('a part has no Content-Disposition name');
  return { name, filename, contentType };
}

/** Reads every part of a multipart body, calling the hooks as parts start and grow. */
export async function readMultipart(
  body: ReadableStream<Uint8Array>,
  boundary: string,
  hooks: {
    /** A new part starts (its headers are read). */
    onPart?: (part: Part) => void;
    /** Bytes of a part arrived (`part.size` counts them); may throw to stop the upload. */
    onPartData?: (part: Part, bytes: Uint8Array) => void;
    /** Whether to keep a part's bytes in `part.chunks` (default yes); others are only counted. */
    keep?: (part: Part) => boolean;
  } = {},
): Promise<Part[]> {
  const first = Buffer.from(`--${boundary}`);
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const parts: Part[] = [];
  type State = 'preamble' | 'after-delimiter' | 'headers' | 'body' | 'done';
  let state = 'preamble' as State;
  let pending: Buffer = Buffer.alloc(0);
  let part: Part | undefined;
  let keep = true;

  const addData = (bytes: Buffer) => {
    if (!part || bytes.length === 0) return;
    if (keep) part.chunks.push(bytes);
    part.size += bytes.length;
    hooks.onPartData?.(part, bytes);
  };

  const consume = () => {
    for (;;) {
      if (state === 'preamble') {
        // The body must open with the first delimiter (anything before it is ignored).
        const at = pending.indexOf(first);
        if (at === -1) {
          if (pending.length > MAX_HEADER_BYTES) throw new MultipartError('no multipart boundary found');
          return;
        }
        pending = pending.subarray(at + first.length);
        state = 'after-delimiter';
      }
      if (state === 'after-delimiter') {
        if (pending.length < 2) return;
        if (pending[0] === 0x2d && pending[1] === 0x2d) {
          state = 'done';
          return;
        }
        // Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
        const lineEnd = pending.indexOf('\r\n');
        if (lineEnd === -1) {
          if (pending.length > 1024) throw new MultipartError('malformed boundary line');
          return;
        }
        pending = pending.subarray(lineEnd + 2);
        state = 'headers';
      }
      if (state === 'headers') {
        const end = pending.indexOf(CRLF_CRLF);
        // A part with no headers at all starts with the blank line directly.
        const headerEnd = pending[0] === 0x0d && pending[1] === 0x0a ? 0 : end;
        if (headerEnd === -1) {
          if (pending.length > MAX_HEADER_BYTES) throw new MultipartError('part headers too large');
          return;
        }
        // Browsers write non-ASCII field and file names as raw UTF-8 (RFC 7578 §5.1).
        const block = pending.subarray(0, headerEnd).toString('utf8');
        pending = pending.subarray(headerEnd + (headerEnd === 0 ? 2 : 4));
        part = { ...parseHeaders(block), chunks: [], size: 0 };
        parts.push(part);
        keep = hooks.keep?.(part) ?? true;
        hooks.onPart?.(part);
        state = 'body';
      }
      if (state === 'body') {
        const at = pending.indexOf(delimiter);
        if (at === -1) {
          // Everything but a possible start of the delimiter belongs to the part.
          const keep = Math.min(delimiter.length - 1, pending.length);
          addData(pending.subarray(0, pending.length - keep));
          pending = pending.subarray(pending.length - keep);
          return;
        }
        addData(pending.subarray(0, at));
        pending = pending.subarray(at + delimiter.length);
        part = undefined;
        state = 'after-delimiter';
      }
      if (state === 'done') return;
    }
  };

  // Whether a delimiter starts in the kept tail and runs on into the next chunk (which must be at
  // least a delimiter long for the answer to be final).
  const straddles = (tail: Buffer, next: Buffer) =>
    tail.length > 0 && Buffer.concat([tail, next.subarray(0, delimiter.length - 1)]).indexOf(delimiter) !== -1;

  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (state === 'done') continue; // the epilogue
    const chunk = Buffer.from(value.buffer, value.byteOffset, value.length);
    try {
      // The common case, in the middle of a large part: no delimiter starts in the kept tail or
      // in this chunk, so the chunk is stored as it came, a view, never copied.
      if (state === 'body' && part && chunk.length >= delimiter.length && !straddles(pending, chunk) && chunk.indexOf(delimiter) === -1) {
        addData(pending);
        const keep = Math.min(delimiter.length - 1, chunk.length);
        addData(chunk.subarray(0, chunk.length - keep));
        pending = chunk.subarray(chunk.length - keep);
        continue;
      }
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      consume();
    } catch (error) {
      await reader.cancel().catch(() => {});
      throw error;
    }
  }
  if (state !== 'done') throw new MultipartError('the body ended before the closing boundary');
  return parts;
}
