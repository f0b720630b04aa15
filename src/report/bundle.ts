// Signed run bundles (docs/evidence.md): `run --sign KEY` writes <run dir>/bundle/ with report.json,
// one transcript file per case, manifest.json (every file's sha256) and manifest.sig (Ed25519 over
// the exact manifest bytes); `verify BUNDLE` checks the signature, every hash, the file list, and
// recomputes the verdict from the cases. No printing here: the CLI prints the checks.
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { Ajv } from "ajv";
import type { Requirement } from "../checks/model.ts";
import { aggregateRequirements, computeVerdict, summarize } from "../checks/verdict.ts";
import { REPORT_FILE_NAME, redactSecrets, validateReport } from "./json.ts";
import type { ReportDocument } from "./stats.ts";
import { SIGNATURE_ALGORITHM, SigningKeyError, parsePublicKey, signBytes, verifyBytes } from "./signing.ts";
import type { PublicKeyInfo, SigningKey } from "./signing.ts";
import { SUITE } from "../runner/suite.ts";

export const BUNDLE_FORMAT = 1;
/** The bundle's directory inside a run directory. */
export const BUNDLE_DIR_NAME = "bundle";
export const MANIFEST_FILE = "manifest.json";
export const SIGNATURE_FILE = "manifest.sig";
export const TRANSCRIPTS_DIR = "transcripts";

export interface ManifestFileEntry {
  sha256: string;
  bytes: number;
}

/** manifest.json: what the signature covers. */
export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  kind: "chatconform-bundle";
  suite: { name: string; version: string; commit: string };
  key: { algorithm: typeof SIGNATURE_ALGORITHM; id: string; publicKey: string };
  /** Every file of the bundle except manifest.json and manifest.sig, by path relative to the bundle ("/"-separated), sorted. */
  files: Record<string, ManifestFileEntry>;
}

/** One transcript file: transcripts/<case id>.json, for each case that ran. */
export interface TranscriptFile {
  case: string;
  file: string;
  sha256: string;
  status: string;
  transcript: ReportDocument["cases"][number]["transcript"];
}

/** Something that makes writing a bundle impossible (a bundle already there, a secret found in it). */
export class BundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BundleError";
  }
}

/** `verify` misused: the path is no bundle at all (exit 3, not "tampered"). */
export class BundleUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BundleUsageError";
  }
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

const PLAIN_ID = /^[a-z0-9][a-z0-9-]*(?:\/[a-z0-9][a-z0-9-]*)*$/i;

/** The transcript file of a case, relative to the bundle: transcripts/<area>/<slug>.json. */
export function transcriptPath(caseId: string): string {
  return `${TRANSCRIPTS_DIR}/${PLAIN_ID.test(caseId) ? caseId : encodeURIComponent(caseId)}.json`;
}

/** The cases that get a transcript file: every case that was not filtered out (skip). */
export function transcribedCases(report: ReportDocument): ReportDocument["cases"] {
  return report.cases.filter((c) => c.status !== "skip");
}

