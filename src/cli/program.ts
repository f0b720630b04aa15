// The command line program: with main.ts, the only place that prints and decides exit codes.
// Exit codes: 0 compliant (or with warnings), 1 non-compliant, 2 incomplete, 3 bad input, 4 internal error.
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import net from "node:net";
import path from "node:path";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { stringify as toYaml } from "yaml";
import { CaseLoadError, DEFAULT_CASES_DIR, formatProblem, listCaseFiles, loadCases } from "../cases/loader.ts";
import type { CaseDefinition } from "../cases/loader.ts";
import { SelectionError, parseShard, selectCases } from "../cases/select.ts";
import type { Shard } from "../cases/select.ts";
import { loadRequirements } from "../checks/requirements.ts";
import { exitCodeFor } from "../checks/verdict.ts";
import { ConfigError, configSecrets, loadConfigFile } from "../config/config.ts";
import type { EndpointConfig } from "../config/config.ts";
import { PARTNER_BACKENDS, UnknownMutantError, startReferencePartner } from "../partner/index.ts";
import type { PartnerBackend } from "../partner/index.ts";
import { ProsodyNotInstalledError } from "../partner/prosody/availability.ts";
import { ProsodyStartError } from "../partner/prosody/launcher.ts";
import { MutantNotOnProsodyError, PROSODY_MUTANTS, PROSODY_SERVER_MUTANTS, whyNotOnProsody } from "../partner/prosody/mutants.ts";
import type { ReferencePartner } from "../partner/index.ts";
import { MUTANTS } from "../partner/mutants.ts";
import { DEFAULT_REPORTERS, ReporterError, createReporters, parseReporterList, resolveReporters } from "../report/reporters.ts";
import { runSelftest } from "../runner/selftest.ts";
import { SUITE, runSuite } from "../runner/suite.ts";
import { eligibilityCommand } from "./eligibility.ts";
import type { EligibilityFlags } from "./eligibility.ts";
import { POLICIES } from "../eligibility/classify.ts";
import { reportRenderCommand } from "./report-render.ts";
import type { ReportRenderFlags } from "./report-render.ts";
import { writeBundle } from "../report/bundle.ts";
import { SigningKeyError, loadSigningKey } from "../report/signing.ts";
import type { SigningKey } from "../report/signing.ts";
import { shellJoin } from "../runner/evidence.ts";
import { MAX_SEED } from "../runner/seed.ts";
import { keygenCommand } from "./keygen.ts";
import { verifyCommand } from "./verify.ts";
import { handleInterrupts } from "./interrupts.ts";
import { ExpectationsError, exitCodeWithExpectations, exitLine, loadExpectations, outcomeLine } from "../report/expect.ts";
import type { ExpectationList, ExpectationsRecord } from "../report/expect.ts";
import { statsFor } from "../report/stats.ts";
import type { StatsCollector } from "../report/stats.ts";
import { diffCommand } from "./diff.ts";
import type { DiffFlags } from "./diff.ts";
import { mergeCommand } from "./merge.ts";
import type { MergeFlags } from "./merge.ts";

export const EXIT = { ok: 0, nonCompliant: 1, incomplete: 2, badInput: 3, internal: 4, interruptedTwice: 130 } as const;

class UsageError extends Error {}

const out = (line = "") => process.stdout.write(`${line}\n`);
const err = (line = "") => process.stderr.write(`${line}\n`);

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError("must be a whole number from 1 to 64");
  return n;
}

function seedArg(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n > MAX_SEED) throw new InvalidArgumentError(`must be a whole number from 0 to ${MAX_SEED}`);
  return n;
}

function shardArg(value: string): Shard {
  try {
    return parseShard(value);
  } catch (e) {
    if (e instanceof SelectionError) throw new InvalidArgumentError("must be i/n with 1 ≤ i ≤ n (e.g. 2/4)");
    throw e;
  }
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(",").map((v) => v.trim()).filter(Boolean)];
}

function loadCatalogue(files?: string[]): { cases: CaseDefinition[]; requirements: ReturnType<typeof loadRequirements> } {
  const requirements = loadRequirements();
  const { cases, problems } = loadCases(requirements, files ?? listCaseFiles(DEFAULT_CASES_DIR));
  if (problems.length) throw new CaseLoadError(problems);
  return { cases, requirements };
}

