import type { Config } from '../config';
import { ApiError } from './errors';

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

/**
 * Watches a multipart body go by and refuses it (413) the moment one part outgrows an image's
 * limit or the parts outnumber the images allowed, so an oversized image is never held whole.
 * It only counts the bytes between boundary delimiters; parsing is left to `Response.formData()`.
 */
export function multipartGuard(boundary: string, config: Config): (chunk: Uint8Array) => void {
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const maxPart = config.maxImageBytes + PART_OVERHEAD;
  // The first delimiter has no CRLF before it: start as if one had just been seen.
  let carry: Buffer = Buffer.from('\r\n');
  let delimiters = 0;
  let partBytes = 0;
  return (chunk) => {
    const data = Buffer.concat([carry, chunk]);
    let from = 0;
    for (let at = data.indexOf(delimiter, from); at !== -1; at = data.indexOf(delimiter, from)) {
      partBytes += at - from;
      if (delimiters > 0 && partBytes > maxPart) throw imageTooLarge(undefined, config);
      delimiters++;
      // Delimiters after the first open parts; the last one closes the body.
      if (delimiters - 1 > config.maxImages + EXTRA_PARTS) throw tooManyImages(`more than ${config.maxImages}`, config);
      partBytes = 0;
      from = at + delimiter.length;
    }
    // The tail might be the start of a delimiter: keep it for the next chunk.
    const keep = Math.min(delimiter.length - 1, data.length - from);
    partBytes += data.length - from - keep;
    if (delimiters > 0 && partBytes > maxPart) throw imageTooLarge(undefined, config);
    carry = data.subarray(data.length - keep);
  };
}

/**
 * Reads a request body, giving up with 413 as soon as it passes `limit` bytes (or `inspect`
 * throws): an oversized upload is refused on its Content-Length, or mid-way for a chunked one,
 * never held whole.
 */
export async function readBodyLimited(request: Request, limit: number, inspect?: (chunk: Uint8Array) => void): Promise<Uint8Array> {
  const declared = Number(request.headers.get('content-length') ?? Number.NaN);
  if (declared > limit) throw tooLarge(limit);
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
        // Bun itself stops a body at Bun.serve's maxRequestBodySize (set just above our limits).
        if (String(error).includes('maxRequestBodySize')) throw tooLarge(limit);
        throw new ApiError(400, 'The request body could not be read to the end (the upload was interrupted).', 'malformed_body');
      }
      const { done, value } = next;
      if (done || !value) break;
      total += value.length;
      if (total > limit) throw tooLarge(limit);
      inspect?.(value);
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

const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;
const DATA_URL = /^data:([^,;]*)(;[^,]*)?;base64,/i;

/** Accepts standard or URL-safe base64, with or without a `data:` URL prefix (Ollama rejects the prefix). */
function decodeBase64Image(value: string, index: number, config: Config): Uint8Array {
  const loc = ['body', 'images', index];
  let text = value.replace(DATA_URL, '').replace(/\s+/g, '');
  if (value.startsWith('data:') && text.length + 5 >= value.length) {
    throw invalid(loc, 'A data: URL image must be base64 (data:image/png;base64,...)');
  }
  if (text === '' || !BASE64.test(text)) throw invalid(loc, 'Input should be base64-encoded image bytes or a data: URL');
  if (Math.floor((text.length * 3) / 4) > config.maxImageBytes + 3) throw imageTooLarge(index, config);
  text = text.replace(/=+$/, '');
  return Buffer.from(text, 'base64');
}

/** Checks one image's size and type and returns it as standard base64, the form Ollama takes. */
function checkImage(bytes: Uint8Array, index: number, config: Config): string {
  if (bytes.length > config.maxImageBytes) throw imageTooLarge(index, config);
  if (!sniffImage(bytes)) {
    throw new ApiError(
      415,
      `images[${index}] is not a PNG, JPEG, GIF, WebP or BMP image (checked from its bytes, not its declared type).`,
      'unsupported_image',
    );
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');
}

/**
 * The images of a vision request, as `multipart/form-data` files in the field `images` (as the
 * original took them) or as JSON `{"images": ["<base64 or data: URL>", ...]}`. Nothing touches
 * the disk.
 */
export async function readImages(request: Request, config: Config): Promise<string[]> {
  // The multipart boundary is case-sensitive: compare a lower-cased copy, parse with the original.
  const contentType = request.headers.get('content-type') ?? '';
  const mediaType = contentType.toLowerCase();
  const isMultipart = mediaType.startsWith('multipart/form-data');
  const isJson = mediaType.startsWith('application/json');
  if (!isMultipart && !isJson) {
    throw new ApiError(
      415,
      'Send images as multipart/form-data (files in the field "images") or as application/json {"images": ["<base64>"]}.',
      'unsupported_media_type',
    );
  }
  let values: (string | Uint8Array)[];
  if (isMultipart) {
    const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
    if (!boundary) throw new ApiError(400, 'The multipart/form-data Content-Type has no boundary.', 'malformed_body');
    const bytes = await readBodyLimited(request, maxMultipartBodyBytes(config), multipartGuard(boundary[1] ?? boundary[2]!, config));
    let form: Awaited<ReturnType<Response['formData']>>;
    try {
      form = await new Response(bytes, { headers: { 'content-type': contentType } }).formData();
    } catch {
      throw new ApiError(400, 'The multipart/form-data body could not be parsed.', 'malformed_body');
    }
    values = await Promise.all(
      form.getAll('images').map(async (entry) => (typeof entry === 'string' ? entry : new Uint8Array(await entry.arrayBuffer()))),
    );
  } else {
    const bytes = await readBodyLimited(request, maxJsonBodyBytes(config));
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(bytes));
    } catch (error) {
      throw new ApiError(400, `The JSON body could not be parsed: ${(error as Error).message}`, 'malformed_body');
    }
    const images = (parsed as { images?: unknown } | null)?.images;
    if (images === undefined) values = [];
    else if (!Array.isArray(images) || images.some((image) => typeof image !== 'string')) {
      throw invalid(['body', 'images'], 'Input should be a list of base64 strings', 'list_type');
    } else values = images as string[];
  }
  if (values.length === 0) throw invalid(['body', 'images'], 'Field required: at least one image', 'missing');
  if (values.length > config.maxImages) throw tooManyImages(values.length, config);
  return values.map((value, index) =>
    checkImage(typeof value === 'string' ? decodeBase64Image(value, index, config) : value, index, config),
  );
}