function serialize(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export interface WriteBundleOptions {
  /** The run directory holding report.json; the bundle goes to <runDir>/bundle/. */
  runDir: string;
  key: SigningKey;
  /** Strings that must not be in any bundle file (the config's passwords); the bundle is refused if one is. */
  secrets?: readonly string[];
}

export interface WrittenBundle {
  dir: string;
  manifest: BundleManifest;
  files: string[];
}

/**
 * Write the bundle of a finished run. report.json is copied byte for byte from the run directory;
 * the transcripts are cut from it, so every bundle file derives from what the run wrote.
 */
export function writeBundle(options: WriteBundleOptions): WrittenBundle {
  const reportText = readFileSync(path.join(options.runDir, REPORT_FILE_NAME));
  const report = JSON.parse(reportText.toString("utf8")) as ReportDocument;
  const dir = path.join(options.runDir, BUNDLE_DIR_NAME);
  if (existsSync(dir)) throw new BundleError(`${dir} already exists; a bundle is written once`);
  const secrets = (options.secrets ?? []).filter((s) => s.length > 0);

  const contents = new Map<string, Buffer>();
  contents.set(REPORT_FILE_NAME, reportText);
  for (const c of transcribedCases(report)) {
    const file = transcriptPath(c.id);
    if (contents.has(file)) throw new BundleError(`two cases map to the transcript file ${file}`);
    const body: TranscriptFile = { case: c.id, file: c.file, sha256: c.sha256, status: c.status, transcript: c.transcript };
    contents.set(file, Buffer.from(serialize(redactSecrets(body, secrets))));
  }
  // The last line of defence: never sign a secret.
  for (const [file, bytes] of contents) {
    const text = bytes.toString("utf8");
    if (secrets.some((s) => text.includes(s) || text.includes(JSON.stringify(s).slice(1, -1)))) {
      throw new BundleError(`${file} would contain a configured secret; no bundle written`);
    }
  }

  const files: Record<string, ManifestFileEntry> = {};
  for (const name of [...contents.keys()].sort()) {
    const bytes = contents.get(name)!;
    files[name] = { sha256: sha256(bytes), bytes: bytes.length };
  }
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    kind: "chatconform-bundle",
    suite: { name: report.suite.name, version: report.suite.version, commit: report.suite.commit ?? "unknown" },
    key: { algorithm: SIGNATURE_ALGORITHM, id: options.key.keyId, publicKey: options.key.publicKeyPem },
    files,
  };
  const manifestBytes = Buffer.from(serialize(manifest));
  const signature = signBytes(options.key, manifestBytes);

  mkdirSync(dir, { recursive: false });
  for (const [name, bytes] of contents) {
    const target = path.join(dir, ...name.split("/"));
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, bytes, { flag: "wx" });
  }
  writeFileSync(path.join(dir, MANIFEST_FILE), manifestBytes, { flag: "wx" });
  writeFileSync(path.join(dir, SIGNATURE_FILE), `${signature.toString("base64")}\n`, { flag: "wx" });
  return { dir, manifest, files: [...contents.keys(), MANIFEST_FILE, SIGNATURE_FILE] };
}

// ---------------------------------------------------------------- verification

const manifestSchema = {
  type: "object",
  additionalProperties: false,
  required: ["format", "kind", "suite", "key", "files"],
  properties: {
    format: { const: BUNDLE_FORMAT },
    kind: { const: "chatconform-bundle" },
    suite: {
      type: "object",
      additionalProperties: false,
      required: ["name", "version", "commit"],
      properties: { name: { type: "string" }, version: { type: "string" }, commit: { type: "string" } },
    },
    key: {
      type: "object",
      additionalProperties: false,
      required: ["algorithm", "id", "publicKey"],
      properties: { algorithm: { const: SIGNATURE_ALGORITHM }, id: { type: "string", pattern: "^[0-9a-f]{64}$" }, publicKey: { type: "string" } },
    },
    files: {
      type: "object",
      additionalProperties: {
        type: "object",
        additionalProperties: false,
        required: ["sha256", "bytes"],
        properties: { sha256: { type: "string", pattern: "^[0-9a-f]{64}$" }, bytes: { type: "integer", minimum: 0 } },
      },
    },
  },
} as const;

const validateManifest = new Ajv({ allErrors: true }).compile(manifestSchema);

/** One line of verify's output: what was checked, whether it holds, and the detail. */
export interface VerifyCheck {
  /** The file (or files) it is about, relative to the bundle. */
  subject: string;
  ok: boolean;
  detail: string;
}

export interface VerifyResult {
  /** The bundle directory actually checked (BUNDLE, or BUNDLE/bundle for a run directory). */
  dir: string;
  valid: boolean;
  checks: VerifyCheck[];
  /** Where the public key came from: `--pubkey` ("given"), the manifest itself, or nowhere usable. */
  keySource: "given" | "manifest" | "none";
  keyId?: string;
  /** Listed files whose sha256 and size match the manifest. */
  filesOk: number;
  /** What the report says about the run, when report.json could be read. */
  run?: { suite: string; endpoint: string; startedAt: string; verdict: string; recomputedVerdict?: string };
}

export interface VerifyOptions {
  /** The signer's public key, obtained apart from the bundle; without it the manifest's own key is used (integrity, not origin). */
  publicKey?: PublicKeyInfo;
}