function timestampDir(base: string): string {
  const stamp = new Date().toISOString().replace(/:/g, "-").replace(/\.\d+Z$/, "Z");
  let dir = path.join(base, stamp);
  for (let i = 2; ; i++) {
    try {
      mkdirSync(dir, { recursive: false });
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        try {
          mkdirSync(base, { recursive: true });
        } catch (inner) {
          throw new UsageError(`--out ${base}: cannot create the directory (${(inner as Error).message})`);
        }
        continue;
      }
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new UsageError(`--out ${base}: cannot create the run's directory there (${(e as Error).message})`);
      dir = path.join(base, `${stamp}-${i}`);
    }
  }
}

function pointLatest(base: string, dir: string): void {
  const latest = path.join(base, "latest");
  rmSync(latest, { force: true, recursive: false });
  try {
    symlinkSync(path.basename(dir), latest);
  } catch {
    // A filesystem without symlinks still gets the report; only the shortcut is missing.
  }
}

interface RunFlags {
  endpoint?: string;
  config?: string;
  partnerMutant?: string;
  partnerBackend?: string;
  policy?: string;
  case?: string[];
  grep?: string;
  tag?: string[];
  jobs: number;
  out: string;
  quiet?: boolean;
  verbose?: boolean;
  color?: boolean;
  reporter?: string[];
  seed?: number;
  sign?: string;
  shard?: Shard;
  expect?: string;
  ca?: string;
  insecure?: boolean;
}

