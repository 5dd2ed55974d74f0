import type { Config } from '../config';
import { ApiError } from '../http/errors';
import { readChunks } from '../http/body';
import { Base64Text, TooLong } from './base64-text';
import { DATA_URL_HEAD, JsonImagesError, JsonImagesReader } from './json-images';
import { MultipartError, type Part, readMultipart } from './multipart';

export type ImageKind = 'png' | 'jpeg' | 'gif' | 'webp' | 'bmp';

/** How many leading bytes the header check looks at (a JPEG's dimensions may follow large metadata). */
export const IMAGE_HEAD_BYTES = 64 * 1024;

const u16be = (b: Uint8Array, i: number) => (b[i]! << 8) | b[i + 1]!;
const u16le = (b: Uint8Array, i: number) => b[i]! | (b[i + 1]! << 8);
const u32be = (b: Uint8Array, i: number) => ((b[i]! << 24) >>> 0) + ((b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!);
const u32le = (b: Uint8Array, i: number) => ((b[i + 3]! << 24) >>> 0) + ((b[i + 2]! << 16) | (b[i + 1]! << 8) | b[i]!);
const ascii = (b: Uint8Array, start: number, text: string) =>
  b.length >= start + text.length && [...text].every((ch, i) => b[start + i] === ch.charCodeAt(0));

/** The SOF markers whose segment holds a JPEG's dimensions. */
const JPEG_SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

/** A JPEG's dimensions: the segments are walked to the first frame header. */
function jpegSize(b: Uint8Array, total: number): [number, number] | 'beyond' | undefined {
  let i = 2;
  for (;;) {
    while (i < b.length && b[i] === 0xff && b[i + 1] === 0xff) i++; // fill bytes
    if (i + 4 > b.length) return total > b.length ? 'beyond' : undefined;
    if (b[i] !== 0xff) return undefined;
    const marker = b[i + 1]!;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined; // the image ended, or its data began, without a frame header
    if (JPEG_SOF.has(marker)) {
      if (i + 9 > b.length) return total > b.length ? 'beyond' : undefined;
      return [u16be(b, i + 7), u16be(b, i + 5)];
    }
    const length = u16be(b, i + 2);
    if (length < 2) return undefined;
    i += 2 + length;
  }
}

/**
 * The image type and dimensions from the bytes themselves (never the client's declared type or
 * file name): the header must be complete, so that a bare signature (8 bytes of PNG magic) is not
 * taken for an image. `bytes` is the image's start (at least IMAGE_HEAD_BYTES of it when it is
 * that long); `total` its whole size. A JPEG whose frame header lies beyond those first bytes
 * (very large metadata) is accepted on its segments so far.
 */
export function imageInfo(bytes: Uint8Array, total = bytes.length): { kind: ImageKind; width?: number; height?: number } | undefined {
  const b = bytes;
  const sized = (kind: ImageKind, width: number, height: number) => (width > 0 && height > 0 ? { kind, width, height } : undefined);
  if ([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((v, i) => b[i] === v)) {
    if (b.length < 24 || !ascii(b, 12, 'IHDR')) return undefined;
    return sized('png', u32be(b, 16), u32be(b, 20));
  }
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) {
    const size = jpegSize(b, total);
    if (size === 'beyond') return { kind: 'jpeg' };
    return size && sized('jpeg', size[0], size[1]);
  }
  if (ascii(b, 0, 'GIF87a') || ascii(b, 0, 'GIF89a')) {
    if (b.length < 10) return undefined;
    return sized('gif', u16le(b, 6), u16le(b, 8));
  }
  if (ascii(b, 0, 'RIFF') && ascii(b, 8, 'WEBP')) {
    if (b.length < 30) return undefined;
    if (ascii(b, 12, 'VP8 ')) {
      if (b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) return undefined;
      return sized('webp', u16le(b, 26) & 0x3fff, u16le(b, 28) & 0x3fff);
    }
    if (ascii(b, 12, 'VP8L')) {
      if (b[20] !== 0x2f) return undefined;
      const bits = u32le(b, 21);
      return sized('webp', (bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
    }
    if (ascii(b, 12, 'VP8X'))
      return sized('webp', (b[24]! | (b[25]! << 8) | (b[26]! << 16)) + 1, (b[27]! | (b[28]! << 8) | (b[29]! << 16)) + 1);
    return undefined;
  }
  if (ascii(b, 0, 'BM')) {
    if (b.length < 26) return undefined;
    const dib = u32le(b, 14);
    if (dib === 12) return sized('bmp', u16le(b, 18), u16le(b, 20));
    if (dib < 40) return undefined;
    return sized('bmp', u32le(b, 18) | 0, Math.abs(u32le(b, 22) | 0));
  }
  return undefined;
}

/** The image type, when the bytes start with a complete header of one. */
export const sniffImage = (bytes: Uint8Array, total = bytes.length): ImageKind | undefined => imageInfo(bytes, total)?.kind;

/** Room for a multipart part's headers, or a JSON body's punctuation, beyond the image bytes. */
const PART_OVERHEAD = 16 * 1024;
const BODY_OVERHEAD = 64 * 1024;
/** Form fields other than `images` that a multipart body may carry (their bytes count against MINATO_MAX_BODY_BYTES). */
export const EXTRA_PARTS = 8;

const base64Length = (bytes: number) => Math.ceil(bytes / 3) * 4;
/** The most base64 characters (padding aside) an image within MINATO_MAX_IMAGE_BYTES takes. */
const maxBase64Chars = (config: Config) => Math.ceil((config.maxImageBytes * 4) / 3);

/** The most a multipart vision body may hold: every image at its limit, as raw bytes, and the small fields. */
export const maxMultipartBodyBytes = (config: Config) =>
  config.maxImages * (config.maxImageBytes + PART_OVERHEAD) + config.maxBodyBytes + BODY_OVERHEAD;
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
  // Refused on the way (MINATO_BODY_BUDGET): that refusal, as it is.
  if (error instanceof ApiError) return error;
  // Bun itself stops a body at Bun.serve's maxRequestBodySize (set just above our limits).
  if (String(error).includes('maxRequestBodySize')) return tooLarge(limit);
  return new ApiError(400, 'The request body could not be read to the end (the upload was interrupted).', 'malformed_body');
}

/** A form field without a filename or type: base64 text rather than a file. */
const isTextField = (part: Part) => part.filename === undefined && part.contentType === undefined;

/**
 * Reads a request body chunk by chunk into `onChunk`, giving up with 413 as soon as it passes
 * `limit` bytes (or `onChunk` throws): an oversized upload is refused on its Content-Length, or
 * mid-way for a chunked one, never held whole.
 */
export async function readBodyChunks(
  request: Request,
  limit: number,
  onChunk: (chunk: Uint8Array) => void,
  overLimit: (limit: number) => ApiError = tooLarge,
): Promise<void> {
  refuseDeclaredOversize(request, limit);
  if (!request.body) return;
  await readChunks(request.body, { limit, onChunk, overLimit: () => overLimit(limit), readError: (error) => bodyReadError(error, limit) });
}

const invalid = (loc: (string | number)[], msg: string, type = 'value_error') =>
  new ApiError(422, msg, 'validation_error', {}, [{ loc, msg, type }]);

const unsupported = (index: number | string) =>
  new ApiError(
    415,
    `${typeof index === 'number' ? `images[${index}]` : index} is not a complete PNG, JPEG, GIF, WebP or BMP image header (checked from its bytes, not its declared type).`,
    'unsupported_image',
  );

/**
 * An image on its way to Ollama: raw bytes as the chunks they arrived in (multipart), or base64
 * text in the standard alphabet as the pieces it arrived in, unpadded, with the padding to add
 * (JSON, or a multipart text field). Neither is copied into one piece: `imagesJsonBody` encodes
 * them into the upstream request as it is sent.
 */
export type ImageSource = { chunks: Uint8Array[]; size: number } | { base64: Uint8Array[]; padding: string };

/** A checked base64 image: its length possible, its header complete. */
function base64Image(text: Base64Text, index: number): ImageSource {
  let padding: string;
  try {
    padding = text.finish();
  } catch (error) {
    throw invalid(['body', 'images', index], `Input should be base64-encoded image bytes or a data: URL: ${(error as Error).message}`);
  }
  const head = text.head(IMAGE_HEAD_BYTES);
  if (!imageInfo(head, Math.floor((text.length * 3) / 4))) throw unsupported(index);
  return { base64: text.pieces, padding };
}

/**
 * One image given as a string (a chat message's `images`): standard or URL-safe base64, or a
 * `data:` URL (prefix stripped: Ollama rejects it), checked as the vision routes check theirs.
 * Returns the standard base64 Ollama requires. `loc` names it in errors.
 */
export function checkedBase64Image(value: string, loc: (string | number)[], config: Config): string {
  const where = loc
    .slice(1)
    .reduce<string>((text, part) => (typeof part === 'number' ? `${text}[${part}]` : text ? `${text}.${part}` : String(part)), '');
  let text = value;
  if (text.startsWith('data:')) {
    const head = DATA_URL_HEAD.exec(text.slice(0, 256));
    if (!head) throw invalid(loc, 'A data: URL image must be base64 (data:image/png;base64,...)');
    text = text.slice(head[0].length);
  }
  const base64 = new Base64Text(maxBase64Chars(config));
  let padding: string;
  try {
    base64.push(Buffer.from(text, 'latin1'));
    padding = base64.finish();
  } catch (error) {
    if (error instanceof TooLong) {
      throw new ApiError(413, `${where} is larger than ${config.maxImageBytes} bytes (MINATO_MAX_IMAGE_BYTES).`, 'image_too_large');
    }
    throw invalid(loc, `Input should be base64-encoded image bytes or a data: URL: ${(error as Error).message}`);
  }
  if (!imageInfo(base64.head(IMAGE_HEAD_BYTES), Math.floor((base64.length * 3) / 4))) throw unsupported(where);
  return Buffer.concat(base64.pieces).toString('latin1') + padding;
}

/** The images of a JSON body, `{"images": ["<base64 or data: URL>", ...]}`, read as a stream (see JsonImagesReader). */
async function readJsonImages(request: Request, config: Config): Promise<ImageSource[]> {
  const reader = new JsonImagesReader({ maxImages: config.maxImages, maxBase64Length: maxBase64Chars(config) });
  let texts: Base64Text[];
  try {
    await readBodyChunks(request, maxJsonBodyBytes(config), (chunk) => reader.push(chunk));
    texts = reader.end();
  } catch (error) {
    if (!(error instanceof JsonImagesError)) throw error;
    const problem = error.problem;
    switch (problem.kind) {
      case 'malformed':
        throw new ApiError(400, `The JSON body is malformed: ${problem.message}.`, 'malformed_body');
      case 'extra_field':
      case 'duplicate_field': {
        const field = problem.field.length > 64 ? `${problem.field.slice(0, 64)}…` : problem.field;
        const msg =
          problem.kind === 'extra_field'
            ? `Extra inputs are not permitted: the body takes only "images" (the prompt and options go in the query string), got "${field}"`
            : 'The field "images" appears twice';
        throw invalid(['body', field], msg, problem.kind === 'extra_field' ? 'extra_forbidden' : 'value_error');
      }
      case 'not_a_list':
        throw invalid(['body', 'images'], 'Input should be a list of base64 strings', 'list_type');
      case 'too_many_images':
        throw tooManyImages(`more than ${config.maxImages}`, config);
      case 'image_too_large':
        throw imageTooLarge(problem.index, config);
      case 'bad_base64':
        throw invalid(['body', 'images', problem.index], problem.message);
    }
  }
  return texts.map((text, index) => base64Image(text, index));
}

/**
 * The images of a multipart body: the parts named `images`, files (as the original took them)
 * or base64 text fields. Each part is checked while it arrives: its size against
 * MINATO_MAX_IMAGE_BYTES, the number of parts, and its first bytes against the image types.
 * Other fields are not kept: their bytes only count against MINATO_MAX_BODY_BYTES.
 */
async function readMultipartImages(request: Request, contentType: string, config: Config): Promise<ImageSource[]> {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!boundary) throw new ApiError(400, 'The multipart/form-data Content-Type has no boundary.', 'malformed_body');
  const limit = maxMultipartBodyBytes(config);
  refuseDeclaredOversize(request, limit);
  if (!request.body) throw invalid(['body', 'images'], 'Field required: at least one image', 'missing');
  let total = 0;
  let images = 0;
  let others = 0;
  let otherBytes = 0;
  let parts: Part[];
  const texts = new Map<Part, Base64Text>();
  try {
    parts = await readMultipart(request.body, boundary[1] ?? boundary[2]!, {
      keep: (part) => part.name === 'images' && !isTextField(part),
      onPart: (part) => {
        if (part.name === 'images') {
          images++;
          if (images > config.maxImages) throw tooManyImages(`more than ${config.maxImages}`, config);
          if (isTextField(part)) texts.set(part, new Base64Text(maxBase64Chars(config)));
        } else if (++others > EXTRA_PARTS) {
          throw new ApiError(
            413,
            `Too many form fields besides "images": at most ${EXTRA_PARTS}, got more. Only "images" is read; send the prompt in the query string.`,
            'too_many_fields',
          );
        }
      },
      onPartData: (part, bytes) => {
        total += bytes.length;
        if (total > limit) throw tooLarge(limit);
        if (part.name !== 'images') {
          otherBytes += bytes.length;
          if (otherBytes > config.maxBodyBytes) {
            throw new ApiError(
              413,
              `Form fields other than "images" take more than ${config.maxBodyBytes} bytes (MINATO_MAX_BODY_BYTES); only "images" is read.`,
              'fields_too_large',
            );
          }
          return;
        }
        const text = texts.get(part);
        if (text) {
          try {
            text.push(bytes);
          } catch (error) {
            if (error instanceof TooLong) throw imageTooLarge(images - 1, config);
            throw invalid(['body', 'images', images - 1], `Input should be base64-encoded image bytes: ${(error as Error).message}`);
          }
        } else if (part.size > config.maxImageBytes) throw imageTooLarge(images - 1, config);
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
      const text = texts.get(part);
      if (text) return base64Image(text, index);
      if (part.size === 0) throw invalid(['body', 'images', index], 'The file is empty');
      const first = part.chunks[0]!;
      const head = part.chunks.length === 1 || first.length >= IMAGE_HEAD_BYTES ? first : headOf(part.chunks, IMAGE_HEAD_BYTES);
      if (!imageInfo(head, part.size)) throw unsupported(index);
      return { chunks: part.chunks, size: part.size };
    });
}

/** The first `bytes` of an image that arrived in chunks. */
function headOf(chunks: Uint8Array[], bytes: number): Uint8Array {
  const out: Uint8Array[] = [];
  let length = 0;
  for (const chunk of chunks) {
    if (length >= bytes) break;
    out.push(chunk.subarray(0, bytes - length));
    length += out.at(-1)!.length;
  }
  return Buffer.concat(out);
}

/**
 * The images of a vision request, as `multipart/form-data` files in the field `images` (as the
 * original took them) or as JSON `{"images": ["<base64 or data: URL>", ...]}`. Nothing touches
 * the disk, and an image is held once, as it arrived.
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
      if ('base64' in image) {
        yield* image.base64;
        if (image.padding) yield image.padding;
      } else yield* base64Pieces(image.chunks);
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
