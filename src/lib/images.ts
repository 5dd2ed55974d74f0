import type { Config } from '../config';
import { ApiError } from './errors';
import { MultipartError, type Part, readMultipart } from './multipart';

export type ImageKind = 'png' | 'jpeg' | 'gif' | 'webp' | 'bmp';

/** The image type from the bytes themselves (never the client's declared type or file name). */
export function sniffImage(bytes: Uint8Array): ImageKind | undefined {
  const at = (i: number) => bytes[i] ?? -1;
  const ascii = (start: number, text: string) => [...text].every((ch, i) => at(start + i) === ch.charCodeAt(0));
  if ([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((b, i) => at(i) === b)) return 'png';
  if (at(0) === 0xff && at(1) === 0xd8 && at(2) === 0xff) return 'jpeg';
  if (ascii(0, 'GIF87a') || ascii(0, 'GIF89a')) return 'gif';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'webp';
  if (ascii(0, 'BM') && bytes.length >= 26) return 'bmp';
  return undefined;
}

/** Room for a multipart part's headers, or a JSON body's punctuation, beyond the image bytes. */
const PART_OVERHEAD = 16 * 1024;
const BODY_OVERHEAD = 64 * 1024;
/** Form fields other than `images` that a multipart body may carry. */
const EXTRA_PARTS = 8;

const base64Length = (bytes: number) => Math.ceil(bytes / 3) * 4;

/** The most a multipart vision body may hold: every image at its limit, as raw bytes. */
export const maxMultipartBodyBytes = (config: Config) => config.maxImages * (config.maxImageBytes + PART_OVERHEAD) + BODY_OVERHEAD;
/** The most a JSON vision body may hold: every image at its limit, base64-encoded (data: prefixes fit in the overhead). */
export const maxJsonBodyBytes = (config: Config) => config.maxImages * (base64Length(config.maxImageBytes) + 256) + BODY_OVERHEAD;
/** The larger of the two: the bound Bun.serve itself enforces. */
export const maxVisionBodyBytes = (config: Config) => Math.max(maxMultipartBodyBytes(config), maxJsonBodyBytes(config));

const tooLarge = (limit: number) =>
  new ApiError(
    413,
    `The request body is larger than ${limit} bytes (MINATO_MAX_IMAGES images of MINATO_MAX_IMAGE_BYTES each, plus room for the form).`,
    'payload_too_large',
  );

const imageTooLarge = (index: number | undefined, config: Config) =>
  new ApiError(
    413,
    `${index === undefined ? 'An image' : `images[${index}]`} is larger than ${config.maxImageBytes} bytes (MINATO_MAX_IMAGE_BYTES).`,
    'image_too_large',
  );

const tooManyImages = (count: number | string, config: Config) =>
  new ApiError(413, `At most ${config.maxImages} images per request (MINATO_MAX_IMAGES); got ${count}.`, 'too_many_images');

/** A Content-Length over the limit is refused before a byte is read. */
function refuseDeclaredOversize(request: Request, limit: number) {
  const declared = Number(request.headers.get('content-length') ?? Number.NaN);
  if (declared > limit) throw tooLarge(limit);
}

/** What a failed read of the request body means for the client. */
function bodyReadError(error: unknown, limit: number): ApiError {
  // Bun itself stops a body at Bun.serve's maxRequestBodySize (set just above our limits).
  if (String(error).includes('maxRequestBodySize')) return tooLarge(limit);
  return new ApiError(400, 'The request body could not be read to the end (the upload was interrupted).', 'malformed_body');
}

/** A form field without a filename or type: base64 text rather than a file. */
const isTextField = (part: Part) => part.filename === undefined && part.contentType === undefined;

/**
 * Reads a request body, giving up with 413 as soon as it passes `limit` bytes (or `inspect`
 * throws): an oversized upload is refused on its Content-Length, or mid-way for a chunked one,
 * never held whole.
 */
export async function readBodyLimited(request: Request, limit: number): Promise<Uint8Array> {
  refuseDeclaredOversize(request, limit);
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      let next: { done: boolean; value?: Uint8Array };
      try {
        next = await reader.read();
      } catch (error) {
        throw bodyReadError(error, limit);
      }
      const { done, value } = next;
      if (done || !value) break;
      total += value.length;
      if (total > limit) throw tooLarge(limit);
      chunks.push(value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  }
  return Buffer.concat(chunks, total);
}

const invalid = (loc: (string | number)[], msg: string, type = 'value_error') =>
  new ApiError(422, msg, 'validation_error', {}, [{ loc, msg, type }]);

const unsupported = (index: number) =>
  new ApiError(
    415,
    `images[${index}] is not a PNG, JPEG, GIF, WebP or BMP image (checked from its bytes, not its declared type).`,
    'unsupported_image',
  );

/**
 * An image on its way to Ollama: raw bytes as the chunks they arrived in (multipart), or a
 * base64 string already in the standard alphabet Ollama requires (JSON). Neither is copied into
 * one piece: `imagesJsonBody` encodes them into the upstream request as it is sent.
 */
export type ImageSource = { chunks: Uint8Array[]; size: number } | { base64: string };

const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;
const DATA_URL = /^data:([^,;]*)(;[^,]*)?;base64,/i;

/** Accepts standard or URL-safe base64, with or without a `data:` URL prefix (Ollama rejects the prefix). */
function base64Image(value: string, index: number, config: Config): ImageSource {
  const loc = ['body', 'images', index];
  let text = value.startsWith('data:') ? value.replace(DATA_URL, '') : value;
  if (value.startsWith('data:') && text.length + 5 >= value.length) {
    throw invalid(loc, 'A data: URL image must be base64 (data:image/png;base64,...)');
  }
  if (/\s/.test(text)) text = text.replace(/\s+/g, '');
  if (text === '' || !BASE64.test(text)) throw invalid(loc, 'Input should be base64-encoded image bytes or a data: URL');
  if (Math.floor((text.length * 3) / 4) > config.maxImageBytes + 3) throw imageTooLarge(index, config);
  if (/[-_]/.test(text)) text = text.replaceAll('-', '+').replaceAll('_', '/');
  const unpadded = text.replace(/=+$/, '');
  if (Math.floor((unpadded.length * 3) / 4) > config.maxImageBytes) throw imageTooLarge(index, config);
  if (!sniffImage(Buffer.from(unpadded.slice(0, 64), 'base64'))) throw unsupported(index);
  // Re-pad, so that what Ollama's Go decoder gets is canonical standard base64.
  return { base64: unpadded + '='.repeat((4 - (unpadded.length % 4)) % 4) };
}

/** The images of a JSON body: `{"images": ["<base64 or data: URL>", ...]}`. */
async function readJsonImages(request: Request, config: Config): Promise<ImageSource[]> {
  const bytes = await readBodyLimited(request, maxJsonBodyBytes(config));
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new ApiError(400, `The JSON body could not be parsed: ${(error as Error).message}`, 'malformed_body');
  }
  const images = (parsed as { images?: unknown } | null)?.images;
  if (images === undefined) return [];
  if (!Array.isArray(images) || images.some((image) => typeof image !== 'string')) {
    throw invalid(['body', 'images'], 'Input should be a list of base64 strings', 'list_type');
  }
  if (images.length > config.maxImages) throw tooManyImages(images.length, config);
  return images.map((image, index) => base64Image(image as string, index, config));
}