async function runCommand(flags: RunFlags): Promise<number> {
  const { cases, requirements } = loadCatalogue();
  let selection;
  try {
    selection = selectCases(cases, { cases: flags.case, grep: flags.grep, tags: flags.tag, shard: flags.shard });
  } catch (e) {
    if (e instanceof SelectionError) throw new UsageError(e.message);
    throw e;
  }
  if (flags.partnerMutant && (flags.endpoint || flags.config)) throw new UsageError("--partner-mutant runs the built-in reference partner; it cannot be combined with --endpoint or --config");
  if (flags.partnerBackend && (flags.endpoint || flags.config)) throw new UsageError("--partner-backend picks the server of the built-in reference partner; it cannot be combined with --endpoint or --config");
  const backend = backendArg(flags.partnerBackend, "--partner-backend");
  // The known failures are checked before the run (ExpectationsError: exit 3), so a bad list costs no run.
  let expectations: ExpectationList | undefined;
  if (flags.expect) expectations = loadExpectations(flags.expect, { caseIds: cases.map((c) => c.id), requirementIds: requirements.map((r) => r.id) });
  // Reporters are checked (modules imported) before the run, so a bad --reporter costs no run.
  let reporterList;
  try {
    reporterList = await resolveReporters(parseReporterList(flags.reporter ?? [...DEFAULT_REPORTERS]));
  } catch (e) {
    if (e instanceof ReporterError) throw new UsageError(e.message);
    throw e;
  }
  // The signing key is checked before the run, so a bad --sign costs no run.
  let signingKey: SigningKey | undefined;
  if (flags.sign) {
    try {
      signingKey = loadSigningKey(flags.sign);
    } catch (e) {
      if (e instanceof SigningKeyError) throw new UsageError(e.message);
      throw e;
    }
    for (const warning of signingKey.warnings) err(`chatconform: warning: ${warning}`);
  }
  const base = path.resolve(flags.out);
  let dir: string | undefined;
  let config: EndpointConfig;
  let partner: ReferencePartner | undefined;
  let endpointDescription: string;
  if ((flags.ca || flags.insecure) && !flags.config) throw new UsageError("--ca and --insecure apply to an endpoint given with --config; the built-in partner needs neither");
  if (flags.config) {
    config = loadConfigFile(flags.config, { endpoint: flags.endpoint, policy: flags.policy, ca: flags.ca, insecure: flags.insecure });
    if (config.tls.insecure) err("chatconform: warning: TLS certificate verification is off (--insecure or tls.insecure): the endpoint's identity is not checked; the report records it (run.config.tls.insecure)");
    endpointDescription = `config ${flags.config}`;
  } else if (flags.endpoint) {
    throw new UsageError("--endpoint needs --config FILE describing the endpoint (domain, accounts, reflector, hooks); see README");
  } else {
    if (flags.policy && !(POLICIES as readonly string[]).includes(flags.policy)) throw new UsageError(`--policy ${flags.policy}: must be ${POLICIES.join(" or ")}`);
    // The run's directory before the partner starts: an --out that cannot be written stops here,
    // with nothing left running.
    dir = timestampDir(base);
    try {
      partner = await startReferencePartner({ backend, mutant: flags.partnerMutant, policy: flags.policy as never });
    } catch (e) {
      rmSync(dir, { recursive: true, force: true }); // still empty: nothing ran
      throw e;
    }
    config = partner.config;
    const server = backend === "prosody" ? "on Prosody" : "in-process";
    endpointDescription = flags.partnerMutant ? `built-in reference partner (${server}), mutant ${flags.partnerMutant}` : `built-in reference partner (${server})`;
  }
  const runDir = dir ?? timestampDir(base);

  const controller = new AbortController();
  const interrupts = handleInterrupts({
    controller, err, exit: (code) => process.exit(code), exitCode: EXIT.interruptedTwice,
    firstMessage: "no new cases start; running cases get a short grace, then the reports are written",
  });

  try {
    const reporters = await createReporters(reporterList, { outDir: runDir, secrets: configSecrets(config), quiet: flags.quiet, verbose: flags.verbose, color: flags.color === false ? false : undefined }).catch((e: unknown) => {
      throw e instanceof ReporterError ? new UsageError(e.message) : e;
    });
    let stats: StatsCollector | undefined;
    const result = await runSuite({
      config,
      endpointDescription,
      requirements,
      allCases: cases,
      selected: selection.selected,
      skipped: selection.skipped,
      filters: selection.filters,
      jobs: flags.jobs,
      mutant: flags.partnerMutant,
      command: shellJoin(["chatconform", ...process.argv.slice(2)]),
      seed: flags.seed,
      signal: controller.signal,
      attach: (events) => {
        // The shared stats collector records the shard and the known failures in report.json.
        stats = statsFor(events).setExtras({ shard: selection.shard, expectations });
        reporters.attach(events);
      },
    });
    await reporters.done();
    if (signingKey) {
      const bundle = writeBundle({ runDir, key: signingKey, secrets: configSecrets(config) });
      if (!flags.quiet) out(`Bundle: ${bundle.dir} (${bundle.files.length} files, signed with key ${signingKey.keyId})`);
    }
    pointLatest(base, runDir);
    // The console reporter prints the verdict (quiet or not); without it, stdout stays the reporters' own.
    if (!reporters.hasConsole) {
      // The console reporter says why a run is incomplete; without it, stderr does (once).
      if (result.incompleteReason) err(`chatconform: run incomplete: ${result.incompleteReason}`);
      err(`${result.verdict} — ${reporters.reportPath}`);
    }
    if (!expectations) return exitCodeFor(result.verdict);
    // With --expect the verdict stays verdict.ts's; only the exit code takes the known failures into account.
    const record: ExpectationsRecord | undefined = stats?.expectations();
    const gate = { requirements: result.requirements, incomplete: result.incomplete, verdict: result.verdict, expectations: record };
    if (!reporters.hasConsole && record) {
      err(`known failures (${record.file}): ${outcomeLine(record)}`);
      err(exitLine(gate));
    }
    return exitCodeWithExpectations(gate);
  } finally {
    interrupts.remove();
    // Bounded: a partner that does not stop cannot keep the process from exiting (main.ts exits).
    if (partner) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([partner.stop(), new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)))]).catch(() => undefined);
      clearTimeout(timer);
    }
  }
}

/** --partner-backend / --backend: builtin (default) or prosody. */
function backendArg(value: string | undefined, flag: string): PartnerBackend {
  if (value === undefined) return "builtin";
  if (!(PARTNER_BACKENDS as readonly string[]).includes(value)) throw new UsageError(`${flag} ${value}: must be one of ${PARTNER_BACKENDS.join(", ")}`);
  return value as PartnerBackend;
}

