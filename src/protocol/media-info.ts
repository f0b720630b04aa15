// What a media file really is (TPC/1 §5, §6): the sniffed MIME type of its bytes, its duration and
// dimensions read with real parsers, and the committed media fixtures (fixtures/media/).
//
// Parsers: file-type sniffs the container from magic bytes; music-metadata reads durations (Ogg/Opus,
// MP4/AAC, MP4 video); image-size reads JPEG/PNG dimensions; a small ISO BMFF box walker below reads
// an MP4's video track size and tells audio-only MP4 files from videos. Nothing shells out.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileTypeFromBuffer } from "file-type";
import { imageSize } from "image-size";

// ---------------------------------------------------------------------------------------------
// MIME names

/**
 * The one mapping from the names file-type (and senders) use to the TPC/1 names. Keys and values
 * are bare lowercase types; parameters (`; codecs=opus`) are stripped before the lookup.
 *
 * What file-type 21 returns for the TPC/1 formats, and why each alias is here:
 * - JPEG → `image/jpeg`, PNG → `image/png`: already the TPC/1 names.
 * - Ogg/Opus → `audio/ogg; codecs=opus` (ext `opus`); older file-type versions said `audio/opus`.
 *   Other Ogg audio (Vorbis, FLAC, Speex) → `audio/ogg`. All are the TPC/1 `audio/ogg`.
 * - MP4 with major brand `M4A ` (what ffmpeg, iOS and most encoders write for .m4a) → `audio/x-m4a`;
 *   brands `M4B `, `F4A `, `F4B ` → `audio/mp4`. All are the TPC/1 `audio/mp4` (RFC 4337).
 * - MP4 with a generic brand (`isom`, `mp41`, `mp42`, `dash`, …) → `video/mp4`, even when the file
 *   holds only audio (as Android voice recorders write it). sniffMime() therefore looks at the
 *   tracks of every MP4-family file: audio-only → `audio/mp4`, any video track → `video/mp4`
 *   (RFC 4337 §2). When the `moov` box is missing (e.g. a truncated file whose index was at the
 *   end) file-type's brand-based answer stands.
 * - `video/x-m4v` (Apple's M4V brand) is an MP4 video: `video/mp4`.
 * - `image/jpg`, `image/pjpeg`, `audio/m4a`, `audio/x-mp4`: names some senders declare.
 */
export const TPC_MIME_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  "image/jpg": "image/jpeg",
  "image/pjpeg": "image/jpeg",
  "audio/opus": "audio/ogg",
  "audio/x-m4a": "audio/mp4",
  "audio/m4a": "audio/mp4",
  "audio/x-mp4": "audio/mp4",
  "video/x-m4v": "video/mp4",
});

/** The mime types a TPC/1 receiver MUST accept, per media kind (§5); `file` takes any. */
export const TPC_MEDIA_MIMES = Object.freeze({
  image: ["image/jpeg", "image/png"],
  video: ["video/mp4"],
  voice: ["audio/ogg", "audio/mp4"],
}) satisfies Readonly<Record<"image" | "video" | "voice", readonly string[]>>;

/** Lowercase, drop parameters and whitespace, and map aliases to the TPC/1 name. */
export function normalizeMime(mime: string): string {
  const bare = mime.split(";")[0]!.trim().toLowerCase();
  return TPC_MIME_ALIASES[bare] ?? bare;
}

/** MP4-family answers of file-type whose tracks decide between audio/mp4 and video/mp4. */
const ISO_MP4_MIMES = new Set(["video/mp4", "audio/mp4"]);

/**
 * The MIME type of the bytes, in TPC/1 names (see TPC_MIME_ALIASES), or undefined when file-type
 * recognises nothing (plain data, text). Non-media types come back as file-type names them
 * (`application/pdf`, `application/x-elf`, …), without parameters.
 */