/**
 * The images of a multipart body: the parts named `images`, files (as the original took them)
 * or base64 text fields. Each part is checked while it arrives: its size against
 * MINATO_MAX_IMAGE_BYTES, the number of parts, and its first bytes against the image types.
 */
async function readMultipartImages(request: Request, contentType: string, config: Config): Promise<ImageSource[]> {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!boundary) throw new ApiError(400, 'The multipart/form-data Content-Type has no boundary.', 'malformed_body');
  const limit = maxMultipartBodyBytes(config);
  refuseDeclaredOversize(request, limit);
  if (!request.body) throw invalid(['body', 'images'], 'Field required: at least one image', 'missing');
  let total = 0;
  let images = 0;
  let parts: Part[];
  try {
    parts = await readMultipart(request.body, boundary[1] ?? boundary[2]!, {
      onPart: (count) => {
        if (count > config.maxImages + EXTRA_PARTS) throw tooManyImages(`more than ${config.maxImages}`, config);
      },
      onPartData: (part) => {
        total += part.chunks.at(-1)?.length ?? 0;
        if (total > limit) throw tooLarge(limit);
        if (part.name !== 'images') return;
        if (part.chunks.length === 1) {
          images++;
          if (images > config.maxImages) throw tooManyImages(`more than ${config.maxImages}`, config);
        }
        // A text field holds base64, a third larger than the bytes it stands for.
        const allowed = isTextField(part) ? base64Length(config.maxImageBytes) + 256 : config.maxImageBytes;
        if (part.size > allowed) throw imageTooLarge(images - 1, config);
      },
    });
  } catch (error) {
    if (error instanceof ApiError) throw error;
    if (error instanceof MultipartError)
      throw new ApiError(400, `The multipart/form-data body is malformed: ${error.message}.`, 'malformed_body');
    throw bodyReadError(error, limit);
  }
  return parts
    .filter((part) => part.name === 'images')
    .map((part, index) => {
      if (isTextField(part)) return base64Image(Buffer.concat(part.chunks).toString('latin1'), index, config);
      if (part.size === 0) throw invalid(['body', 'images', index], 'The file is empty');
      const head =
        part.chunks.length === 1 || (part.chunks[0]?.length ?? 0) >= 32 ? part.chunks[0]! : Buffer.concat(part.chunks).subarray(0, 32);
      if (!sniffImage(head)) throw unsupported(index);
      return { chunks: part.chunks, size: part.size };
    });
}

