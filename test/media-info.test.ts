import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import {
  FIXTURE_DIR, FIXTURE_NAMES, MediaProbeError, SEND_FIXTURE_NAMES, TPC_MEDIA_MIMES, WRONG_FIXTURE_NAMES,
  loadFixture, mimeMatches, normalizeMime, probeMedia, sniffMime,
} from "../src/protocol/media-info.ts";

const index = JSON.parse(readFileSync(new URL("index.json", FIXTURE_DIR), "utf8")) as Record<string, Record<string, unknown>>;

/** What each fixture's bytes sniff as, in TPC/1 names. */
const EXPECTED_SNIFF: Record<string, string | undefined> = {
  jpeg: "image/jpeg",
  png: "image/png",
  mp4: "video/mp4",
  ogg: "audio/ogg",
  m4a: "audio/mp4",
  pdf: "application/pdf",
  bin: undefined, // pseudo-random bytes: nothing recognisable
  "png-as-jpeg": "image/png",
  "exe-as-jpeg": "application/x-elf",
  // The ftyp box survives the cut, so the bytes still sniff as MP4: only a probe (no moov) tells.
  "truncated-mp4": "video/mp4",
};

function within10Percent(actual: number | undefined, expected: unknown, what: string): void {
  assert.equal(typeof expected, "number", `index.json has ${what}`);
  assert.equal(typeof actual, "number", `probe measured ${what}`);
  const e = expected as number;
  assert.ok(Math.abs(actual! - e) <= e * 0.1, `${what}: probed ${actual}, index.json ${e}`);
}

describe("media fixtures (fixtures/media/)", () => {
  it("index.json lists exactly FIXTURE_NAMES, with the TPC/1 declared mimes and kinds", () => {
    assert.deepEqual(Object.keys(index).sort(), [...FIXTURE_NAMES].sort());
    assert.deepEqual([...SEND_FIXTURE_NAMES, ...WRONG_FIXTURE_NAMES], [...FIXTURE_NAMES]);
    const declared = Object.fromEntries(FIXTURE_NAMES.map((n) => [n, `${index[n]!.kind} ${index[n]!.mime}`]));
    assert.deepEqual(declared, {
      jpeg: "image image/jpeg", png: "image image/png", mp4: "video video/mp4", ogg: "voice audio/ogg",
      m4a: "voice audio/mp4", pdf: "file application/pdf", bin: "file application/octet-stream",
      "png-as-jpeg": "image image/jpeg", "exe-as-jpeg": "image image/jpeg", "truncated-mp4": "video video/mp4",
    });
  });

  it("index.json's size and sha256 match the files, which are small", () => {
    let total = 0;
    for (const name of FIXTURE_NAMES) {
      const meta = index[name]!;
      const bytes = readFileSync(new URL(meta.file as string, FIXTURE_DIR));
      assert.equal(bytes.length, meta.size, `${name} size`);
      assert.equal(createHash("sha256").update(bytes).digest("hex"), meta.sha256, `${name} sha256`);
      assert.ok(bytes.length < 200 * 1024, `${name} is under 200 KB`);
      total += bytes.length;
    }
    const all = readdirSync(FIXTURE_DIR).reduce((sum, f) => sum + statSync(new URL(f, FIXTURE_DIR)).size, 0);
    assert.ok(all < 1024 * 1024, `fixtures/media/ totals ${all} bytes, under 1 MB`);
    assert.ok(total <= all);
  });

  it("declares the metadata the schema needs for every image, video and voice fixture", () => {
    for (const name of FIXTURE_NAMES) {
      const meta = index[name]!;
      if (meta.kind === "image" || meta.kind === "video") {
        assert.ok(Number.isInteger(meta.width) && Number.isInteger(meta.height), `${name} width/height`);
      }
      if (meta.kind === "voice" || meta.kind === "video") assert.ok(Number.isInteger(meta.durationMs), `${name} durationMs`);
    }
  });

  it("loadFixture returns the bytes and the index entry, a fresh copy each time", () => {
    const a = loadFixture("jpeg");
    assert.equal(a.meta.name, "jpeg");
    assert.equal(a.meta.file, "photo.jpg");
    assert.equal(a.bytes.length, a.meta.size);
    a.bytes[0] = 0;
    assert.equal(loadFixture("jpeg").bytes[0], 0xff, "tampering with one copy leaves the next intact");
  });

  it("loadFixture refuses an unknown name and lists the known ones", () => {
    assert.throws(() => loadFixture("gif"), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /unknown media fixture "gif"/);
      for (const name of FIXTURE_NAMES) assert.ok(err.message.includes(name), `lists ${name}`);
      return true;
    });
  });
});