export async function sniffMime(bytes: Uint8Array): Promise<string | undefined> {
  const result = await fileTypeFromBuffer(bytes);
  if (!result) return undefined;
  const mime = normalizeMime(result.mime);
  if (ISO_MP4_MIMES.has(mime)) {
    const tracks = mp4Tracks(bytes);
    if (tracks?.some((t) => t.handler === "vide")) return "video/mp4";
    if (tracks?.some((t) => t.handler === "soun")) return "audio/mp4";
  }
  return mime;
}

/**
 * TPC/1 §5: for image, video and voice the declared mime must match the bytes. Both sides are
 * normalised first (case, parameters, TPC_MIME_ALIASES), so `audio/mp4` declared for a voice note
 * matches an `.m4a` file (file-type's `audio/x-m4a`) and `audio/ogg` matches Ogg/Opus
 * (`audio/ogg; codecs=opus`). An undefined or empty sniffed type (unrecognised bytes) never matches.
 * The `file` kind is not checked against its bytes; callers skip the call for it.
 */
export function mimeMatches(declared: string, sniffed: string | undefined): boolean {
  if (!sniffed || !declared) return false;
  return normalizeMime(declared) === normalizeMime(sniffed);
}

// ---------------------------------------------------------------------------------------------
// Duration and dimensions

export interface MediaProbe {
  /** whole milliseconds, for audio and video */
  durationMs?: number;
  /** pixels, for images and video (as stored: JPEG EXIF orientation is not applied) */
  width?: number;
  height?: number;
}

/** The bytes cannot be read as the media type they were probed as (corrupt, truncated, wrong type). */
export class MediaProbeError extends Error {
  readonly mime: string;
  constructor(mime: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MediaProbeError";
    this.mime = mime;
  }
}

/**
 * Measure media with real parsers: width/height for `image/*`, duration for `audio/*`, and both for
 * `video/*` (the first video track's coded size, as ffprobe reports it; read from ISO BMFF, so MP4
 * and its relatives only). Any other type gives `{}`.
 * Throws MediaProbeError when the bytes cannot be parsed for the measurement their mime asks for,
 * e.g. a truncated MP4 whose `moov` box was cut off.
 */
export async function probeMedia(bytes: Uint8Array, mime: string): Promise<MediaProbe> {
  const type = normalizeMime(mime);
  const major = type.split("/")[0];
  if (major === "image") {
    let size: { width: number; height: number };
    try {
      size = imageSize(bytes);
    } catch (err) {
      throw new MediaProbeError(type, `cannot read the dimensions of ${type} bytes: ${(err as Error).message}`, { cause: err });
    }
    return { width: size.width, height: size.height };
  }
  if (major !== "audio" && major !== "video") return {};
  const result: MediaProbe = { durationMs: await probeDurationMs(bytes, type) };
  if (major === "video") {
    const video = mp4Tracks(bytes)?.find((t) => t.handler === "vide" && t.width && t.height);
    if (!video) throw new MediaProbeError(type, `no video track with dimensions in the ${type} bytes`);
    result.width = video.width;
    result.height = video.height;
  }
  return result;
}

/**
 * music-metadata, loaded with a real dynamic import(). A static import works under the CLI (native
 * ESM through tsx's ESM hook), but mocha loads .ts through require(), where tsx rewrites ESM to CJS
 * and music-metadata's `import ContentType from "content-type"` (a CJS module flagged __esModule)
 * gets an undefined default: every mime lookup then fails with "Guessed MIME-type not supported".
 */
let musicMetadata: Promise<typeof import("music-metadata")> | undefined;
function loadMusicMetadata(): Promise<typeof import("music-metadata")> {
  musicMetadata ??= import("music-metadata");
  return musicMetadata;
}

