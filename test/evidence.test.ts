// What a run records about itself (suite commit, endpoint certificate, redacted config, seed,
// command line), seeded replay of the suite's choices, and the scan of every artifact of a signed
// run for the configured secrets.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { X509Certificate, createHash, createHmac } from "node:crypto";
import type { EventEmitter } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { stringify as toYaml } from "yaml";
import { DEFAULT_CASES_DIR, listCaseFiles, loadCases } from "../src/cases/loader.ts";
import type { CaseDefinition } from "../src/cases/loader.ts";
import { selectCases } from "../src/cases/select.ts";
import { loadRequirements } from "../src/checks/requirements.ts";
import type { EndpointConfig } from "../src/config/config.ts";
import { startReferencePartner } from "../src/partner/index.ts";
import type { ReferencePartner } from "../src/partner/index.ts";
import { generateCertificate } from "../src/partner/tls.ts";
import { XmppConnection } from "../src/protocol/connection.ts";
import { verifyBundle } from "../src/report/bundle.ts";
import { validateReport } from "../src/report/json.ts";
import { buildReport, statsFor } from "../src/report/stats.ts";
import type { ReportDocument } from "../src/report/stats.ts";
import { PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, loadPublicKey, writeKeyPair } from "../src/report/signing.ts";
import { CaseContext, expandPhone } from "../src/runner/context.ts";
import type { RunInfo, RunnerEvents } from "../src/runner/events.ts";
import { UNKNOWN_COMMIT, gitCommit, probeEndpointTls, redactConfig, shellJoin } from "../src/runner/evidence.ts";
import { MAX_SEED, isSeed, seededRandom } from "../src/runner/seed.ts";
import { shuffled } from "../src/runner/steps.ts";
import { runSuite } from "../src/runner/suite.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const tmp = (prefix = "chatconform-evidence-") => mkdtempSync(path.join(os.tmpdir(), prefix));
const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

const requirements = loadRequirements();
const { cases } = loadCases(requirements, listCaseFiles(DEFAULT_CASES_DIR));
const pick = (...ids: string[]): CaseDefinition[] => selectCases(cases, { cases: ids }).selected;

describe("seeded choices", () => {
  it("draw the same numbers for the same seed and stream, other numbers otherwise", () => {
    const draw = (seed: number, stream: string) => Array.from({ length: 20 }, (() => { const r = seededRandom(seed, stream); return () => r.int(1000); })());
    assert.deepEqual(draw(42, "a/b/burst"), draw(42, "a/b/burst"));
    assert.notDeepEqual(draw(42, "a/b/burst"), draw(43, "a/b/burst"));
    assert.notDeepEqual(draw(42, "a/b/burst"), draw(42, "a/c/burst"));
    const r = seededRandom(0, "x");
    for (let i = 0; i < 200; i++) {
      const n = r.int(7);
      assert.ok(Number.isInteger(n) && n >= 0 && n < 7);
    }
    // The documented derivation, so an auditor can recompute a choice by hand.
    const first = parseInt(createHmac("sha256", "chatconform-seed-1:42").update("s:0").digest("hex").slice(0, 8), 16) / 2 ** 32;
    assert.equal(seededRandom(42, "s").next(), first);
    assert.ok(isSeed(0) && isSeed(MAX_SEED) && !isSeed(-1) && !isSeed(MAX_SEED + 1) && !isSeed(1.5));
    assert.throws(() => seededRandom(-1, "x"), RangeError);
  });

  it("shuffle, phone digits and prekey picks replay under the same seed", () => {
    const labels = Array.from({ length: 50 }, (_, i) => `s-${i + 1}`);
    const a = shuffled(labels, seededRandom(9, "c/burst"));
    assert.deepEqual(a, shuffled(labels, seededRandom(9, "c/burst")));
    assert.notDeepEqual(a, shuffled(labels, seededRandom(10, "c/burst")));
    assert.deepEqual([...a].sort(), [...labels].sort());
    assert.equal(expandPhone("+33 6 1# ## ## ##", seededRandom(9, "c/phone")), expandPhone("+33 6 1# ## ## ##", seededRandom(9, "c/phone")));
    assert.match(expandPhone("+33 6 1# ## ## ##"), /^\+33 6 1\d \d\d \d\d \d\d$/);

    const caseDef = cases.find((c) => c.id === "encryption/text-roundtrip")!;
    const config = {} as EndpointConfig;
    const ids = Array.from({ length: 100 }, (_, i) => i + 1);
    const pickWith = (seed: number, available: number[]) => new CaseContext(caseDef, config, new Set(), seed).claimPreKey("r@p", 1, available);
    assert.equal(pickWith(5, ids), pickWith(5, [...ids].reverse()), "the bundle's order does not matter");
    const ctx = new CaseContext(caseDef, config, new Set(), 5);
    assert.equal(ctx.seed, 5);
    assert.equal(ctx.random("burst"), ctx.random("burst"), "one stream per purpose, continued across calls");
    const claimed = new Set<number>();
    for (let i = 0; i < 100; i++) claimed.add(ctx.claimPreKey("r@p", 1, ids)!);
    assert.equal(claimed.size, 100, "a claimed prekey is never picked again in the run");
    assert.equal(ctx.claimPreKey("r@p", 1, ids), undefined);
  });
});