/**
 * The images of a vision request, as `multipart/form-data` files in the field `images` (as the
 * original took them) or as JSON `{"images": ["<base64 or data: URL>", ...]}`. Nothing touches
 * the disk, and a multipart image is held once, as it arrived.
 */
export async function readImages(request: Request, config: Config): Promise<ImageSource[]> {
  // The multipart boundary is case-sensitive: compare a lower-cased copy, parse with the original.
  const contentType = request.headers.get('content-type') ?? '';
  const mediaType = contentType.toLowerCase();
  let images: ImageSource[];
  if (mediaType.startsWith('multipart/form-data')) images = await readMultipartImages(request, contentType, config);
  else if (mediaType.startsWith('application/json')) images = await readJsonImages(request, config);
  else {
    throw new ApiError(
      415,
      'Send images as multipart/form-data (files in the field "images") or as application/json {"images": ["<base64>"]}.',
      'unsupported_media_type',
    );
  }
  if (images.length === 0) throw invalid(['body', 'images'], 'Field required: at least one image', 'missing');
  return images;
}

const encoder = new TextEncoder();

const BASE64_PIECE = 3 * 64 * 1024;
const ALPHABET = new TextEncoder().encode('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/');
const PAD = 0x3d;

/**
 * Standard base64 of `bytes`, written straight into bytes. Going through a string first (as
 * `Buffer#toString('base64')` does) leaves a string and its encoded copy per piece for the
 * garbage collector, which for a 10 MiB image was most of the request's peak memory.
 */
function base64Bytes(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.length / 3) * 4);
  const whole = bytes.length - (bytes.length % 3);
  let o = 0;
  for (let i = 0; i < whole; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = ALPHABET[n >>> 18]!;
    out[o++] = ALPHABET[(n >>> 12) & 63]!;
    out[o++] = ALPHABET[(n >>> 6) & 63]!;
    out[o++] = ALPHABET[n & 63]!;
  }
  const rest = bytes.length - whole;
  if (rest > 0) {
    const n = (bytes[whole]! << 16) | (rest === 2 ? bytes[whole + 1]! << 8 : 0);
    out[o++] = ALPHABET[n >>> 18]!;
    out[o++] = ALPHABET[(n >>> 12) & 63]!;
    out[o++] = rest === 2 ? ALPHABET[(n >>> 6) & 63]! : PAD;
    out[o++] = PAD;
  }
  return out;
}

/** Standard base64 of bytes that arrive in chunks of any length, without joining them. */
function* base64Pieces(chunks: Uint8Array[]): Generator<Uint8Array> {
  let carry = new Uint8Array(0);
  for (let i = 0; i < chunks.length; i++) {
    let chunk = chunks[i]!;
    chunks[i] = carry; // let the image's memory go as it is encoded
    if (carry.length > 0) {
      const fill = Math.min(3 - carry.length, chunk.length);
      const group = new Uint8Array(carry.length + fill);
      group.set(carry);
      group.set(chunk.subarray(0, fill), carry.length);
      chunk = chunk.subarray(fill);
      if (group.length < 3) {
        carry = group;
        continue;
      }
      yield base64Bytes(group);
    }
    const usable = chunk.length - (chunk.length % 3);
    // Bounded pieces (a multiple of 3 bytes), however large the chunk that came in.
    for (let at = 0; at < usable; at += BASE64_PIECE) yield base64Bytes(chunk.subarray(at, Math.min(at + BASE64_PIECE, usable)));
    carry = chunk.slice(usable);
  }
  if (carry.length > 0) yield base64Bytes(carry);
}

/**
 * The JSON body of Ollama's `/api/generate` with the images written into it as it is sent,
 * so that the base64 form of a large image never exists whole in memory.
 */
export function imagesJsonBody(body: Record<string, unknown>, images: ImageSource[]): ReadableStream<Uint8Array> {
  const head = JSON.stringify({ ...body, images: undefined });
  function* pieces(): Generator<string | Uint8Array> {
    yield `${head.slice(0, -1)}${head.length > 2 ? ',' : ''}"images":[`;
    for (const [index, image] of images.entries()) {
      yield index === 0 ? '"' : ',"';
      if ('base64' in image) yield image.base64;
      else yield* base64Pieces(image.chunks);
      yield '"';
    }
    yield ']}';
  }
  const iterator = pieces();
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(typeof next.value === 'string' ? encoder.encode(next.value) : next.value);
    },
  });
}