/** The reference partner is a test fixture with known passwords: it listens on loopback only. */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || (net.isIPv4(host) && host.startsWith("127."));
}

async function partnerCommand(flags: { port: number; host: string; mutant?: string; policy?: string; backend?: string }): Promise<number> {
  const backend = backendArg(flags.backend, "--backend");
  if (!isLoopback(flags.host)) throw new UsageError(`--host ${flags.host}: the reference partner listens on a loopback address only (127.0.0.1, ::1 or localhost); it is a test fixture, not a server to expose`);
  const partner = await startReferencePartner({ backend, port: flags.port, host: flags.host, mutant: flags.mutant, policy: flags.policy as never });
  const dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-partner-"));
  const caFile = path.join(dir, "partner-ca.pem");
  writeFileSync(caFile, partner.caCertPem);
  const { config } = partner;
  const file = {
    endpoint: config.service,
    domain: config.domain,
    tls: { ca: caFile },
    accounts: { mode: config.accounts.mode, prefix: config.accounts.prefix, ineligible: config.accounts.ineligible },
    reflector: config.reflector,
    optout: config.optout,
    hooks: config.hooks,
    policy: config.policy,
    // The waits the backend needs (the Prosody-backed partner takes about twice as long to answer).
    timeouts: config.timeouts,
    maxStanzaBytes: config.maxStanzaBytes,
    localTestEndpoint: true,
  };
  const configFile = path.join(dir, "endpoint.yaml");
  writeFileSync(configFile, toYaml(file));
  out(`# chatconform reference partner${backend === "prosody" ? " on Prosody" : ""}${flags.mutant ? ` (mutant ${flags.mutant})` : ""} listening on ${config.service}`);
  const prosodyDir = (partner as { dir?: string }).dir;
  if (prosodyDir) out(`# Prosody's config, TPC/1 module data and uploads: ${prosodyDir} (removed when the partner stops; docs/prosody.md)`);
  out(`# endpoint config written to ${configFile}; in another shell:`);
  out(`#   npx chatconform run --config ${configFile}`);
  // The passwords stay in the file: the terminal (and its scrollback) only says where they are.
  const shown = { ...file, accounts: { ...file.accounts, ineligible: file.accounts.ineligible.map((a) => ({ ...a, password: "(in the file)" })) } };
  out(toYaml(shown).trimEnd());
  out("# Ctrl-C stops the partner.");
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await partner.stop();
  rmSync(dir, { recursive: true, force: true });
  return EXIT.ok;
}

function listCommand(flags: { json?: boolean }): number {
  const { cases } = loadCatalogue();
  if (flags.json) {
    out(JSON.stringify(cases.map((c) => ({ id: c.id, title: c.title, file: c.file, requirements: c.requirements, level: c.level, needs: c.needs, tags: c.tags, sha256: c.sha256 })), null, 2));
    return EXIT.ok;
  }
  const width = Math.max(...cases.map((c) => c.id.length));
  for (const c of cases) out(`${c.id.padEnd(width)}  ${c.requirements.join(",").padEnd(16)} ${c.title}`);
  out(`\n${cases.length} cases`);
  return EXIT.ok;
}

function requirementsCommand(flags: { json?: boolean }): number {
  const { cases, requirements } = loadCatalogue();
  const rows = requirements.map((r) => ({ ...r, cases: cases.filter((c) => c.requirements.includes(r.id)).map((c) => c.id) }));
  if (flags.json) {
    out(JSON.stringify({ profile: "TPC/1", requirements: rows, uncovered: rows.filter((r) => r.cases.length === 0).map((r) => r.id) }, null, 2));
    return EXIT.ok;
  }
  for (const r of rows) {
    const coverage = r.cases.length ? `${r.cases.length} case(s)` : r.level === "MUST" ? "UNCOVERED" : "uncovered";
    out(`${r.id}  ${r.level.padEnd(6)} ${coverage.padEnd(10)} ${r.text}`);
  }
  const uncoveredMust = rows.filter((r) => r.level === "MUST" && r.cases.length === 0).length;
  out(`\n${rows.length} requirements, ${rows.filter((r) => r.cases.length).length} covered, ${uncoveredMust} MUST requirement(s) without a case`);
  return EXIT.ok;
}

