import { Base64Error, Base64Text, TooLong } from './base64-text';

/**
 * A streaming reader for a vision route's JSON body, `{"images": ["<base64 or data: URL>", ...]}`,
 * that never holds the body as text nor a parsed copy of it: each image string is checked as it
 * arrives and kept as the base64 pieces it came in (views of the request's own chunks where they
 * need no translation), so a JSON upload costs about what a multipart one does. A field other
 * than `images` is refused as soon as its name is read, before its value is; a value that is not
 * a list of strings as soon as it starts.
 */

export type JsonImagesLimits = {
  maxImages: number;
  /** The most base64 characters an image within its byte limit can take. */
  maxBase64Length: number;
};

/** What went wrong, for the caller to turn into the client's error. */
export type JsonImagesProblem =
  | { kind: 'malformed'; message: string }
  | { kind: 'extra_field'; field: string }
  | { kind: 'duplicate_field'; field: string }
  | { kind: 'not_a_list' }
  | { kind: 'too_many_images'; count: number }
  | { kind: 'image_too_large'; index: number }
  | { kind: 'bad_base64'; index: number; message: string };

export class JsonImagesError extends Error {
  constructor(readonly problem: JsonImagesProblem) {
    super(problem.kind);
  }
}

type State =
  | 'start'
  | 'keyOrEnd'
  | 'key'
  | 'keyAfterComma'
  | 'colon'
  | 'value'
  | 'null'
  | 'firstElement'
  | 'element'
  | 'afterElement'
  | 'string'
  | 'afterValue'
  | 'done';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MAX_KEY_BYTES = 128;
/** `data:image/png;base64,` and the like: the most a data: URL's head may take. */
const MAX_DATA_URL_HEAD = 256;
/** `data:image/png;base64,` and the like: the head a base64 data: URL starts with. */
export const DATA_URL_HEAD = /^data:[^,;]*(;[^,]*)?;base64,/i;
const isDataPrefix = (b: Uint8Array) => b[0] === 0x64 && b[1] === 0x61 && b[2] === 0x74 && b[3] === 0x61 && b[4] === 0x3a; // data:
const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

const ESCAPED: Record<number, number> = {
  47: 0x2f, // \/ (written by PHP's json_encode, among others)
  110: 0x0a, // \n (line-wrapped base64: whitespace, dropped)
  114: 0x0d,
  116: 0x09,
  34: 0x22,
  92: 0x5c,
  98: 0x08,
  102: 0x0c,
};

export class JsonImagesReader {
  readonly images: Base64Text[] = [];
  private state: State = 'start';
  private offset = 0;
  private key: number[] = [];
  private sawImages = false;
  private literal = 0;
  // Inside an image string.
  private image: Base64Text | undefined;
  private escape: 'none' | 'backslash' | number = 'none'; // a number: \u digits read so far
  private unicode = 0;
  /** The first bytes of a string, held until it is clear whether they start a data: URL. */
  private head: number[] | undefined;

  constructor(private readonly limits: JsonImagesLimits) {}

  private fail(problem: JsonImagesProblem): never {
    throw new JsonImagesError(problem);
  }

  private malformed(expected: string, b: number | undefined): never {
    const got =
      b === undefined ? 'the end of the body' : b >= 0x20 && b < 0x7f ? `"${String.fromCharCode(b)}"` : `byte 0x${b.toString(16)}`;
    this.fail({ kind: 'malformed', message: `expected ${expected} at byte ${this.offset}, found ${got}` });
  }