describe("sniffMime", () => {
  for (const name of FIXTURE_NAMES) {
    it(`${name} sniffs as ${EXPECTED_SNIFF[name] ?? "nothing"}`, async () => {
      const { bytes, meta } = loadFixture(name);
      const sniffed = await sniffMime(bytes);
      assert.equal(sniffed, EXPECTED_SNIFF[name]);
      if (SEND_FIXTURE_NAMES.includes(name) && meta.kind !== "file") {
        assert.ok(mimeMatches(meta.mime, sniffed), `${name}: declared ${meta.mime} matches the bytes`);
        assert.ok((TPC_MEDIA_MIMES[meta.kind] as readonly string[]).includes(sniffed!), `${sniffed} is a TPC/1 ${meta.kind} mime`);
      }
    });
  }

  it("never takes a lying fixture for a JPEG", async () => {
    for (const name of ["png-as-jpeg", "exe-as-jpeg"]) {
      const { bytes, meta } = loadFixture(name);
      const sniffed = await sniffMime(bytes);
      assert.notEqual(sniffed, "image/jpeg");
      assert.equal(mimeMatches(meta.mime, sniffed), false, `${name} is a media-mismatch`);
    }
  });

  it("says nothing for empty or unrecognisable bytes", async () => {
    assert.equal(await sniffMime(new Uint8Array(0)), undefined);
    assert.equal(await sniffMime(Buffer.from("just some text\n")), undefined);
  });

  it("calls an audio-only MP4 with a generic brand audio/mp4, by its tracks", async () => {
    // voice.m4a with its major brand rewritten from 'M4A ' to 'isom' (as Android recorders write it):
    // file-type alone says video/mp4; the track walk finds only a sound track.
    const bytes = Buffer.from(loadFixture("m4a").bytes);
    assert.equal(bytes.toString("latin1", 4, 12), "ftypM4A ");
    bytes.write("isom", 8, "latin1");
    assert.equal(await sniffMime(bytes), "audio/mp4");
  });
});

describe("mimeMatches (TPC/1 §5)", () => {
  it("matches the TPC/1 names and their aliases, ignoring case and parameters", () => {
    assert.ok(mimeMatches("audio/mp4", "audio/x-m4a"), "a voice note declared audio/mp4 matches an m4a container");
    assert.ok(mimeMatches("audio/ogg", "audio/ogg; codecs=opus"));
    assert.ok(mimeMatches("audio/ogg", "audio/opus"));
    assert.ok(mimeMatches("Image/JPEG", "image/jpeg"));
    assert.ok(mimeMatches("image/jpg", "image/jpeg"));
    assert.equal(normalizeMime("Audio/Ogg ; codecs=opus"), "audio/ogg");
  });

  it("refuses a different type, and unrecognised bytes", () => {
    assert.equal(mimeMatches("image/jpeg", "image/png"), false);
    assert.equal(mimeMatches("image/jpeg", "application/x-elf"), false);
    assert.equal(mimeMatches("image/jpeg", undefined), false);
    assert.equal(mimeMatches("audio/mp4", "audio/ogg"), false);
    assert.equal(mimeMatches("video/mp4", "audio/mp4"), false, "a video must hold a video track");
    assert.equal(mimeMatches("audio/mp4", "video/mp4"), false);
    assert.equal(mimeMatches("", ""), false);
  });
});

describe("probeMedia", () => {
  for (const name of ["jpeg", "png", "mp4", "ogg", "m4a", "png-as-jpeg"]) {
    it(`measures ${name} within 10% of index.json`, async () => {
      const { bytes, meta } = loadFixture(name);
      const probe = await probeMedia(bytes, meta.mime);
      if (meta.kind === "image" || meta.kind === "video") {
        within10Percent(probe.width, meta.width, "width");
        within10Percent(probe.height, meta.height, "height");
      }
      if (meta.kind === "voice" || meta.kind === "video") within10Percent(probe.durationMs, meta.durationMs, "durationMs");
      if (meta.kind === "voice") assert.equal(probe.width, undefined);
    });
  }

  it("reads the exact dimensions of the images and the video", async () => {
    assert.deepEqual(await probeMedia(loadFixture("jpeg").bytes, "image/jpeg"), { width: 320, height: 240 });
    assert.deepEqual(await probeMedia(loadFixture("png").bytes, "image/png"), { width: 200, height: 150 });
    const video = await probeMedia(loadFixture("mp4").bytes, "video/mp4");
    assert.equal(video.width, 160);
    assert.equal(video.height, 120);
  });

  it("measures nothing for files", async () => {
    assert.deepEqual(await probeMedia(loadFixture("pdf").bytes, "application/pdf"), {});
    assert.deepEqual(await probeMedia(loadFixture("bin").bytes, "application/octet-stream"), {});
  });

  it("refuses the truncated MP4 (its moov box is gone) and an executable probed as an image", async () => {
    await assert.rejects(probeMedia(loadFixture("truncated-mp4").bytes, "video/mp4"), MediaProbeError);
    await assert.rejects(probeMedia(loadFixture("exe-as-jpeg").bytes, "image/jpeg"), MediaProbeError);
  });
});