function lintCommand(files: string[]): number {
  const requirements = loadRequirements();
  const targets = files.length ? files.map((f) => path.resolve(f)) : listCaseFiles(DEFAULT_CASES_DIR);
  const { cases, problems } = loadCases(requirements, targets);
  for (const p of problems) err(formatProblem(p));
  if (problems.length) {
    err(`\n${problems.length} problem(s) in ${targets.length} file(s)`);
    return EXIT.badInput;
  }
  out(`${cases.length} case file(s) OK`);
  return EXIT.ok;
}

async function selftestCommand(flags: { json?: boolean; jobs: number; parallel?: number; mutant?: string[]; backend?: string; keepReports?: string; seed?: number }): Promise<number> {
  const { cases, requirements } = loadCatalogue();
  const backend = backendArg(flags.backend, "--backend");
  for (const name of flags.mutant ?? []) {
    const mutant = MUTANTS.find((m) => m.name === name);
    if (!mutant) throw new UnknownMutantError(name);
    const why = backend === "prosody" ? whyNotOnProsody(mutant) : undefined;
    if (why) throw new MutantNotOnProsodyError(name, why);
  }
  // On Prosody, the mutants that exist there (src/partner/prosody/mutants.ts); by default its server-side ones.
  const available = backend === "prosody" ? PROSODY_MUTANTS : MUTANTS;
  const mutants = flags.mutant?.length ? available.filter((m) => flags.mutant!.includes(m.name)) : backend === "prosody" ? PROSODY_SERVER_MUTANTS : MUTANTS;
  // The first signal stops the partners' runs (each writes its report, marked incomplete) and the
  // selftest ends incomplete; a second one exits at once, as `run` does.
  const controller = new AbortController();
  const interrupts = handleInterrupts({
    controller, err, exit: (code) => process.exit(code), exitCode: EXIT.interruptedTwice,
    firstMessage: "stopping the partners' runs; no new ones start",
  });
  const started = Date.now();
  if (!flags.json) out(`Selftest on the ${backend} backend: the reference partner under ${POLICIES.join(" and ")}, then ${mutants.length} mutant(s), each run in its own process`);
  const { rows, ok } = await runSelftest({
    backend, keepReportsIn: flags.keepReports ? path.resolve(flags.keepReports) : undefined, seed: flags.seed,
    jobs: flags.jobs, parallel: flags.parallel, mutants, signal: controller.signal,
    onRow: (row) => {
      if (row.retried) err(`selftest: the run of ${row.partner} hung and was stopped; the row judges a second run`);
      if (flags.json) return;
      const mark = row.ok ? "✔" : "✖";
      const detail = row.reference
        ? `${row.verdict}`
        : `declared ${row.declared.join(",") || "-"}; failed ${row.failed.join(",") || "-"}${row.missed.length ? `; MISSED ${row.missed.join(",")}` : ""}${row.collateral.length ? `; COLLATERAL ${row.collateral.join(",")}` : ""}`;
      out(`${mark} ${row.partner.padEnd(34)} ${detail}  (${(row.durationMs / 1000).toFixed(1)} s)`);
      for (const e of row.errors) out(`    ${e}`);
    },
  });
  interrupts.remove();
  const uncovered = requirements.filter((r) => !cases.some((c) => c.requirements.includes(r.id))).map((r) => r.id);
  const killed = rows.filter((r) => !r.reference && r.ok).length;
  const references = rows.filter((r) => r.reference);
  const referenceOk = references.length > 0 && references.every((r) => r.ok);
  if (flags.json) out(JSON.stringify({ ok, interrupted: controller.signal.aborted, rows, uncovered }, null, 2));
  else if (controller.signal.aborted) out(`\nselftest INCOMPLETE (interrupted): ${rows.length} of ${mutants.length + POLICIES.length} partners judged; ${killed} mutants killed exactly so far`);
  else out(`\n${ok ? "selftest OK" : "selftest FAILED"}: ${killed}/${mutants.length} mutants killed exactly; reference partner ${referenceOk ? "compliant" : "NOT compliant"} under ${references.map((r) => r.policy).join(" and ")} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  if (controller.signal.aborted) return EXIT.incomplete;
  return ok ? EXIT.ok : EXIT.nonCompliant;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("chatconform")
    .description("Conformance suite for TPC/1, end-to-end-encrypted third-party chats (DMA Art. 7)")
    .version(SUITE.version)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });

  program.command("run")
    .description("run the catalogue against an endpoint (default: the built-in reference partner)")
    .option("--endpoint <url>", "xmpp://HOST:PORT or xmpps://HOST:PORT (overrides the config's endpoint)")
    .option("--config <file>", "endpoint config (YAML), see README")
    .option("--partner-mutant <name>", "run against the built-in partner with a known fault (see selftest)")
    .option("--partner-backend <name>", "server of the built-in partner: builtin (in-process, default) or prosody (needs Prosody installed; docs/prosody.md)")
    .option("--policy <name>", "eligibility policy: eea or whatsapp-european-region")
    .option("--case <ids>", "case ids or prefixes (encryption/, encryption/bundle-*), comma-separated, repeatable", collect)
    .option("--grep <regex>", "run cases whose id or title matches")
    .option("--tag <tags>", "run cases with any of these tags", collect)
    .option("--jobs <n>", "cases in parallel", positiveInt, 4)
    .option("--out <dir>", "reports directory", "reports")
    .option("--quiet", "print only the verdict line")
    .option("--verbose", "print full stanzas on failures")
    .option("--no-color", "no colours")
    .option("--reporter <list>", "reporters, comma-separated, repeatable: console, json, junit, html, markdown, or a module path; options as NAME:KEY=VALUE (docs/reports.md); default console,json", collect)
    .option("--seed <n>", "seed of the run's non-cryptographic choices (shuffles, prekey picks, phone digits); replays a recorded run", seedArg)
    .option("--sign <keyfile>", "write a signed bundle to <run dir>/bundle/ with this Ed25519 private key (chatconform keygen)")
    .option("--shard <i/n>", "run only part i of n of the selected cases (sorted by id, dealt round-robin); chatconform merge joins the parts (docs/ci.md)", shardArg)
    .option("--expect <file>", "known failures (YAML, docs/ci.md): a listed failure does not fail the exit code; a listed case that passes does. The verdict is unchanged")
    .option("--ca <file>", "PEM of the CA (or self-signed certificate) the endpoint's TLS certificate must chain to (overrides the config's tls.ca)")
    .option("--insecure", "do not verify the endpoint's TLS certificate (overrides tls.insecure; the report records it)")
    .action(async (flags: RunFlags) => {
      process.exitCode = await runCommand(flags);
    });

  program.command("partner")
    .description("run the reference partner standalone and print its endpoint config")
    .option("--port <n>", "c2s port on the host", (v) => Number(v), 5222)
    .option("--host <addr>", "loopback address to bind (127.0.0.1, ::1 or localhost)", "127.0.0.1")
    .option("--mutant <name>", "start a known-bad partner")
    .option("--policy <name>", "eligibility policy")
    .option("--backend <name>", "builtin (in-process, default) or prosody (a real Prosody with the TPC/1 module; docs/prosody.md)")
    .action(async (flags) => {
      process.exitCode = await partnerCommand(flags);
    });

  program.command("list").description("list the cases").option("--json", "JSON output").action((flags) => {
    process.exitCode = listCommand(flags);
  });
  program.command("requirements").description("list the requirements and the cases covering them").option("--json", "JSON output").action((flags) => {
    process.exitCode = requirementsCommand(flags);
  });
  program.command("eligibility")
    .description("classify gatekeeper numbers: eligible or not under a policy, with the rule, reason and source")
    .argument("<numbers...>", "phone numbers in international form (+CC or 00CC), one argument each")
    .option("--policy <name>", "eligibility policy: eea or whatsapp-european-region", "eea")
    .option("--json", "JSON output")
    .action((numbers: string[], flags: EligibilityFlags) => {
      process.exitCode = eligibilityCommand(numbers, flags, { out, err });
    });
  program.command("keygen")
    .description("make an Ed25519 key pair for run --sign (the private key with mode 0600)")
    .option("--out <dir>", "directory for chatconform-signing.key and chatconform-signing.pub", ".")
    .action((flags: { out: string }) => {
      process.exitCode = keygenCommand(flags, { out, err });
    });
  program.command("verify")
    .description("check a signed bundle: signature, every file's hash, no file added or removed, the verdict recomputed")
    .argument("<bundle>", "the bundle directory, or the run directory that holds it (reports/latest)")
    .option("--pubkey <file>", "the signer's public key; without it only integrity is proven, not origin (exit 2)")
    .option("--trust-embedded-key", "accept the public key the bundle carries (integrity only; the output still says the signer is not authenticated)")
    .action((bundle: string, flags: { pubkey?: string; trustEmbeddedKey?: boolean }) => {
      process.exitCode = verifyCommand(bundle, flags, { out, err });
    });
  const report = program.command("report").description("work with report.json files");
  report.command("render")
    .description("render a report.json again as html, junit or markdown, without re-running")
    .argument("<report>", "a report.json, e.g. reports/latest/report.json")
    .requiredOption("--format <format>", "html, junit or markdown, with options as in --reporter (junit:transcript=all), or a module exporting render()")
    .option("-o, --output <file>", "where to write; - for stdout (default)")
    .action(async (file: string, flags: ReportRenderFlags) => {
      // Resolves once the text is handed to the OS: main() exits right after, and a pipe would lose the rest.
      const write = (text: string) => new Promise<void>((resolve, reject) => process.stdout.write(text, (e) => (e ? reject(e) : resolve())));
      process.exitCode = await reportRenderCommand(file, flags, { write, err });
    });
  program.command("diff")
    .description("compare two reports: regressed, fixed, other changes, new and removed cases and requirements; exit 1 on a regression")
    .argument("<old>", "the earlier report.json")
    .argument("<new>", "the later report.json")
    .option("--json", "JSON output")
    .option("--allow-different-context", "compare reports of another endpoint, policy, suite, profile or changed case files anyway")
    .action((oldFile: string, newFile: string, flags: DiffFlags) => {
      process.exitCode = diffCommand(oldFile, newFile, flags, { out, err });
    });
  program.command("merge")
    .description("merge the reports of the shards of a run (or of runs of disjoint selections) into one; exit as run would for it")
    .argument("<reports...>", "report.json files")
    .option("-o, --output <file>", "where to write the merged report.json; - for stdout (default)")
    .action(async (files: string[], flags: MergeFlags) => {
      const write = (text: string) => new Promise<void>((resolve, reject) => process.stdout.write(text, (e) => (e ? reject(e) : resolve())));
      process.exitCode = await mergeCommand(files, flags, { out, err, write, command: shellJoin(["chatconform", ...process.argv.slice(2)]) });
    });
  program.command("lint").description("validate case files").argument("[files...]", "case files (default: the whole catalogue)").action((files: string[]) => {
    process.exitCode = lintCommand(files);
  });
  program.command("selftest")
    .description("run the catalogue against the reference partner and every mutant; print the kill matrix")
    .option("--json", "JSON output")
    .option("--jobs <n>", "cases in parallel within each partner's run", positiveInt, 4)
    .option("--parallel <n>", "partners run at once, each in its own process (default: the number of cores)", positiveInt)
    .option("--mutant <names>", "only these mutants", collect)
    .option("--backend <name>", "server of the reference partner and its mutants: builtin (default) or prosody (only the mutants that exist there)")
    .option("--keep-reports <dir>", "keep every partner's run (report.json) in <dir>/<partner>/ (e.g. to compare backends)")
    .option("--seed <n>", "run seed of every partner's run (two selftests with one seed draw the same values)", seedArg)
    .action(async (flags) => {
      process.exitCode = await selftestCommand(flags);
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return EXIT.ok;
      return EXIT.badInput;
    }
    if (e instanceof UsageError || e instanceof SelectionError || e instanceof UnknownMutantError || e instanceof MutantNotOnProsodyError || e instanceof ProsodyNotInstalledError || e instanceof ProsodyStartError) {
      err(`chatconform: ${e.message}`);
      return EXIT.badInput;
    }
    if (e instanceof ConfigError || e instanceof CaseLoadError || e instanceof ExpectationsError) {
      err(e.message);
      return EXIT.badInput;
    }
    err(`chatconform: internal error: ${(e as Error).stack ?? e}`);
    return EXIT.internal;
  }
}

