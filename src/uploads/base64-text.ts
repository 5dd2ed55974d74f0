/**
 * Base64 text collected as it arrives (a JSON string, a multipart text field), checked byte by
 * byte and kept as the pieces it came in: standard or URL-safe alphabet, whitespace ignored,
 * `=` padding only at the end. What is kept is the standard alphabet without padding, so that
 * Ollama's Go decoder gets canonical base64 once `padding` is added. A piece already in the
 * standard alphabet is kept as a view of the bytes it came in, never copied.
 */

/** What each byte is: 1 a standard base64 character, 2 URL-safe (`-`, `_`), 3 whitespace, 4 `=`, 0 anything else. */
const KIND = new Uint8Array(256);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') KIND[ch.charCodeAt(0)] = 1;
KIND[0x2d] = 2; // -
KIND[0x5f] = 2; // _
for (const ch of ' \t\r\n') KIND[ch.charCodeAt(0)] = 3;
KIND[0x3d] = 4; // =

const PLUS = 0x2b;
const SLASH = 0x2f;

export class Base64Error extends Error {}

export class Base64Text {
  readonly pieces: Uint8Array[] = [];
  /** Base64 characters kept (padding excluded). */
  length = 0;
  private padding = 0;

  /** @param maxLength the most characters an image within its byte limit can take. */
  constructor(private readonly maxLength: number) {}

  /** Adds `bytes` (which this keeps a view of: do not reuse the buffer). */
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    let i = 0;
    // The common case: a run of standard characters, kept as it is.
    if (this.padding === 0) {
      while (i < bytes.length && KIND[bytes[i]!] === 1) i++;
      if (i === bytes.length) {
        this.keep(bytes);
        return;
      }
    }
    // Something to translate or drop: copy what is kept.
    const out = new Uint8Array(bytes.length);
    out.set(bytes.subarray(0, i));
    let o = i;
    for (; i < bytes.length; i++) {
      const b = bytes[i]!;
      const kind = KIND[b]!;
      if (kind === 3) continue;
      if (kind === 4) {
        this.padding++;
        if (this.padding > 2) throw new Base64Error('more than two "=" at the end');
        continue;
      }
      if (kind === 0) throw new Base64Error(`a character that is not base64 (${describe(b)})`);
      if (this.padding > 0) throw new Base64Error('"=" padding before the end');
      out[o++] = kind === 1 ? b : b === 0x2d ? PLUS : SLASH;
    }
    if (o > 0) this.keep(out.subarray(0, o));
  }

  private keep(piece: Uint8Array) {
    this.length += piece.length;
    if (this.length > this.maxLength) throw new TooLong();
    this.pieces.push(piece);
  }

  /** Checks the whole: a length of 1 mod 4 cannot be base64 of anything. Returns the padding to add. */
  finish(): string {
    if (this.length === 0) throw new Base64Error('empty');
    if (this.length % 4 === 1) throw new Base64Error(`its length (${this.length} characters, padding aside) is not possible for base64`);
    return '='.repeat((4 - (this.length % 4)) % 4);
  }

  /** The first `bytes` decoded bytes (or all, when shorter), for checking the image's header. */
  head(bytes: number): Uint8Array {
    const chars = Math.min(this.length, Math.ceil(bytes / 3) * 4);
    let text = '';
    for (const piece of this.pieces) {
      if (text.length >= chars) break;
      text += Buffer.from(piece.buffer, piece.byteOffset, Math.min(piece.length, chars - text.length)).toString('latin1');
    }
    // A last group of 2 or 3 characters decodes to 1 or 2 whole bytes.
    return Buffer.from(text, 'base64');
  }
}

/** Thrown when the text passes `maxLength`: the image is over its size limit. */
export class TooLong extends Error {}

const describe = (b: number) => (b >= 0x20 && b < 0x7f ? `"${String.fromCharCode(b)}"` : `byte 0x${b.toString(16).padStart(2, '0')}`);