/** A bundle directory, or a run directory holding one in bundle/. Throws BundleUsageError when it is neither. */
export function resolveBundleDir(target: string): string {
  let stat;
  try {
    stat = statSync(target);
  } catch {
    throw new BundleUsageError(`${target}: no such file or directory`);
  }
  if (!stat.isDirectory()) throw new BundleUsageError(`${target}: not a directory; a bundle is the directory that holds ${MANIFEST_FILE} and ${SIGNATURE_FILE}`);
  const isBundle = (dir: string) => existsSync(path.join(dir, MANIFEST_FILE)) || existsSync(path.join(dir, SIGNATURE_FILE));
  if (isBundle(target)) return target;
  const inner = path.join(target, BUNDLE_DIR_NAME);
  if (isBundle(inner)) return inner;
  throw new BundleUsageError(`${target}: not a bundle: no ${MANIFEST_FILE} or ${SIGNATURE_FILE} in it or in ${BUNDLE_DIR_NAME}/ (was the run made with --sign?)`);
}

/** Every entry under `dir`, relative with "/" separators; directories are walked, symlinks are not followed. */
function listTree(dir: string, prefix = ""): { path: string; kind: "file" | "other" }[] {
  const out: { path: string; kind: "file" | "other" }[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listTree(path.join(dir, entry.name), rel));
    else out.push({ path: rel, kind: entry.isFile() ? "file" : "other" });
  }
  return out;
}

function safeRelative(p: string): boolean {
  return p.length > 0 && !p.startsWith("/") && !p.includes("\\") && !p.includes("\0") && p.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}

const SIGNATURE_TEXT = /^[A-Za-z0-9+/]{86}==\n$/;

/**
 * Check a bundle: the signature over manifest.json, every listed file's sha256 and size, that no
 * file was added or removed, that report.json is a valid report whose verdict, summary and
 * requirement statuses follow from its cases (src/checks/verdict.ts), and that each transcript
 * file is the transcript of its case in report.json. Each problem names its file.
 *
 * The signature alone cannot say whether manifest.json or manifest.sig changed, so every field of
 * the manifest is also checked against the bundle (its key id against its key, its suite against
 * report.json, its hashes against the files): a changed manifest shows up there, and when all of
 * it agrees, the signature file is the one that changed (or another key signed).
 */
