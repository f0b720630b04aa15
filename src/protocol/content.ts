// The TPC/1 content document (the decrypted OMEMO payload) and the reflector's `reflect` document.
import { Ajv } from "ajv";
import type { ErrorObject, ValidateFunction } from "ajv";
import contentSchema from "./content.schema.json" with { type: "json" };
import { sha256Hex } from "./media-crypto.ts";

export const CONTENT_KINDS = ["text", "image", "video", "voice", "file"] as const;
export type ContentKind = (typeof CONTENT_KINDS)[number];

/** Kinds reserved by TPC/1 v1 and the `unsupported` feature name each one is refused with. */
export const UNSUPPORTED_KINDS: Readonly<Record<string, string>> = { sticker: "stickers", status: "status" };

export type MediaDescriptor = {
  url: string;
  mime: string;
  /** plaintext size in bytes (the blob is size + 16) */
  size: number;
  /** lowercase hex SHA-256 of the plaintext */
  sha256: string;
  /** base64 of the 32-byte AES-256-GCM key */
  key: string;
  /** base64 of the 12-byte GCM IV */
  iv: string;
  name?: string;
  durationMs?: number;
  width?: number;
  height?: number;
};

/**
 * A content document. `kind` is one of CONTENT_KINDS once judgeContent() or the schema accepted it;
 * the type stays open because parsed peer documents (and test documents) can carry any kind.
 */
export type ContentDocument = {
  v: 1;
  id: string;
  sentAt: string;
  kind: ContentKind | (string & {});
  text?: string;
  media?: MediaDescriptor;
};

export type ReflectDocument = {
  v: 1;
  kind: "reflect";
  id: string;
  sentAt: string;
  ref: string;
  sha256: string;
  mediaSha256?: string;
  mediaMime?: string;
};

export type Validation = { ok: true } | { ok: false; errors: string[] };

export type ContentJudgement =
  | { accept: true; doc: ContentDocument }
  | {
    accept: false;
    condition: "feature-not-implemented" | "bad-request";
    app: { name: "unsupported" | "invalid-content"; attrs: Record<string, string> };
    reason: string;
  };

// ---------------------------------------------------------------- schema

const ajv = new Ajv({ allErrors: true, verbose: true });
ajv.addSchema(contentSchema);
const validateContent = ajv.getSchema(contentSchema.$id) as ValidateFunction;
const validateReflect = ajv.getSchema(`${contentSchema.$id}#/definitions/reflectDocument`) as ValidateFunction;

/** One `path: message` line per ajv error, in words a partner's developer can act on. */
function describeErrors(errors: ErrorObject[] | null | undefined): string[] {
  const lines: string[] = [];
  for (const e of errors ?? []) {
    if (e.keyword === "if") continue; // the failing "then" branch is reported on its own
    let path = e.instancePath;
    let message = e.message ?? "is invalid";
    const description = (e.parentSchema as { description?: unknown } | undefined)?.description;
    switch (e.keyword) {
      case "required":
        path += `/${String(e.params.missingProperty)}`;
        message = "is required";
        break;
      case "false schema":
        message = path === "/expiresAfterS"
          ? "is reserved (disappearing messages are not supported in TPC/1 v1)"
          : "is not allowed";
        break;
      case "const":
        message = `must be ${JSON.stringify(e.params.allowedValue)}`;
        break;
      case "enum":
        message = `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
        break;
      case "pattern":
      case "minLength":
        if (typeof description === "string") message = `must be ${description}`;
        break;
    }
    lines.push(`${path || "(document)"}: ${message}`);
  }
  return [...new Set(lines)];
}

/** Check a parsed document against the TPC/1 content schema; every error is listed. */
export function validateContentDocument(doc: unknown): Validation {
  if (validateContent(doc)) return { ok: true };
  return { ok: false, errors: describeErrors(validateContent.errors) };
}

/** Check a parsed `reflect` document (TPC/1 §8, §10a). */
export function validateReflectDocument(doc: unknown): Validation {
  if (validateReflect(doc)) return { ok: true };
  return { ok: false, errors: describeErrors(validateReflect.errors) };
}

// ---------------------------------------------------------------- receiver decision

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

function unsupported(feature: string, reason: string): ContentJudgement {
  return { accept: false, condition: "feature-not-implemented", app: { name: "unsupported", attrs: { feature } }, reason };
}

function invalid(reason: string): ContentJudgement {
  return { accept: false, condition: "bad-request", app: { name: "invalid-content", attrs: {} }, reason };
}

/**
 * What a TPC/1 receiver does with a decrypted payload, in the order of TPC/1 §10a up to (not
 * including) the media checks: JSON object → kind is a string → sticker/status → unknown kind →
 * expiresAfterS → JSON Schema → id equals the stanza id.
 */
export function judgeContent(bytes: Uint8Array, stanzaId: string): ContentJudgement {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return invalid("the payload is not valid UTF-8");
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return invalid(`the payload is not JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    return invalid(`the content document is ${describeType(doc)}, expected a JSON object`);
  }
  const record = doc as Record<string, unknown>;
  const kind = record.kind;
  if (typeof kind !== "string") {
    return invalid(kind === undefined ? "the content document has no kind" : `kind is ${describeType(kind)}, expected a string`);
  }
  const reserved = Object.hasOwn(UNSUPPORTED_KINDS, kind) ? UNSUPPORTED_KINDS[kind] : undefined;
  if (reserved) return unsupported(reserved, `kind '${kind}' is not supported in TPC/1 v1`);
  if (!(CONTENT_KINDS as readonly string[]).includes(kind)) return unsupported("unknown", `kind '${kind}' is unknown to TPC/1 v1`);
  if (Object.hasOwn(record, "expiresAfterS")) {
    return unsupported("disappearing", "expiresAfterS (disappearing messages) is not supported in TPC/1 v1");
  }
  const verdict = validateContentDocument(doc);
  if (!verdict.ok) return invalid(`the content document does not match the TPC/1 schema: ${verdict.errors.join("; ")}`);
  if (record.id !== stanzaId) {
    return invalid(`the content document id '${String(record.id)}' differs from the stanza id '${stanzaId}'`);
  }
  return { accept: true, doc: doc as ContentDocument };
}

// ---------------------------------------------------------------- builders

/** A content document; kind is a plain string so tests can build reserved or unknown kinds too. */
export function makeContentDocument(input: {
  id: string; kind: string; text?: string; media?: MediaDescriptor; sentAt?: string;
}): ContentDocument {
  const doc: ContentDocument = {
    v: 1, id: input.id, sentAt: input.sentAt ?? new Date().toISOString(), kind: input.kind,
  };
  if (input.text !== undefined) doc.text = input.text;
  if (input.media !== undefined) doc.media = input.media;
  return doc;
}

/** The reflector's answer to an accepted message: the hash of the decrypted payload bytes as received. */
export function makeReflectDocument(input: {
  id: string; ref: string; payload: Uint8Array; mediaSha256?: string; mediaMime?: string; sentAt?: string;
}): ReflectDocument {
  const doc: ReflectDocument = {
    v: 1, kind: "reflect", id: input.id, sentAt: input.sentAt ?? new Date().toISOString(), ref: input.ref, sha256: sha256Hex(input.payload),
  };
  if (input.mediaSha256 !== undefined) doc.mediaSha256 = input.mediaSha256;
  if (input.mediaMime !== undefined) doc.mediaMime = input.mediaMime;
  return doc;
}