describe("run record", () => {
  it("reads the suite's git commit from .git without git, and says unknown elsewhere", () => {
    const commit = "0123456789abcdef0123456789abcdef01234567";
    const other = "fedcba9876543210fedcba9876543210fedcba98";
    const repo = (files: Record<string, string>) => {
      const dir = tmp("chatconform-git-");
      for (const [name, text] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        writeFileSync(path.join(dir, name), text);
      }
      return dir;
    };
    assert.equal(gitCommit(repo({ ".git/HEAD": "ref: refs/heads/main\n", ".git/refs/heads/main": `${commit}\n` })), commit);
    assert.equal(gitCommit(repo({ ".git/HEAD": "ref: refs/heads/main\n", ".git/packed-refs": `# pack-refs with: peeled\n${other} refs/heads/dev\n${commit} refs/heads/main\n` })), commit);
    assert.equal(gitCommit(repo({ ".git/HEAD": `${commit}\n` })), commit, "detached HEAD");
    const worktree = repo({
      "main/.git/refs/heads/feature": `${commit}\n`,
      "main/.git/worktrees/wt/HEAD": "ref: refs/heads/feature\n",
      "main/.git/worktrees/wt/commondir": "../..\n",
      "wt/.git": "gitdir: ../main/.git/worktrees/wt\n",
    });
    assert.equal(gitCommit(path.join(worktree, "wt")), commit, "linked worktree");
    assert.equal(gitCommit(repo({ "package.json": "{}" })), UNKNOWN_COMMIT, "an npm-installed copy");
    assert.equal(gitCommit(repo({ ".git/HEAD": "ref: refs/heads/gone\n" })), UNKNOWN_COMMIT);
    assert.match(gitCommit(), /^([0-9a-f]{40}|unknown)$/);
  });

  it("records the config with passwords redacted and the CA as its hash", () => {
    const config: EndpointConfig = {
      service: "xmpp://127.0.0.1:5222", domain: "partner.example", tls: { ca: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", insecure: false },
      accounts: { mode: "static", prefix: "tpc-test-", static: [{ username: "tpc-test-a", password: "Pa55-static-a", phone: "+33612345678" }], ineligible: [{ username: "tpc-test-i", password: "Pa55-inel", phone: "+299321000" }] },
      reflector: "reflector@partner.example", hooks: ["reset"], policy: "eea", timeouts: { connect: 1, stream: 1, tls: 1, sasl: 1, bind: 1, iq: 1, stanza: 1 }, maxStanzaBytes: 4096, localTestEndpoint: false,
    };
    const recorded = redactConfig(config);
    const text = JSON.stringify(recorded);
    assert.ok(!text.includes("Pa55"), text);
    assert.ok(!text.includes("BEGIN CERTIFICATE"), text);
    assert.equal(recorded.tls.caSha256, sha256(config.tls.ca!));
    assert.deepEqual(recorded.accounts.static, [{ username: "tpc-test-a", password: "[redacted]", phone: "+33612345678" }]);
    assert.equal(recorded.accounts.ineligible[0]!.password, "[redacted]");
    assert.equal(recorded.reflector, "reflector@partner.example");
    assert.equal("optout" in recorded, false);
  });

  it("quotes the command line so that it can be pasted back", () => {
    assert.equal(shellJoin(["chatconform", "run", "--case", "encryption/", "--grep", "a b", "--out", "it's"]), "chatconform run --case encryption/ --grep 'a b' --out 'it'\\''s'");
    assert.equal(shellJoin(["x", ""]), "x ''");
  });

  it("keeps older format-1 reports valid and checks the new fields", () => {
    const info: RunInfo = {
      suite: { name: "chatconform", version: "0.1.0" }, profile: { id: "TPC", version: "1" }, endpoint: "xmpp://h:1", endpointDescription: "d",
      policy: "eea", startedAt: "2025-01-01T00:00:00.000Z", command: "c", caseSetSha256: "a".repeat(64), selection: { total: 0, selected: 0, filters: [] }, node: "v20", platform: "linux-x64",
    };
    const doc = buildReport(info, [], [], { finishedAt: "2025-01-01T00:00:01.000Z", incomplete: false });
    assert.equal(doc.suite.commit, "unknown");
    assert.deepEqual(validateReport(doc), []);
    const old = JSON.parse(JSON.stringify(doc)) as ReportDocument;
    delete old.suite.commit;
    assert.deepEqual(validateReport(old), [], "a report written before these fields");
    const bad = JSON.parse(JSON.stringify(doc)) as Record<string, Record<string, unknown>>;
    bad.suite!.commit = "HEAD";
    bad.run!.seed = -1;
    bad.run!.tls = { certificateSha256: "AB:CD", verified: true };
    bad.run!.config = { service: "x" };
    const problems = validateReport(bad);
    for (const where of ["suite.commit", "run.seed", "run.tls.certificateSha256", "run.config"]) assert.ok(problems.some((p) => p.startsWith(`${where}:`)), `${where} not checked: ${problems.join("; ")}`);
  });
});

describe("endpoint certificate", function () {
  this.timeout(60_000);
  let partner: ReferencePartner;
  before(async () => {
    partner = await startReferencePartner();
  });
  after(() => partner.stop());

  const fingerprint = (pem: string) => sha256(new X509Certificate(pem).raw);

  it("is the certificate the endpoint presents after STARTTLS, as XmppConnection captured it", async () => {
    const tls = await probeEndpointTls(partner.config);
    assert.equal(tls.error, undefined);
    assert.equal(tls.certificateSha256, fingerprint(partner.caCertPem));
    assert.equal(tls.verified, true);
    assert.equal(tls.subject, "CN=partner.test");
    assert.match(tls.protocol ?? "", /^TLSv1\.[23]$/);
    assert.ok(Date.parse(tls.validTo!) > Date.now());
    const conn = await XmppConnection.connectAndLogin({ service: partner.config.service, domain: partner.config.domain, tls: partner.config.tls }, {
      username: "tpc-test-evidence-fp", password: "evidence-fp-password", register: { phone: "+33612345670" },
    });
    assert.equal(conn.peerCertificate?.sha256, tls.certificateSha256);
    await conn.close();
  });

  it("names a certificate the configured trust refuses, and says why none was read when nothing listens", async () => {
    const stranger = await generateCertificate("stranger.test");
    const untrusted = await probeEndpointTls({ ...partner.config, tls: { ca: stranger.certPem } });
    assert.equal(untrusted.verified, false);
    assert.equal(untrusted.certificateSha256, fingerprint(partner.caCertPem));
    assert.match(untrusted.error ?? "", /not trusted/);

    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const down = await probeEndpointTls({ ...partner.config, service: `xmpp://127.0.0.1:${port}` });
    assert.equal(down.certificateSha256, undefined);
    assert.match(down.error ?? "", /refused/);
  });
});

/** Outgoing burst messages in the order they were sent, and the phone an actor registered with. */
function choicesOf(doc: ReportDocument, caseId: string): { order: string[]; phones: string[] } {
  const c = doc.cases.find((x) => x.id === caseId)!;
  const order = c.transcript.filter((e) => e.direction === "out" && /^message \d+ of 50$/.test(JSON.parse(e.decrypted ?? "{}").text ?? "")).map((e) => JSON.parse(e.decrypted!).text as string);
  const phones = c.transcript.flatMap((e) => [...e.xml.matchAll(/<phone>([^<]*)<\/phone>/g)].map((m) => m[1]!));
  return { order, phones };
}

describe("a seeded run", function () {
  this.timeout(120_000);

  async function run(seed: number | undefined, selected: CaseDefinition[]): Promise<ReportDocument> {
    const partner = await startReferencePartner();
    try {
      let events: EventEmitter<RunnerEvents> | undefined;
      await runSuite({ config: partner.config, endpointDescription: "test", requirements, allCases: cases, selected, jobs: 1, seed, command: "chatconform run --seed", attach: (e) => { events = e; statsFor(e); } });
      const doc = statsFor(events!).report();
      assert.deepEqual(validateReport(doc), []);
      return doc;
    } finally {
      await partner.stop();
    }
  }

  it("records seed, commit, redacted config and certificate, and replays its choices under the same seed", async () => {
    const selected = pick("encryption/out-of-order");
    const first = await run(4242, selected);
    assert.equal(first.run.seed, 4242);
    assert.match(first.suite.commit ?? "", /^([0-9a-f]{40}|unknown)$/);
    assert.equal(first.run.config?.service, first.endpoint);
    assert.equal(first.run.config?.accounts.ineligible[0]?.password, "[redacted]");
    assert.match(first.run.tls?.certificateSha256 ?? "", /^[0-9a-f]{64}$/);
    assert.equal(first.run.tls?.verified, true);
    assert.equal(first.cases[0]!.status, "pass", JSON.stringify(first.cases[0]!.reason));

    const a = choicesOf(first, "encryption/out-of-order");
    assert.equal(a.order.length, 50);
    assert.notDeepEqual(a.order, [...a.order].sort((x, y) => Number(x.split(" ")[1]) - Number(y.split(" ")[1])), "the burst was shuffled");
    assert.equal(a.phones.length, 1);
    const again = choicesOf(await run(4242, selected), "encryption/out-of-order");
    assert.deepEqual(again, a, "same seed, same choices (a fresh partner each time)");
    const other = choicesOf(await run(4243, selected), "encryption/out-of-order");
    assert.notDeepEqual(other.order, a.order);
  });

  it("draws and records a seed when none is given", async () => {
    const doc = await run(undefined, pick("transport/unknown-iq"));
    assert.ok(isSeed(doc.run.seed), String(doc.run.seed));
  });
});

// ---- redaction: every artifact of a signed run, scanned for the configured secrets

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

function allFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? allFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** The base64 of the longest prefix of `text` whose length is a multiple of 3: a substring of base64(text + anything). */
const base64Prefix = (text: string) => Buffer.from(text).subarray(0, Math.floor(Buffer.byteLength(text) / 3) * 3).toString("base64");

interface Needle {
  what: string;
  text: string;
}

/** Every way a secret could show up: as is, JSON-escaped, XML-escaped, base64, and inside SASL payloads. */
function needlesFor(accounts: { username: string; password: string }[], privateKeyPem: string): Needle[] {
  const needles: Needle[] = [];
  for (const { username, password } of accounts) {
    needles.push({ what: `${username}'s password`, text: password });
    needles.push({ what: `${username}'s password, JSON-escaped`, text: JSON.stringify(password).slice(1, -1) });
    needles.push({ what: `${username}'s password, XML-escaped`, text: password.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;") });
    needles.push({ what: `${username}'s password, base64`, text: base64Prefix(password) });
    needles.push({ what: `${username}'s SASL PLAIN payload`, text: Buffer.from(`\0${username}\0${password}`).toString("base64") });
    needles.push({ what: `${username}'s SCRAM client-first payload`, text: base64Prefix(`n,,n=${username},r=`) });
  }
  needles.push({ what: "a SCRAM client-final payload", text: Buffer.from("c=biws,r=").toString("base64") });
  const body = privateKeyPem.split("\n").filter((l) => l && !l.startsWith("-----"));
  needles.push({ what: "the private key's PEM body", text: body.join("") });
  for (const line of body) needles.push({ what: "a line of the private key's PEM", text: line });
  needles.push({ what: "the private key's PEM armour", text: "PRIVATE KEY-----" });
  return needles;
}

function scan(texts: { name: string; text: string }[], needles: Needle[]): string[] {
  const found: string[] = [];
  for (const { name, text } of texts) for (const n of needles) if (text.includes(n.text)) found.push(`${name}: ${n.what}`);
  return found;
}

describe("redaction across every artifact of a signed run", function () {
  this.timeout(180_000);
  let partner: ReferencePartner;
  before(async () => {
    partner = await startReferencePartner();
  });
  after(() => partner.stop());

  it("no password, SASL payload or private key in report.json, the bundle or the output", async () => {
    const dir = tmp();
    // Static accounts with known passwords (quote, backslash, ampersand: escaping must not hide a leak).
    const accounts = [
      { username: "tpc-test-evidence-a", password: `St4tic-"alpha"\\pw&1`, phone: "+33612345601" },
      { username: "tpc-test-evidence-b", password: "St4tic-bravo-pw-2c9e", phone: "+33612345602" },
    ];
    for (const a of accounts) {
      const conn = await XmppConnection.connectAndLogin({ service: partner.config.service, domain: partner.config.domain, tls: partner.config.tls }, { ...a, register: { phone: a.phone } });
      await conn.close();
    }
    const ineligible = partner.config.accounts.ineligible;
    writeFileSync(path.join(dir, "ca.pem"), partner.caCertPem);
    const configFile = path.join(dir, "endpoint.yaml");
    writeFileSync(configFile, toYaml({
      endpoint: partner.config.service, domain: partner.config.domain, tls: { ca: "ca.pem" },
      accounts: { mode: "static", static: accounts, ineligible },
      reflector: partner.config.reflector, optout: partner.config.optout, hooks: partner.config.hooks, localTestEndpoint: true,
    }));
    const keys = path.join(dir, "keys");
    writeKeyPair(keys);
    const out = path.join(dir, "reports");
    const result = await cli(["run", "--config", configFile, "--out", out, "--jobs", "2", "--seed", "77", "--sign", path.join(keys, PRIVATE_KEY_FILE),
      "--case", "encryption/text-roundtrip,eligibility/message-from-ineligible,transport/plain-only-over-tls,transport/unknown-iq"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);

    const runDir = path.join(out, readdirSync(out).find((d) => d !== "latest")!);
    const files = allFiles(runDir);
    assert.ok(files.some((f) => f.endsWith(path.join("bundle", "manifest.sig"))), files.join("\n"));
    const texts = [...files.map((f) => ({ name: path.relative(dir, f), text: readFileSync(f, "latin1") })), { name: "stdout", text: result.stdout }, { name: "stderr", text: result.stderr }];
    const needles = needlesFor([...accounts, ...ineligible], readFileSync(path.join(keys, PRIVATE_KEY_FILE), "utf8"));
    assert.deepEqual(scan(texts, needles), []);

    // The scan is not vacuous: the static accounts really authenticated (SCRAM, redacted) and the scanner finds a planted secret.
    const report = JSON.parse(readFileSync(path.join(runDir, "report.json"), "utf8")) as ReportDocument;
    const roundtrip = report.cases.find((c) => c.id === "encryption/text-roundtrip")!;
    assert.equal(roundtrip.status, "pass", roundtrip.reason);
    assert.ok(roundtrip.transcript.some((e) => /^<auth [^>]*mechanism="SCRAM-SHA-1"[^>]*>\[redacted\]<\/auth>$/.test(e.xml)), "a redacted SCRAM exchange");
    assert.ok(roundtrip.transcript.some((e) => e.xml.includes(accounts[0]!.username) || e.xml.includes(accounts[1]!.username)));
    assert.equal(report.cases.find((c) => c.id === "eligibility/message-from-ineligible")!.status, "pass");
    assert.deepEqual(report.run.config?.accounts.static.map((a) => a.password), ["[redacted]", "[redacted]"]);
    assert.equal(report.run.seed, 77);
    assert.match(report.run.command, /--seed 77 --sign /);
    const planted = scan([{ name: "planted", text: `x${JSON.stringify({ p: accounts[0]!.password })}x` }], needles);
    assert.ok(planted.some((p) => /JSON-escaped/.test(p)), planted.join("; "));

    const verified = verifyBundle(runDir, { publicKey: loadPublicKey(path.join(keys, PUBLIC_KEY_FILE)) });
    assert.equal(verified.valid, true, JSON.stringify(verified.checks.filter((c) => !c.ok)));
  });
});