export function verifyBundle(target: string, options: VerifyOptions = {}): VerifyResult {
  const dir = resolveBundleDir(target);
  const manifestChecks: VerifyCheck[] = [];
  const fileChecks: VerifyCheck[] = [];
  const contentChecks: VerifyCheck[] = [];
  const read = (rel: string): Buffer | undefined => {
    try {
      const full = path.join(dir, rel);
      return lstatSync(full).isFile() ? readFileSync(full) : undefined;
    } catch {
      return undefined;
    }
  };

  // -- manifest.json: parse, shape, layout (the signature covers its bytes whatever they are)
  const manifestBytes = read(MANIFEST_FILE);
  let manifest: BundleManifest | undefined;
  const manifestProblems: string[] = [];
  if (!manifestBytes) manifestProblems.push("missing");
  else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(manifestBytes.toString("utf8"));
    } catch (err) {
      manifestProblems.push(`not valid JSON (${(err as Error).message})`);
    }
    if (parsed !== undefined) {
      if (!validateManifest(parsed)) {
        manifestProblems.push(...(validateManifest.errors ?? []).map((e) => `${e.instancePath ? e.instancePath.slice(1).replace(/\//g, ".") : "(manifest)"}: ${e.message ?? e.keyword}`));
      } else {
        manifest = parsed as unknown as BundleManifest;
        const unsafe = Object.keys(manifest.files).filter((p) => !safeRelative(p) || p === MANIFEST_FILE || p === SIGNATURE_FILE);
        if (unsafe.length) manifestProblems.push(`lists paths a bundle cannot hold: ${unsafe.join(", ")}`);
        if (manifestBytes.toString("utf8") !== serialize(parsed)) manifestProblems.push("is not laid out as chatconform writes it");
      }
    }
  }

  // -- the key: --pubkey, else the manifest's own; the manifest's key id must name its key either way
  let keySource: VerifyResult["keySource"] = "none";
  let key: PublicKeyInfo | undefined;
  let manifestKey: PublicKeyInfo | undefined;
  if (manifest) {
    try {
      manifestKey = parsePublicKey(manifest.key.publicKey, "key.publicKey");
      if (manifestKey.keyId !== manifest.key.id) manifestProblems.push(`key.id ${manifest.key.id} is not the id of key.publicKey (${manifestKey.keyId})`);
      // A PEM with stray bits in its base64 padding decodes to the same key: only the canonical text is accepted.
      if (manifestKey.publicKeyPem !== manifest.key.publicKey) manifestProblems.push("key.publicKey is not the PEM chatconform writes for that key");
    } catch (err) {
      if (!(err instanceof SigningKeyError)) throw err;
      manifestProblems.push(err.message);
    }
  }
  if (options.publicKey) {
    key = options.publicKey;
    keySource = "given";
  } else if (manifestKey) {
    key = manifestKey;
    keySource = "manifest";
  }

  // -- manifest.sig: exactly one line of canonical base64 of 64 bytes
  const signatureBytes = read(SIGNATURE_FILE);
  const signatureText = signatureBytes?.toString("latin1");
  let signature: Buffer | undefined;
  let signatureProblem: string | undefined;
  if (signatureText === undefined) signatureProblem = "missing";
  else if (!SIGNATURE_TEXT.test(signatureText)) signatureProblem = `not one line of base64 holding a 64-byte ${SIGNATURE_ALGORITHM} signature (${signatureBytes!.length} bytes)`;
  else {
    signature = Buffer.from(signatureText.trimEnd(), "base64");
    // Stray low bits before the padding would decode to the same signature: refuse them too.
    if (`${signature.toString("base64")}\n` !== signatureText) {
      signatureProblem = "the base64 is not in canonical form";
      signature = undefined;
    }
  }
  const signatureOk = Boolean(signature && manifestBytes && key && verifyBytes(key.publicKey, manifestBytes, signature));
  // With --pubkey: an intact bundle signed by someone else verifies with the key it carries.
  const signedByOther = Boolean(!signatureOk && keySource === "given" && signature && manifestBytes && manifestKey && verifyBytes(manifestKey.publicKey, manifestBytes, signature));
  if (manifest && key && keySource === "given" && manifest.key.id !== key.keyId && !signedByOther) manifestProblems.push(`names signing key ${manifest.key.id}, not the given key ${key.keyId}`);
  const unverified = signatureOk || signedByOther || !manifest ? "" : "; the manifest's signature does not verify either, so the manifest may be what changed";

  // -- every file: listed ⇔ present, hash and size
  const present = new Map(listTree(dir).filter((e) => e.path !== MANIFEST_FILE && e.path !== SIGNATURE_FILE).map((e) => [e.path, e.kind]));
  const okFiles = new Set<string>();
  if (manifest) {
    for (const [rel, entry] of Object.entries(manifest.files)) {
      if (!safeRelative(rel)) continue;
      const kind = present.get(rel);
      if (kind === undefined) {
        fileChecks.push({ subject: rel, ok: false, detail: `removed: listed in ${MANIFEST_FILE} but not in the bundle${unverified}` });
        continue;
      }
      if (kind !== "file") {
        fileChecks.push({ subject: rel, ok: false, detail: `not a regular file (a symlink or device where the manifest lists a file)${unverified}` });
        continue;
      }
      const bytes = read(rel)!;
      const actual = sha256(bytes);
      if (actual !== entry.sha256 || bytes.length !== entry.bytes) {
        const size = bytes.length !== entry.bytes ? `, ${bytes.length} bytes where it lists ${entry.bytes}` : "";
        fileChecks.push({ subject: rel, ok: false, detail: `modified: sha256 ${actual} is not the manifest's ${entry.sha256}${size}${unverified}` });
      } else {
        okFiles.add(rel);
        fileChecks.push({ subject: rel, ok: true, detail: `sha256 ${actual}` });
      }
    }
    for (const [rel] of present) {
      if (!(rel in manifest.files)) fileChecks.push({ subject: rel, ok: false, detail: `added: in the bundle but not listed in ${MANIFEST_FILE}${unverified}` });
    }
  }

  // -- report.json: a valid report, and its verdict follows from its cases
  const reportBytes = read(REPORT_FILE_NAME);
  let report: ReportDocument | undefined;
  let run: VerifyResult["run"];
  if (!reportBytes) {
    if (!manifest || !(REPORT_FILE_NAME in manifest.files)) contentChecks.push({ subject: REPORT_FILE_NAME, ok: false, detail: "missing: a bundle holds the run's report.json" });
  } else {
    try {
      report = JSON.parse(reportBytes.toString("utf8")) as ReportDocument;
    } catch (err) {
      contentChecks.push({ subject: REPORT_FILE_NAME, ok: false, detail: `not valid JSON (${(err as Error).message})` });
    }
    if (report) {
      const problems = validateReport(report);
      if (problems.length) {
        contentChecks.push({ subject: REPORT_FILE_NAME, ok: false, detail: `not a valid report: ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? `; and ${problems.length - 5} more` : ""}` });
        report = undefined;
      }
    }
    if (report) {
      const recomputed = recomputeVerdict(report);
      run = {
        suite: `${report.suite.name} ${report.suite.version}${report.suite.commit ? ` (commit ${report.suite.commit})` : ""}`,
        endpoint: report.endpoint,
        startedAt: report.startedAt,
        verdict: report.verdict,
        recomputedVerdict: recomputed.verdict,
      };
      // The verdict's rules can change between suite versions: say so, so that a bundle of another
      // version is checked with that version rather than taken for tampered.
      const otherRules = report.suite.version !== SUITE.version
        ? ` (the bundle was made by ${report.suite.name} ${report.suite.version} and recomputed with the rules of ${SUITE.version}: verify it with ${report.suite.version})`
        : "";
      if (recomputed.problems.length) contentChecks.push({ subject: REPORT_FILE_NAME, ok: false, detail: `${recomputed.problems.join("; ")}${otherRules}` });
      else contentChecks.push({ subject: REPORT_FILE_NAME, ok: true, detail: `verdict ${report.verdict} recomputed from its ${report.cases.length} case(s); summary and requirement statuses agree` });
      // The manifest's suite is the report's (checked only against an intact report.json).
      if (manifest && okFiles.has(REPORT_FILE_NAME)) {
        const suite = { name: report.suite.name, version: report.suite.version, commit: report.suite.commit ?? "unknown" };
        if (!isDeepStrictEqual(manifest.suite, suite)) manifestProblems.push(`suite ${JSON.stringify(manifest.suite)} is not report.json's ${JSON.stringify(suite)}`);
      }
    }
  }

  // -- transcripts: one per case that ran, each the case's transcript in report.json
  if (report) {
    const expected = new Map(transcribedCases(report).map((c) => [transcriptPath(c.id), c]));
    for (const [rel, c] of expected) {
      if (!present.has(rel)) {
        if (!manifest || !(rel in manifest.files)) contentChecks.push({ subject: rel, ok: false, detail: `missing: case ${c.id} ran (${c.status}) but has no transcript file` });
        continue;
      }
      if (manifest && !okFiles.has(rel)) continue; // already named above
      let body: TranscriptFile | undefined;
      try {
        body = JSON.parse(read(rel)?.toString("utf8") ?? "") as TranscriptFile;
      } catch {
        contentChecks.push({ subject: rel, ok: false, detail: "not valid JSON" });
        continue;
      }
      if (body.case !== c.id || body.sha256 !== c.sha256 || body.status !== c.status || !isDeepStrictEqual(body.transcript, c.transcript)) {
        contentChecks.push({ subject: rel, ok: false, detail: `is not the transcript of case ${c.id} in ${REPORT_FILE_NAME}` });
      }
    }
    for (const [rel] of present) {
      if (rel.startsWith(`${TRANSCRIPTS_DIR}/`) && !expected.has(rel)) contentChecks.push({ subject: rel, ok: false, detail: `no case that ran in ${REPORT_FILE_NAME} has this transcript file` });
    }
  }

  // -- the signature line, named as precisely as the evidence allows
  if (manifestProblems.length) manifestChecks.push({ subject: MANIFEST_FILE, ok: false, detail: manifestProblems.join("; ") });
  const keyName = key ? `key ${key.keyId}${keySource === "manifest" ? " (the bundle's own)" : ""}` : "";
  if (signatureProblem) manifestChecks.push({ subject: SIGNATURE_FILE, ok: false, detail: signatureProblem });
  else if (!manifestBytes) {
    // named above: manifest.json missing
  } else if (!key) manifestChecks.push({ subject: `${SIGNATURE_FILE}, ${MANIFEST_FILE}`, ok: false, detail: "the signature cannot be checked: no --pubkey and no usable key in the manifest" });
  else if (signatureOk) manifestChecks.push({ subject: `${SIGNATURE_FILE}, ${MANIFEST_FILE}`, ok: true, detail: `${SIGNATURE_ALGORITHM} signature of ${MANIFEST_FILE} verifies with ${keyName}` });
  else if (signedByOther) {
    manifestChecks.push({ subject: SIGNATURE_FILE, ok: false, detail: `signed by key ${manifestKey!.keyId} (the one the bundle carries), not by the given key ${key.keyId}: the bundle does not come from the holder of --pubkey` });
  } else {
    const manifestAgrees = manifest !== undefined && manifestProblems.length === 0 && fileChecks.every((c) => c.ok);
    if (manifestAgrees) {
      const other = keySource === "given" ? " (or the bundle was signed with another key than the given one)" : "";
      manifestChecks.push({ subject: SIGNATURE_FILE, ok: false, detail: `changed after signing: the signature does not verify with ${keyName}, and ${MANIFEST_FILE} agrees with its key, the report and every file${other}` });
    } else {
      manifestChecks.push({ subject: MANIFEST_FILE, ok: false, detail: `changed after signing: the signature in ${SIGNATURE_FILE} does not verify with ${keyName}` });
    }
  }

  const checks = [...manifestChecks, ...fileChecks, ...contentChecks];
  return { dir, valid: signatureOk && checks.every((c) => c.ok), checks, keySource, keyId: key?.keyId, filesOk: okFiles.size, run };
}

