import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  judgeContent, makeContentDocument, makeReflectDocument, validateContentDocument, validateReflectDocument,
} from "../src/protocol/content.ts";
import type { ContentJudgement, MediaDescriptor } from "../src/protocol/content.ts";

const ID = "msg-1";
const SENT_AT = "2025-06-01T10:00:00Z";
const SHA = "a".repeat(64);
const KEY = Buffer.alloc(32, 7).toString("base64");
const IV = Buffer.alloc(12, 9).toString("base64");

const media = (extra: Partial<MediaDescriptor> = {}): MediaDescriptor => ({
  url: "https://upload.partner.example/abc/photo.jpg", mime: "image/jpeg", size: 1234, sha256: SHA, key: KEY, iv: IV, ...extra,
});

const docs: Record<string, Record<string, unknown>> = {
  text: { v: 1, id: ID, sentAt: SENT_AT, kind: "text", text: "hello" },
  image: { v: 1, id: ID, sentAt: SENT_AT, kind: "image", text: "caption", media: media({ width: 640, height: 480 }) },
  video: { v: 1, id: ID, sentAt: SENT_AT, kind: "video", media: media({ mime: "video/mp4", width: 640, height: 480, durationMs: 3000 }) },
  voice: { v: 1, id: ID, sentAt: SENT_AT, kind: "voice", media: media({ mime: "audio/ogg; codecs=opus", durationMs: 2500 }) },
  file: { v: 1, id: ID, sentAt: SENT_AT, kind: "file", media: media({ mime: "application/pdf", name: "report.pdf" }) },
};

const bytes = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value), "utf8");
const withFields = (base: Record<string, unknown>, fields: Record<string, unknown>) => {
  const doc: Record<string, unknown> = structuredClone(base);
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) delete doc[k];
    else doc[k] = v;
  }
  return doc;
};
const withMedia = (base: Record<string, unknown>, fields: Record<string, unknown>) =>
  withFields(base, { media: withFields(base.media as Record<string, unknown>, fields) });

function outcome(j: ContentJudgement): string {
  if (j.accept) return "accept";
  const attrs = Object.entries(j.app.attrs).map(([k, v]) => ` ${k}=${v}`).join("");
  return `${j.condition} ${j.app.name}${attrs}`;
}

