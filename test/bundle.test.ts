// Signed bundles: keys, writing, and verify detecting (and naming) any change to any bundle file.
import assert from "node:assert/strict";
import { SUITE } from "../src/runner/suite.ts";
import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { CaseResult, CaseStatus, CheckResult, Level, Requirement } from "../src/checks/model.ts";
import {
  BUNDLE_DIR_NAME, BundleError, BundleUsageError, MANIFEST_FILE, SIGNATURE_FILE, transcriptPath, verifyBundle, writeBundle,
} from "../src/report/bundle.ts";
import type { BundleManifest, VerifyResult } from "../src/report/bundle.ts";
import { writeReport } from "../src/report/json.ts";
import { buildReport } from "../src/report/stats.ts";
import type { ReportDocument } from "../src/report/stats.ts";
import { PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, SigningKeyError, loadPublicKey, loadSigningKey, writeKeyPair } from "../src/report/signing.ts";
import type { RunInfo } from "../src/runner/events.ts";
import { EXIT_SIGNER_NOT_AUTHENTICATED, verifyCommand } from "../src/cli/verify.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const tmp = (prefix = "chatconform-bundle-") => mkdtempSync(path.join(os.tmpdir(), prefix));

const SECRET = "Bundle-Secret-pw-7c1f";

function req(id: string, level: Level = "MUST"): Requirement {
  return { id, level, text: `${id} text`, source: "TPC/1 §0" };
}

function check(requirement: string, ok: boolean): CheckResult {
  return { requirement, ok, step: "steps[1] expect receipt m1", expected: `what ${requirement} expects`, actual: ok ? "as expected" : "something else", evidence: [1] };
}

function result(id: string, status: CaseStatus, requirements: string[], checks: CheckResult[] = []): CaseResult {
  return {
    id, title: `Case ${id}`, file: `cases/${id}.yaml`, area: id.split("/")[0]!, requirements, level: "MUST", tags: ["core"], status,
    durationMs: 10, timeoutWaitMs: 0, checks, failures: checks.filter((c) => !c.ok), sha256: "b".repeat(64),
    transcript: status === "skip" ? [] : [
      { seq: 1, t: 1, actor: "alice", direction: "out", xml: `<message id='m1' to='reflector@partner.test'><body>hi</body></message>`, decrypted: '{"kind":"text","text":"hi"}' },
      { seq: 2, t: 9, actor: "alice", direction: "in", xml: "<message id='r1'><received xmlns='urn:xmpp:receipts' id='m1'/></message>" },
    ],
  };
}

const runInfo: RunInfo = {
  suite: { name: "chatconform", version: "0.1.0", commit: "c".repeat(40) },
  profile: { id: "TPC", version: "1" },
  endpoint: "xmpp://127.0.0.1:5222",
  endpointDescription: "fake endpoint",
  policy: "eea",
  startedAt: "2025-01-01T10:00:00.000Z",
  command: "chatconform run --sign key",
  caseSetSha256: "a".repeat(64),
  selection: { total: 4, selected: 3, filters: [] },
  node: "v20.19.0",
  platform: "linux-x64",
  seed: 7,
};

const requirements = [req("ENC-06"), req("ENC-10"), req("TRN-01"), req("PRV-05", "SHOULD")];

function fakeReport(cases: CaseResult[] = [
  result("encryption/text-roundtrip", "pass", ["ENC-06"], [check("ENC-06", true)]),
  result("encryption/replay-dropped", "pass", ["ENC-10"], [check("ENC-10", true)]),
  result("privacy/identity-only-phone", "fail", ["PRV-05"], [check("PRV-05", false)]),
  result("transport/starttls-required", "skip", ["TRN-01"]),
]): ReportDocument {
  return buildReport(runInfo, requirements, cases, { finishedAt: "2025-01-01T10:00:05.000Z", incomplete: false });
}

/** A run directory with report.json and a signed bundle; the key pair lives beside it. */
async function signedRun(doc: ReportDocument = fakeReport(), keyDir?: string): Promise<{ runDir: string; bundle: string; keyDir: string }> {
  const base = tmp();
  const runDir = path.join(base, "run");
  const keys = keyDir ?? path.join(base, "keys");
  if (!keyDir) writeKeyPair(keys);
  await writeReport(doc, runDir, [SECRET]);
  const written = writeBundle({ runDir, key: loadSigningKey(path.join(keys, PRIVATE_KEY_FILE)), secrets: [SECRET] });
  return { runDir, bundle: written.dir, keyDir: keys };
}