async function probeDurationMs(bytes: Uint8Array, mime: string): Promise<number> {
  let seconds: number | undefined;
  try {
    const { parseBuffer } = await loadMusicMetadata();
    const metadata = await parseBuffer(bytes, { mimeType: mime, size: bytes.length }, { duration: true, skipCovers: true });
    seconds = metadata.format.duration;
  } catch (err) {
    throw new MediaProbeError(mime, `cannot read the duration of ${mime} bytes: ${(err as Error).message}`, { cause: err });
  }
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    throw new MediaProbeError(mime, `the ${mime} bytes carry no duration`);
  }
  return Math.round(seconds * 1000);
}

// ---------------------------------------------------------------------------------------------
// ISO BMFF (MP4) track walker: moov/trak/mdia/hdlr for the track type, and the visual sample entry
// in moov/trak/mdia/minf/stbl/stsd for the coded width/height (tkhd's presentation size as fallback).

interface Mp4Track {
  handler: string;
  width?: number;
  height?: number;
}

interface Box {
  type: string;
  /** payload start (after the header) and end, absolute offsets */
  start: number;
  end: number;
}

function* boxes(bytes: Uint8Array, from: number, to: number): Generator<Box> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = from;
  while (pos + 8 <= to) {
    let size = view.getUint32(pos);
    const type = String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!, bytes[pos + 6]!, bytes[pos + 7]!);
    let header = 8;
    if (size === 1) {
      if (pos + 16 > to) return;
      const large = view.getBigUint64(pos + 8);
      if (large > BigInt(Number.MAX_SAFE_INTEGER)) return;
      size = Number(large);
      header = 16;
    } else if (size === 0) {
      size = to - pos; // to the end of the enclosing box or file
    }
    if (size < header || pos + size > to) return; // truncated or corrupt: stop, report what was read
    yield { type, start: pos + header, end: pos + size };
    pos += size;
  }
}

function child(bytes: Uint8Array, parent: Box, type: string): Box | undefined {
  for (const box of boxes(bytes, parent.start, parent.end)) if (box.type === type) return box;
  return undefined;
}

/** The tracks of an ISO BMFF file, or undefined when it has no complete `moov` box. */
function mp4Tracks(bytes: Uint8Array): Mp4Track[] | undefined {
  let moov: Box | undefined;
  for (const box of boxes(bytes, 0, bytes.length)) if (box.type === "moov") moov = box;
  if (!moov) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tracks: Mp4Track[] = [];
  for (const trak of boxes(bytes, moov.start, moov.end)) {
    if (trak.type !== "trak") continue;
    const mdia = child(bytes, trak, "mdia");
    const hdlr = mdia && child(bytes, mdia, "hdlr");
    // hdlr: version/flags (4), pre_defined (4), handler_type (4)
    if (!hdlr || hdlr.start + 12 > hdlr.end) continue;
    const handler = String.fromCharCode(...bytes.subarray(hdlr.start + 8, hdlr.start + 12));
    const track: Mp4Track = { handler };
    if (handler === "vide") {
      const minf = child(bytes, mdia, "minf");
      const stbl = minf && child(bytes, minf, "stbl");
      const stsd = stbl && child(bytes, stbl, "stsd");
      // stsd: version/flags (4), entry_count (4), then sample entries; a VisualSampleEntry has
      // 6 reserved + 2 data_reference_index + 16 pre_defined/reserved, then width (2) and height (2).
      const entry = stsd && boxes(bytes, stsd.start + 8, stsd.end).next().value;
      if (entry && entry.start + 28 <= entry.end) {
        track.width = view.getUint16(entry.start + 24);
        track.height = view.getUint16(entry.start + 26);
      }
      if (!track.width || !track.height) {
        // tkhd: width and height are the last two 16.16 fixed-point fields
        const tkhd = child(bytes, trak, "tkhd");
        if (tkhd && tkhd.end - tkhd.start >= 84) {
          track.width = Math.round(view.getUint32(tkhd.end - 8) / 65536);
          track.height = Math.round(view.getUint32(tkhd.end - 4) / 65536);
        }
      }
    }
    tracks.push(track);
  }
  return tracks;
}