describe("content document: receiver decision (TPC/1 §10a order)", () => {
  const INVALID = "bad-request invalid-content";
  const table: [string, Uint8Array, string][] = [
    ["invalid UTF-8", Buffer.from([0x7b, 0xff, 0x7d]), INVALID],
    ["not JSON", bytes("{kind: text}"), INVALID],
    ["a JSON array", bytes([docs.text]), INVALID],
    ["a JSON string", bytes('"text"'), INVALID],
    ["JSON null", bytes("null"), INVALID],
    ["no kind", bytes(withFields(docs.text!, { kind: undefined })), INVALID],
    ["kind is a number", bytes(withFields(docs.text!, { kind: 1 })), INVALID],
    ["sticker", bytes(withFields(docs.text!, { kind: "sticker" })), "feature-not-implemented unsupported feature=stickers"],
    ["status", bytes(withFields(docs.text!, { kind: "status" })), "feature-not-implemented unsupported feature=status"],
    ["sticker before schema and expiresAfterS", bytes({ kind: "sticker", v: 9, expiresAfterS: 60 }), "feature-not-implemented unsupported feature=stickers"],
    ["status before schema", bytes({ kind: "status" }), "feature-not-implemented unsupported feature=status"],
    ["unknown kind", bytes(withFields(docs.text!, { kind: "poll" })), "feature-not-implemented unsupported feature=unknown"],
    ["reflect from a sender is an unknown kind", bytes(withFields(docs.text!, { kind: "reflect" })), "feature-not-implemented unsupported feature=unknown"],
    ["kind is case-sensitive", bytes(withFields(docs.text!, { kind: "Text" })), "feature-not-implemented unsupported feature=unknown"],
    ["unknown kind before expiresAfterS", bytes(withFields(docs.text!, { kind: "poll", expiresAfterS: 60 })), "feature-not-implemented unsupported feature=unknown"],
    ["expiresAfterS on text", bytes(withFields(docs.text!, { expiresAfterS: 86400 })), "feature-not-implemented unsupported feature=disappearing"],
    ["expiresAfterS on a file", bytes(withFields(docs.file!, { expiresAfterS: 60 })), "feature-not-implemented unsupported feature=disappearing"],
    ["expiresAfterS: null still counts as present", bytes(withFields(docs.text!, { expiresAfterS: null })), "feature-not-implemented unsupported feature=disappearing"],
    ["expiresAfterS before schema (v 2)", bytes(withFields(docs.text!, { v: 2, expiresAfterS: 5 })), "feature-not-implemented unsupported feature=disappearing"],
    ["v 2", bytes(withFields(docs.text!, { v: 2 })), INVALID],
    ["v missing", bytes(withFields(docs.text!, { v: undefined })), INVALID],
    ["sentAt missing", bytes(withFields(docs.text!, { sentAt: undefined })), INVALID],
    ["sentAt not UTC", bytes(withFields(docs.text!, { sentAt: "2025-06-01T12:00:00+02:00" })), INVALID],
    ["text kind without text", bytes(withFields(docs.text!, { text: undefined })), INVALID],
    ["text kind with empty text", bytes(withFields(docs.text!, { text: "" })), INVALID],
    ["text is not a string", bytes(withFields(docs.text!, { text: 5 })), INVALID],
    ["image without media", bytes(withFields(docs.image!, { media: undefined })), INVALID],
    ["image without width", bytes(withMedia(docs.image!, { width: undefined })), INVALID],
    ["video without durationMs", bytes(withMedia(docs.video!, { durationMs: undefined })), INVALID],
    ["voice without durationMs", bytes(withMedia(docs.voice!, { durationMs: undefined })), INVALID],
    ["file without name", bytes(withMedia(docs.file!, { name: undefined })), INVALID],
    ["media key of 16 bytes", bytes(withMedia(docs.file!, { key: Buffer.alloc(16).toString("base64") })), INVALID],
    ["media iv of 16 bytes", bytes(withMedia(docs.file!, { iv: Buffer.alloc(16).toString("base64") })), INVALID],
    ["media sha256 upper case", bytes(withMedia(docs.file!, { sha256: "A".repeat(64) })), INVALID],
    ["media url not http(s)", bytes(withMedia(docs.file!, { url: "ftp://files.example/x" })), INVALID],
    ["media size negative", bytes(withMedia(docs.file!, { size: -1 })), INVALID],
    ["media size not an integer", bytes(withMedia(docs.file!, { size: 1.5 })), INVALID],
    ["schema before id (v 2 and other id)", bytes(withFields(docs.text!, { v: 2, id: "other" })), INVALID],
    ["id differs from the stanza id", bytes(withFields(docs.text!, { id: "other" })), INVALID],
    ["valid text", bytes(docs.text), "accept"],
    ["valid image", bytes(docs.image), "accept"],
    ["valid video", bytes(docs.video), "accept"],
    ["valid voice", bytes(docs.voice), "accept"],
    ["valid file", bytes(docs.file), "accept"],
    ["unknown fields are ignored", bytes(withMedia(withFields(docs.image!, { mood: "sunny", reactions: [1] }), { exif: {} })), "accept"],
    ["RFC 3339 with fraction and +00:00", bytes(withFields(docs.text!, { sentAt: "2025-06-01T10:00:00.123+00:00" })), "accept"],
  ];
  for (const [name, payload, expected] of table) {
    it(`${name} → ${expected}`, () => {
      assert.equal(outcome(judgeContent(payload, ID)), expected);
    });
  }

  it("names the failure in the reason, without echoing the payload", () => {
    const mismatch = judgeContent(bytes(withFields(docs.text!, { id: "other", text: "secret words" })), ID);
    assert.equal(mismatch.accept, false);
    assert.match(mismatch.accept ? "" : mismatch.reason, /id 'other' differs from the stanza id 'msg-1'/);
    assert.doesNotMatch(mismatch.accept ? "" : mismatch.reason, /secret words/);
    const schema = judgeContent(bytes(withFields(docs.text!, { v: 2, text: undefined })), ID);
    assert.match(schema.accept ? "" : schema.reason, /\/v: must be 1/);
    assert.match(schema.accept ? "" : schema.reason, /\/text: is required/);
  });

  it("returns the parsed document on accept", () => {
    const verdict = judgeContent(bytes(docs.image), ID);
    assert.ok(verdict.accept);
    assert.deepEqual(verdict.doc, docs.image);
  });
});