/** Recompute requirement statuses, summary, uncovered list and verdict from a report's cases and compare. */
export function recomputeVerdict(report: ReportDocument): { verdict: string; problems: string[] } {
  const problems: string[] = [];
  const requirements: Requirement[] = report.requirements.map((r) => ({ id: r.id, level: r.level, text: r.text, source: r.source }));
  const outcomes = report.cases.map((c) => ({ id: c.id, requirements: c.requirements, status: c.status, checks: c.checks, failures: c.failures.map((f) => ({ ...f, ok: false })) }));
  const rows = aggregateRequirements(requirements, outcomes);
  for (const [i, row] of rows.entries()) {
    const stated = report.requirements[i]!;
    if (stated.status !== row.status) problems.push(`requirement ${row.id} is ${stated.status} in the report but ${row.status} from its cases`);
    // The report lists covering cases in the order they ended, its `cases` by id: compare as sets.
    else if (!isDeepStrictEqual([...stated.cases].sort(), [...row.cases].sort())) problems.push(`requirement ${row.id} lists cases ${stated.cases.join(",")} but is covered by ${row.cases.join(",")}`);
  }
  const uncovered = rows.filter((r) => r.status === "uncovered").map((r) => r.id);
  if (!isDeepStrictEqual(uncovered, report.uncovered)) problems.push(`uncovered lists ${report.uncovered.join(",") || "nothing"} but the cases leave ${uncovered.join(",") || "nothing"} uncovered`);
  const summary = summarize(report.cases);
  if (!isDeepStrictEqual(summary, report.summary)) problems.push(`summary ${JSON.stringify(report.summary)} does not count the cases: ${JSON.stringify(summary)}`);
  for (const c of report.cases) {
    const failed = c.checks.filter((k) => !k.ok).map(({ ok: _ok, ...f }) => f);
    if (!isDeepStrictEqual(failed, c.failures)) problems.push(`case ${c.id}: its failures are not its failed checks`);
  }
  const verdict = computeVerdict(rows, { incomplete: report.incomplete });
  if (verdict !== report.verdict) problems.push(`verdict ${report.verdict} in the report, but ${verdict} from its cases`);
  return { verdict, problems };
}