// ---------------------------------------------------------------------------------------------
// Fixtures (fixtures/media/, described by its index.json and README.md)

export type MediaKind = "image" | "video" | "voice" | "file";

/** An entry of fixtures/media/index.json. */
export interface FixtureMeta {
  /** the fixture name, the key in index.json (`jpeg`, `png-as-jpeg`, …) */
  name: string;
  /** file name inside fixtures/media/ */
  file: string;
  kind: MediaKind;
  /** the mime a sender declares; for the deliberately wrong fixtures the lying one */
  mime: string;
  size: number;
  /** lowercase hex SHA-256 of the file */
  sha256: string;
  /**
   * What a sender declares, measured with ffprobe when the fixtures were made. For
   * `png-as-jpeg` the PNG's size; for `truncated-mp4` the whole video's values; for
   * `exe-as-jpeg` an invented 320×240 (nothing to measure), so that the document passes the schema.
   */
  width?: number;
  height?: number;
  durationMs?: number;
  /** why a deliberately wrong fixture is wrong */
  note?: string;
}

/** Every fixture name in index.json: the seven good ones, then the deliberately wrong ones. */
export const FIXTURE_NAMES: readonly string[] = Object.freeze([
  "jpeg", "png", "mp4", "ogg", "m4a", "pdf", "bin",
  "png-as-jpeg", "exe-as-jpeg", "truncated-mp4",
]);

/** The fixtures a reflector's `send` hook offers (TPC/1 §10a): the good ones only. */
export const SEND_FIXTURE_NAMES: readonly string[] = Object.freeze(["jpeg", "png", "mp4", "ogg", "m4a", "pdf", "bin"]);

/** The deliberately wrong fixtures: declared mime or content that a receiver must refuse. */
export const WRONG_FIXTURE_NAMES: readonly string[] = Object.freeze(["png-as-jpeg", "exe-as-jpeg", "truncated-mp4"]);

export const FIXTURE_DIR = new URL("../../fixtures/media/", import.meta.url);

let index: Readonly<Record<string, FixtureMeta>> | undefined;

function fixtureIndex(): Readonly<Record<string, FixtureMeta>> {
  if (index) return index;
  const raw = JSON.parse(readFileSync(new URL("index.json", FIXTURE_DIR), "utf8")) as Record<string, Omit<FixtureMeta, "name">>;
  const entries: Record<string, FixtureMeta> = {};
  for (const name of FIXTURE_NAMES) {
    const entry = raw[name];
    if (!entry) throw new Error(`fixtures/media/index.json has no entry for fixture ${name}`);
    entries[name] = Object.freeze({ ...entry, name });
  }
  index = Object.freeze(entries);
  return index;
}

/** The index.json entry of a fixture; throws for an unknown name, listing the known ones. */
export function fixtureMeta(name: string): FixtureMeta {
  if (!FIXTURE_NAMES.includes(name)) {
    throw new Error(`unknown media fixture ${JSON.stringify(name)}; known fixtures: ${FIXTURE_NAMES.join(", ")}`);
  }
  return fixtureIndex()[name]!;
}

/**
 * A fixture's bytes (a fresh Buffer each call: callers may tamper with it) and its index.json entry.
 * Throws for an unknown name (listing the known ones) and when the file's size or SHA-256 differ
 * from index.json (a fixture changed without re-running fixtures/media/make.sh).
 */
export function loadFixture(name: string): { bytes: Buffer; meta: FixtureMeta } {
  const meta = fixtureMeta(name);
  const bytes = readFileSync(new URL(meta.file, FIXTURE_DIR));
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  if (bytes.length !== meta.size || sha256 !== meta.sha256) {
    throw new Error(`fixture ${name} (${meta.file}) is ${bytes.length} bytes with sha256 ${sha256}, index.json says ${meta.size} bytes with ${meta.sha256}`);
  }
  return { bytes, meta };
}