describe("content document: schema validation", () => {
  it("lists every error as `path: message`", () => {
    const doc = withMedia(withFields(docs.image!, { v: 3, sentAt: "yesterday" }), { key: "short", width: undefined });
    const verdict = validateContentDocument(doc);
    assert.equal(verdict.ok, false);
    const errors = verdict.ok ? [] : verdict.errors;
    assert.deepEqual([...errors].sort(), [
      "/media/key: must be base64 of 32 bytes (AES-256 key)",
      "/media/width: is required",
      "/sentAt: must be an RFC 3339 timestamp in UTC, e.g. 2025-01-31T12:00:00Z",
      "/v: must be 1",
    ]);
  });

  it("rejects a non-object and reports a reserved expiresAfterS", () => {
    assert.deepEqual(validateContentDocument([]), { ok: false, errors: ["(document): must be object"] });
    const verdict = validateContentDocument(withFields(docs.text!, { expiresAfterS: 10 }));
    assert.deepEqual(verdict, { ok: false, errors: ["/expiresAfterS: is reserved (disappearing messages are not supported in TPC/1 v1)"] });
  });

  it("accepts base64 keys only when they decode to exactly 32 bytes", () => {
    // 44 characters but the last data character carries non-zero padding bits: not canonical base64 of 32 bytes
    const nonCanonical = `${KEY.slice(0, 42)}B=`;
    assert.equal(validateContentDocument(withMedia(docs.file!, { key: nonCanonical })).ok, false);
    for (let i = 0; i < 20; i++) {
      const key = randomBytes(32).toString("base64");
      assert.equal(validateContentDocument(withMedia(docs.file!, { key })).ok, true, key);
    }
  });

  it("builds documents that validate", () => {
    const doc = makeContentDocument({ id: "x1", kind: "text", text: "hi" });
    assert.deepEqual(Object.keys(doc).sort(), ["id", "kind", "sentAt", "text", "v"]);
    assert.equal(validateContentDocument(doc).ok, true);
    const file = makeContentDocument({ id: "x2", kind: "file", media: media({ name: "a.bin" }), sentAt: SENT_AT });
    assert.equal(file.sentAt, SENT_AT);
    assert.equal(judgeContent(bytes(file), "x2").accept, true);
    assert.equal(outcome(judgeContent(bytes(makeContentDocument({ id: "x3", kind: "sticker" })), "x3")), "feature-not-implemented unsupported feature=stickers");
  });
});

describe("reflect document", () => {
  it("hashes the payload bytes (lowercase hex SHA-256) and validates", () => {
    const doc = makeReflectDocument({ id: "r1", ref: "m1", payload: Buffer.from("abc") });
    assert.equal(doc.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert.equal(doc.kind, "reflect");
    assert.equal(doc.ref, "m1");
    assert.equal("mediaSha256" in doc, false);
    assert.deepEqual(validateReflectDocument(doc), { ok: true });
    const withMediaDoc = makeReflectDocument({ id: "r2", ref: "m2", payload: Buffer.from("{}"), mediaSha256: SHA, mediaMime: "image/png" });
    assert.equal(withMediaDoc.mediaMime, "image/png");
    assert.deepEqual(validateReflectDocument(withMediaDoc), { ok: true });
    assert.deepEqual(validateReflectDocument({ ...withMediaDoc, note: "extra fields are ignored" }), { ok: true });
  });

  it("reports what is wrong with a bad reflect document", () => {
    const good = makeReflectDocument({ id: "r1", ref: "m1", payload: Buffer.from("abc") });
    const verdict = validateReflectDocument({ ...good, kind: "text", sha256: good.sha256.toUpperCase(), ref: undefined, mediaMime: "jpeg" });
    assert.equal(verdict.ok, false);
    assert.deepEqual([...(verdict.ok ? [] : verdict.errors)].sort(), [
      '/kind: must be "reflect"',
      "/mediaMime: must be a MIME type such as image/jpeg",
      "/ref: is required",
      "/sha256: must be 64 lowercase hex digits (SHA-256)",
    ]);
  });
});