function filesOf(dir: string, prefix = ""): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    return e.isDirectory() ? filesOf(path.join(dir, e.name), rel) : [rel];
  });
}

const failing = (r: VerifyResult) => r.checks.filter((c) => !c.ok);
const named = (r: VerifyResult) => new Set(failing(r).flatMap((c) => c.subject.split(", ")));

describe("signing keys", () => {
  it("keygen writes a 0600 PKCS#8 private key and an SPKI public key, and never overwrites", () => {
    const dir = path.join(tmp(), "keys");
    const written = writeKeyPair(dir);
    assert.equal(written.privateKeyFile, path.join(dir, PRIVATE_KEY_FILE));
    assert.equal(statSync(written.privateKeyFile).mode & 0o777, 0o600);
    assert.match(readFileSync(written.privateKeyFile, "utf8"), /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(readFileSync(written.publicKeyFile, "utf8"), /^-----BEGIN PUBLIC KEY-----\n/);
    const key = loadSigningKey(written.privateKeyFile);
    assert.equal(key.keyId, written.keyId);
    assert.match(key.keyId, /^[0-9a-f]{64}$/);
    assert.deepEqual(key.warnings, []);
    assert.equal(loadPublicKey(written.publicKeyFile).keyId, written.keyId);
    const before = readFileSync(written.privateKeyFile, "utf8");
    assert.throws(() => writeKeyPair(dir), (e: unknown) => e instanceof SigningKeyError && /already exists/.test(e.message));
    assert.equal(readFileSync(written.privateKeyFile, "utf8"), before);
  });

  it("refuses keys of the wrong kind, algorithm or protection, and warns about a readable private key", () => {
    const dir = tmp();
    const { publicKeyFile, privateKeyFile } = writeKeyPair(path.join(dir, "k"));
    assert.throws(() => loadSigningKey(publicKeyFile), /it is a public key/);
    assert.throws(() => loadPublicKey(privateKeyFile), /this is a private key/);
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const ecFile = path.join(dir, "ec.key");
    writeFileSync(ecFile, ec.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    assert.throws(() => loadSigningKey(ecFile), /an ec key; bundles are signed with Ed25519/);
    const encrypted = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" });
    const encFile = path.join(dir, "enc.key");
    writeFileSync(encFile, encrypted, { mode: 0o600 });
    assert.throws(() => loadSigningKey(encFile), /passphrase-protected keys are not supported/);
    assert.throws(() => loadSigningKey(path.join(dir, "nope.key")), /cannot read it \(ENOENT\)/);
    chmodSync(privateKeyFile, 0o644);
    assert.match(loadSigningKey(privateKeyFile).warnings.join("\n"), /can be read by others \(mode 0644\)/);
  });
});

describe("bundle", function () {
  this.timeout(60_000);

  it("holds report.json byte for byte, one transcript per case that ran, a manifest of every file and its signature", async () => {
    const { runDir, bundle } = await signedRun();
    assert.equal(bundle, path.join(runDir, BUNDLE_DIR_NAME));
    assert.deepEqual(filesOf(bundle).sort(), [
      MANIFEST_FILE, SIGNATURE_FILE, "report.json",
      "transcripts/encryption/replay-dropped.json", "transcripts/encryption/text-roundtrip.json", "transcripts/privacy/identity-only-phone.json",
    ].sort());
    assert.deepEqual(readFileSync(path.join(bundle, "report.json")), readFileSync(path.join(runDir, "report.json")));
    const manifest = JSON.parse(readFileSync(path.join(bundle, MANIFEST_FILE), "utf8")) as BundleManifest;
    assert.deepEqual(Object.keys(manifest.files), Object.keys(manifest.files).sort());
    assert.deepEqual(manifest.suite, { name: "chatconform", version: "0.1.0", commit: "c".repeat(40) });
    assert.equal(manifest.key.algorithm, "Ed25519");
    assert.match(readFileSync(path.join(bundle, SIGNATURE_FILE), "utf8"), /^[A-Za-z0-9+/]{86}==\n$/);
    const transcript = JSON.parse(readFileSync(path.join(bundle, transcriptPath("encryption/text-roundtrip")), "utf8"));
    assert.equal(transcript.case, "encryption/text-roundtrip");
    assert.equal(transcript.transcript.length, 2);
  });

  it("verifies an intact bundle with the signer's key, from the bundle or from its run directory", async () => {
    const { runDir, bundle, keyDir } = await signedRun();
    const publicKey = loadPublicKey(path.join(keyDir, PUBLIC_KEY_FILE));
    for (const target of [bundle, runDir]) {
      const r = verifyBundle(target, { publicKey });
      assert.deepEqual(failing(r), []);
      assert.equal(r.valid, true);
      assert.equal(r.keySource, "given");
      assert.equal(r.filesOk, 4);
      assert.equal(r.run?.verdict, "compliant-with-warnings");
      assert.equal(r.run?.recomputedVerdict, "compliant-with-warnings");
    }
    const own = verifyBundle(bundle);
    assert.equal(own.valid, true);
    assert.equal(own.keySource, "manifest");
  });

  it("detects a one-byte change anywhere in any bundle file and names the file", async () => {
    const { bundle, keyDir } = await signedRun();
    const publicKey = loadPublicKey(path.join(keyDir, PUBLIC_KEY_FILE));
    let tried = 0;
    for (const file of filesOf(bundle)) {
      const original = readFileSync(path.join(bundle, file));
      // Every byte of the manifest and its signature; a spread of offsets (ends included) elsewhere.
      const everyByte = file === MANIFEST_FILE || file === SIGNATURE_FILE;
      const step = everyByte ? 1 : Math.max(1, Math.floor(original.length / 60));
      const offsets = new Set<number>([0, original.length - 1]);
      for (let i = 0; i < original.length; i += step) offsets.add(i);
      for (const offset of offsets) {
        for (const mask of offset % 97 === 0 ? [0x01, 0x80] : [0x01]) {
          const bytes = Buffer.from(original);
          bytes[offset]! ^= mask;
          writeFileSync(path.join(bundle, file), bytes);
          const r = verifyBundle(bundle, { publicKey });
          writeFileSync(path.join(bundle, file), original);
          tried++;
          assert.equal(r.valid, false, `${file} byte ${offset} ^ ${mask}: not detected`);
          assert.ok(named(r).has(file), `${file} byte ${offset} ^ ${mask}: named ${[...named(r)].join(", ")}: ${failing(r).map((c) => c.detail).join(" | ")}`);
        }
      }
    }
    assert.ok(tried > 1000, `only ${tried} changes tried`);
    assert.equal(verifyBundle(bundle, { publicKey }).valid, true, "restored");
  });

  it("names added, removed and replaced files", async () => {
    const { bundle } = await signedRun();
    const added = path.join(bundle, "transcripts", "extra.json");
    writeFileSync(added, "{}\n");
    let r = verifyBundle(bundle);
    assert.equal(r.valid, false);
    assert.ok(failing(r).some((c) => c.subject === "transcripts/extra.json" && /^added/.test(c.detail)), JSON.stringify(failing(r)));
    unlinkSync(added);
    const victim = path.join(bundle, transcriptPath("encryption/replay-dropped"));
    const saved = readFileSync(victim);
    unlinkSync(victim);
    r = verifyBundle(bundle);
    assert.ok(failing(r).some((c) => c.subject === "transcripts/encryption/replay-dropped.json" && /^removed/.test(c.detail)), JSON.stringify(failing(r)));
    symlinkSync(path.join(bundle, "report.json"), victim);
    r = verifyBundle(bundle);
    assert.ok(failing(r).some((c) => c.subject === "transcripts/encryption/replay-dropped.json" && /not a regular file/.test(c.detail)), JSON.stringify(failing(r)));
    unlinkSync(victim);
    writeFileSync(victim, saved);
    assert.equal(verifyBundle(bundle).valid, true);
    rmSync(path.join(bundle, SIGNATURE_FILE));
    r = verifyBundle(bundle);
    assert.equal(r.valid, false);
    assert.ok(failing(r).some((c) => c.subject === SIGNATURE_FILE && c.detail === "missing"));
  });

  it("tells a bundle re-signed by someone else from one signed by the given key", async () => {
    const { runDir, keyDir } = await signedRun();
    const publicKey = loadPublicKey(path.join(keyDir, PUBLIC_KEY_FILE));
    // Someone edits the verdict-free part of the report and re-signs the whole bundle with a key of their own.
    const report = readFileSync(path.join(runDir, "report.json"), "utf8").replace("fake endpoint", "faked endpoint");
    rmSync(path.join(runDir, BUNDLE_DIR_NAME), { recursive: true });
    writeFileSync(path.join(runDir, "report.json"), report);
    const forger = path.join(tmp(), "forger");
    writeKeyPair(forger);
    writeBundle({ runDir, key: loadSigningKey(path.join(forger, PRIVATE_KEY_FILE)) });
    const selfChecked = verifyBundle(runDir);
    assert.equal(selfChecked.valid, true, "integrity holds with the bundle's own key");
    assert.equal(selfChecked.keySource, "manifest");
    const r = verifyBundle(runDir, { publicKey });
    assert.equal(r.valid, false);
    assert.ok(failing(r).some((c) => c.subject === SIGNATURE_FILE && /not by the given key/.test(c.detail)), JSON.stringify(failing(r)));
  });

  it("recomputes the verdict, summary and requirement statuses from the cases", async () => {
    const doc = fakeReport([
      result("encryption/text-roundtrip", "fail", ["ENC-06"], [check("ENC-06", false)]),
      result("encryption/replay-dropped", "pass", ["ENC-10"], [check("ENC-10", true)]),
    ]);
    assert.equal(doc.verdict, "non-compliant");
    // A signer whose report claims better than its cases show: signed, hashes right, and still refused.
    doc.verdict = "compliant";
    doc.summary.fail = 0;
    doc.requirements.find((r) => r.id === "ENC-06")!.status = "pass";
    const { bundle } = await signedRun(doc);
    const r = verifyBundle(bundle);
    assert.equal(r.valid, false);
    const problem = failing(r).find((c) => c.subject === "report.json")!;
    assert.match(problem.detail, /verdict compliant in the report, but non-compliant from its cases/);
    assert.match(problem.detail, /requirement ENC-06 is pass in the report but fail from its cases/);
    assert.match(problem.detail, /summary .* does not count the cases/);
    assert.equal(r.run?.recomputedVerdict, "non-compliant");
    // The fake report says chatconform 0.1.0: the verifier names its own rules' version beside.
    assert.match(problem.detail, new RegExp(`\\(the bundle was made by chatconform 0\\.1\\.0 and recomputed with the rules of ${SUITE.version.replace(/\./g, "\\.")}: verify it with 0\\.1\\.0\\)$`));
  });

  it("refuses to write a bundle twice or one that would hold a secret", async () => {
    const { runDir, keyDir } = await signedRun();
    const key = loadSigningKey(path.join(keyDir, PRIVATE_KEY_FILE));
    assert.throws(() => writeBundle({ runDir, key }), (e: unknown) => e instanceof BundleError && /already exists/.test(e.message));
    const leaky = path.join(tmp(), "leaky");
    mkdirSync(leaky);
    // A report written without redaction (not what the JSON reporter does): the bundle writer still refuses.
    const doc = fakeReport();
    doc.cases[0]!.title = `oops ${SECRET}`;
    writeFileSync(path.join(leaky, "report.json"), JSON.stringify(doc));
    assert.throws(() => writeBundle({ runDir: leaky, key, secrets: [SECRET] }), (e: unknown) => e instanceof BundleError && /report\.json would contain a configured secret/.test(e.message));
    assert.deepEqual(readdirSync(leaky), ["report.json"]);
  });

  it("treats a path that is no bundle as misuse", () => {
    const dir = tmp();
    assert.throws(() => verifyBundle(path.join(dir, "missing")), (e: unknown) => e instanceof BundleUsageError && /no such file/.test(e.message));
    assert.throws(() => verifyBundle(dir), (e: unknown) => e instanceof BundleUsageError && /not a bundle/.test(e.message));
    writeFileSync(path.join(dir, "f"), "x");
    assert.throws(() => verifyBundle(path.join(dir, "f")), (e: unknown) => e instanceof BundleUsageError && /not a directory/.test(e.message));
  });
});

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, "bin", "chatconform.js"), ...args], { cwd: root, env: { ...process.env, NO_COLOR: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("keygen and verify commands", function () {
  this.timeout(60_000);

  it("keygen prints paths and the key id, never the private key; verify exits 0 valid, 1 tampered, 3 misused", async () => {
    const dir = tmp();
    const keygen = await cli(["keygen", "--out", path.join(dir, "keys")]);
    assert.equal(keygen.code, 0, keygen.stderr);
    const privatePem = readFileSync(path.join(dir, "keys", PRIVATE_KEY_FILE), "utf8");
    const body = privatePem.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    assert.ok(!(keygen.stdout + keygen.stderr).includes(body), "keygen printed the private key");
    assert.match(keygen.stdout, /key id: +[0-9a-f]{64}/);
    assert.equal((await cli(["keygen", "--out", path.join(dir, "keys")])).code, 3);

    const { bundle } = await signedRun(fakeReport(), path.join(dir, "keys"));
    const pub = path.join(dir, "keys", PUBLIC_KEY_FILE);
    const valid = await cli(["verify", bundle, "--pubkey", pub]);
    assert.equal(valid.code, 0, valid.stdout + valid.stderr);
    assert.match(valid.stdout, /^VALID: /m);
    assert.doesNotMatch(valid.stderr, /WARNING/);

    const unkeyed = await cli(["verify", bundle]);
    assert.equal(unkeyed.code, 2, "intact, but the signer is not authenticated");
    assert.match(unkeyed.stderr, /WARNING: .*does NOT prove who signed them/);

    const transcript = path.join(bundle, transcriptPath("encryption/text-roundtrip"));
    const bytes = readFileSync(transcript);
    bytes[bytes.length - 2]! ^= 1;
    writeFileSync(transcript, bytes);
    const tampered = await cli(["verify", bundle, "--pubkey", pub]);
    assert.equal(tampered.code, 1);
    assert.match(tampered.stdout, /^✖ transcripts\/encryption\/text-roundtrip\.json {2}modified: sha256 /m);
    assert.match(tampered.stdout, /^INVALID: 1 problem\(s\) in transcripts\/encryption\/text-roundtrip\.json$/m);

    assert.equal((await cli(["verify", path.join(dir, "nothing-here")])).code, 3);
    assert.equal((await cli(["verify", bundle, "--pubkey", path.join(dir, "keys", PRIVATE_KEY_FILE)])).code, 3);
  });
});

describe("verify without --pubkey", function () {
  this.timeout(60_000);

  it("is never plain VALID: a bundle re-signed by anyone is intact but its signer not authenticated (exit 2, key id shown); --trust-embedded-key accepts it", async () => {
    // Anyone can change a report and sign the bundle with a key of their own: it carries that key.
    const forged = fakeReport();
    forged.endpoint = "xmpp://not-the-endpoint-that-ran.example:5222";
    const { bundle, keyDir } = await signedRun(forged);
    const keyId = loadPublicKey(path.join(keyDir, PUBLIC_KEY_FILE)).keyId;
    const lines = () => {
      const out: string[] = [];
      const err: string[] = [];
      return { out, err, io: { out: (l = "") => out.push(l), err: (l = "") => err.push(l) } };
    };

    const plain = lines();
    assert.equal(verifyCommand(bundle, {}, plain.io), EXIT_SIGNER_NOT_AUTHENTICATED);
    assert.equal(EXIT_SIGNER_NOT_AUTHENTICATED, 2);
    assert.ok(!plain.out.some((l) => l.startsWith("VALID")), plain.out.join("\n"));
    const verdictLine = plain.out.find((l) => l.startsWith("INTACT, SIGNER NOT AUTHENTICATED: "));
    assert.ok(verdictLine, plain.out.join("\n"));
    assert.ok(verdictLine.includes(`key id ${keyId}`), "the embedded key's id, to compare out of band");
    assert.ok(plain.out.some((l) => /--pubkey FILE.*--trust-embedded-key/.test(l)));
    assert.ok(plain.err.some((l) => /does NOT prove who signed them/.test(l)));

    const trusted = lines();
    assert.equal(verifyCommand(bundle, { trustEmbeddedKey: true }, trusted.io), 0);
    assert.ok(trusted.out.some((l) => l.startsWith("INTACT, SIGNER NOT AUTHENTICATED (accepted with --trust-embedded-key): ") && l.includes(keyId)), trusted.out.join("\n"));
    assert.ok(!trusted.out.some((l) => l.startsWith("VALID")));

    const given = lines();
    assert.equal(verifyCommand(bundle, { pubkey: path.join(keyDir, PUBLIC_KEY_FILE), trustEmbeddedKey: true }, given.io), 0);
    assert.ok(given.out.some((l) => l.startsWith("VALID: ")), "with the signer's key it is VALID");

    // Tampering keeps its own exit code, with or without the flag.
    const report = path.join(bundle, "report.json");
    const bytes = readFileSync(report);
    bytes[10]! ^= 1;
    writeFileSync(report, bytes);
    assert.equal(verifyCommand(bundle, {}, lines().io), 1);
    assert.equal(verifyCommand(bundle, { trustEmbeddedKey: true }, lines().io), 1);
  });
});
