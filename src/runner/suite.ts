// One run of the catalogue against one endpoint: the library entry the CLI and selftest share.
import { readFileSync } from "node:fs";
import type { EventEmitter } from "node:events";
import { caseSetSha256 } from "../cases/loader.ts";
import type { CaseDefinition } from "../cases/loader.ts";
import type { CaseResult, Requirement, Verdict } from "../checks/model.ts";
import type { EndpointConfig } from "../config/config.ts";
import { PROFILE } from "../checks/requirements.ts";
import { aggregateRequirements, computeVerdict, summarize } from "../checks/verdict.ts";
import type { RunnerEvents, RunInfo } from "./events.ts";
import { Runner } from "./runner.ts";
import { gitCommit, probeEndpointTls, redactConfig } from "./evidence.ts";
import { isSeed, randomSeed, MAX_SEED } from "./seed.ts";
import { preflight } from "./preflight.ts";
import type { PreflightFailure } from "./preflight.ts";

const packageJson = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { name: string; version: string };
export const SUITE = { name: packageJson.name, version: packageJson.version };

export interface SuiteRunOptions {
  config: EndpointConfig;
  endpointDescription: string;
  requirements: Requirement[];
  /** The whole catalogue (for the case-set hash) and what was selected from it. */
  allCases: CaseDefinition[];
  selected: CaseDefinition[];
  skipped?: { case: CaseDefinition; reason: string }[];
  filters?: string[];
  jobs?: number;
  mutant?: string;
  command?: string;
  /** Seed of the run's non-cryptographic choices (0 … 2^32-1); default: a fresh random one. Recorded either way. */
  seed?: number;
  signal?: AbortSignal;
  /** Reporters subscribe here before the run starts. */
  attach?: (events: EventEmitter<RunnerEvents>) => void;
}

export interface SuiteRunResult {
  verdict: Verdict;
  results: CaseResult[];
  requirements: ReturnType<typeof aggregateRequirements>;
  summary: ReturnType<typeof summarize>;
  incomplete: boolean;
  incompleteReason?: string;
  /** The first connection failed: what, and what to try (also the start of incompleteReason). */
  preflight: PreflightFailure | null;
}

export async function runSuite(options: SuiteRunOptions): Promise<SuiteRunResult> {
  if (options.seed !== undefined && !isSeed(options.seed)) throw new RangeError(`seed ${options.seed} is not an integer from 0 to ${MAX_SEED}`);
  const startedAt = new Date().toISOString();
  // Before the cases, at the same time: the certificate the endpoint presents (evidence), and the
  // first connection (preflight: reach, stream, TLS, and a login with a static account), so a dead
  // or misconfigured endpoint is said once instead of failing every case.
  const [tls, firstConnection] = await Promise.all([probeEndpointTls(options.config), preflight(options.config, options.signal)]);
  const runInfo: RunInfo = {
    suite: { ...SUITE, commit: gitCommit() },
    profile: PROFILE,
    endpoint: options.config.service,
    endpointDescription: options.endpointDescription,
    mutant: options.mutant,
    policy: options.config.policy,
    startedAt,
    command: options.command ?? "",
    caseSetSha256: caseSetSha256(options.allCases),
    selection: { total: options.allCases.length, selected: options.selected.length, filters: options.filters ?? [] },
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    seed: options.seed ?? randomSeed(),
    config: redactConfig(options.config),
    tls,
  };
  const runner = new Runner({
    config: options.config,
    cases: options.selected,
    skipped: options.skipped,
    requirements: options.requirements,
    runInfo,
    jobs: options.jobs,
    signal: options.signal,
    graceMs: options.config.timeouts.grace,
    preflight: firstConnection,
  });
  options.attach?.(runner);
  const outcome = await runner.run();
  const requirements = aggregateRequirements(options.requirements, outcome.results);
  const verdict = computeVerdict(requirements, { incomplete: outcome.incomplete });
  return {
    verdict,
    results: outcome.results,
    requirements,
    summary: summarize(outcome.results),
    incomplete: outcome.incomplete,
    incompleteReason: outcome.incompleteReason,
    preflight: firstConnection,
  };
}