  /** Reads the next chunk of the body (which this may keep views of). */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'string') {
        i = this.stringBytes(chunk, i);
        continue;
      }
      const b = chunk[i]!;
      this.offset++;
      i++;
      if (this.state === 'key') {
        this.keyByte(b);
        continue;
      }
      if (isSpace(b)) continue;
      switch (this.state) {
        case 'start':
          if (b === 0xef || b === 0xbb || b === 0xbf) continue; // a UTF-8 byte order mark
          if (b !== 0x7b) this.malformed('a JSON object "{"', b);
          this.state = 'keyOrEnd';
          break;
        case 'keyOrEnd':
        case 'keyAfterComma':
          if (b === 0x7d && this.state === 'keyOrEnd') this.state = 'done';
          else if (b === QUOTE) {
            this.key = [];
            this.escape = 'none';
            this.state = 'key';
          } else this.malformed('a field name', b);
          break;
        case 'colon':
          if (b !== 0x3a) this.malformed('":"', b);
          this.state = 'value';
          break;
        case 'value':
          if (b === 0x5b) this.state = 'firstElement';
          else if (b === 0x6e) {
            this.state = 'null';
            this.literal = 1;
          } else this.fail({ kind: 'not_a_list' });
          break;
        case 'null':
          if (b !== 'null'.charCodeAt(this.literal)) this.malformed('null', b);
          if (++this.literal === 4) this.state = 'afterValue';
          break;
        case 'firstElement':
        case 'element':
          if (b === 0x5d && this.state === 'firstElement') this.state = 'afterValue';
          else if (b === QUOTE) this.startImage();
          else if (b === 0x5d) this.malformed('a string after ","', b);
          else this.fail({ kind: 'not_a_list' });
          break;
        case 'afterElement':
          if (b === 0x2c) this.state = 'element';
          else if (b === 0x5d) this.state = 'afterValue';
          else this.malformed('"," or "]"', b);
          break;
        case 'afterValue':
          if (b === 0x2c) this.state = 'keyAfterComma';
          else if (b === 0x7d) this.state = 'done';
          else this.malformed('"," or "}"', b);
          break;
        case 'done':
          this.malformed('nothing after the object', b);
      }
    }
  }

  /** The body ended: it must have been one whole object. */
  end(): Base64Text[] {
    if (this.state !== 'done') this.malformed(this.state === 'start' ? 'a JSON object' : 'the rest of the object', undefined);
    return this.images;
  }

  private keyByte(b: number) {
    if (this.escape === 'backslash') this.escape = 'none';
    else if (b === BACKSLASH) this.escape = 'backslash';
    else if (b === QUOTE) {
      let name: string;
      try {
        name = JSON.parse(`"${Buffer.from(this.key).toString('utf8')}"`) as string;
      } catch {
        this.malformed('a valid field name', b);
      }
      if (name !== 'images') this.fail({ kind: 'extra_field', field: name });
      if (this.sawImages) this.fail({ kind: 'duplicate_field', field: name });
      this.sawImages = true;
      this.state = 'colon';
      return;
    }
    this.key.push(b);
    // A field name this long is not `images`: refuse it now, without reading the rest.
    if (this.key.length > MAX_KEY_BYTES) this.fail({ kind: 'extra_field', field: `${Buffer.from(this.key).toString('utf8')}…` });
  }

  private startImage() {
    if (this.images.length >= this.limits.maxImages) this.fail({ kind: 'too_many_images', count: this.images.length + 1 });
    this.image = new Base64Text(this.limits.maxBase64Length);
    this.head = [];
    this.escape = 'none';
    this.state = 'string';
  }

  /** Bytes of an image string from `i` on; returns where it stopped. */
  private stringBytes(chunk: Uint8Array, start: number): number {
    let i = start;
    while (i < chunk.length) {
      if (this.escape !== 'none') {
        const b = chunk[i++]!;
        this.offset++;
        this.escapeByte(b);
        continue;
      }
      // Find the next quote or backslash natively; what lies before is plain string content.
      let end = chunk.indexOf(QUOTE, i);
      const slash = chunk.indexOf(BACKSLASH, i);
      if (slash !== -1 && (end === -1 || slash < end)) end = slash;
      const stop = end === -1 ? chunk.length : end;
      if (stop > i) this.content(chunk.subarray(i, stop));
      this.offset += stop - i;
      if (end === -1) return chunk.length;
      i = end + 1;
      this.offset++;
      if (chunk[end] === BACKSLASH) this.escape = 'backslash';
      else {
        this.endImage();
        return i;
      }
    }
    return i;
  }

  private escapeByte(b: number) {
    if (this.escape === 'backslash') {
      if (b === 0x75) {
        this.escape = 0;
        this.unicode = 0;
        return;
      }
      const value = ESCAPED[b];
      if (value === undefined) this.malformed('a valid escape after "\\"', b);
      this.escape = 'none';
      this.content(Uint8Array.of(value));
      return;
    }
    const digit = Number.parseInt(String.fromCharCode(b), 16);
    if (Number.isNaN(digit)) this.malformed('a hex digit of a \\u escape', b);
    this.unicode = this.unicode * 16 + digit;
    this.escape = (this.escape as number) + 1;
    if (this.escape === 4) {
      this.escape = 'none';
      // Only ASCII can be base64; anything else is refused by the check as any other wrong character.
      this.content(Uint8Array.of(this.unicode < 0x80 ? this.unicode : 0));
    }
  }

  /** String content, escapes decoded: the data: URL head first, then base64. */
  private content(bytes: Uint8Array) {
    const index = this.images.length;
    try {
      if (this.head === undefined) {
        this.image!.push(bytes);
        return;
      }
      // The usual case: the string's first bytes are all here and do not start a data: URL.
      if (this.head.length === 0 && bytes.length >= 5 && !isDataPrefix(bytes)) {
        this.head = undefined;
        this.image!.push(bytes);
        return;
      }
      let i = 0;
      for (; i < bytes.length && this.head !== undefined; i++) {
        this.head.push(bytes[i]!);
        const h = this.head;
        if (h.length <= 5 && h[h.length - 1] !== 'data:'.charCodeAt(h.length - 1)) {
          // Not a data: URL: what was held is base64 like the rest.
          this.head = undefined;
          this.image!.push(Uint8Array.from(h));
        } else if (h.length > 5 && bytes[i] === 0x2c) {
          const text = Buffer.from(h).toString('latin1');
          if (!DATA_URL_HEAD.test(text))
            this.fail({ kind: 'bad_base64', index, message: 'A data: URL image must be base64 (data:image/png;base64,...)' });
          this.head = undefined;
        } else if (h.length > MAX_DATA_URL_HEAD) {
          this.fail({ kind: 'bad_base64', index, message: 'A data: URL image must be base64 (data:image/png;base64,...)' });
        }
      }
      if (i < bytes.length) this.image!.push(bytes.subarray(i));
    } catch (error) {
      if (error instanceof TooLong) this.fail({ kind: 'image_too_large', index });
      if (error instanceof Base64Error) {
        this.fail({ kind: 'bad_base64', index, message: `Input should be base64-encoded image bytes or a data: URL: ${error.message}` });
      }
      throw error;
    }
  }

  private endImage() {
    const index = this.images.length;
    if (this.head !== undefined) {
      const h = this.head;
      this.head = undefined;
      if (h.length >= 5) this.fail({ kind: 'bad_base64', index, message: 'A data: URL image must be base64 (data:image/png;base64,...)' });
      this.content(Uint8Array.from(h));
    }
    this.images.push(this.image!);
    this.image = undefined;
    this.state = 'afterElement';
  }
}
