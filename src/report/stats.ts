// The stats collector: subscribes once to the runner's events and keeps what the reporters need
// (mocha's stats collector). Reporters read from it; they never reach into the runner.
import type { EventEmitter } from "node:events";
import type { CaseResult, CheckResult, Requirement, RunSummary, Verdict } from "../checks/model.ts";
import { aggregateRequirements, computeVerdict, summarize } from "../checks/verdict.ts";
import type { AggregatedRequirement } from "../checks/verdict.ts";
import type { Shard } from "../cases/select.ts";
import { evaluateExpectations } from "./expect.ts";
import type { ExpectationList, ExpectationsRecord } from "./expect.ts";
import type { EndpointTlsInfo, RedactedConfig, RunEndInfo, RunInfo, RunnerEvents } from "../runner/events.ts";

/** Version of the report.json document; a change to its meaning or shape bumps it. */
export const REPORT_FORMAT = 1;

/** A failed check in the report: the CheckResult without its (always false) `ok`. */
export type ReportFailure = Omit<CheckResult, "ok">;

/** A case result in the report. */
export interface ReportCase extends Omit<CaseResult, "failures"> {
  failures: ReportFailure[];
}

/** One report a merged report was made from (`chatconform merge`). */
export interface MergedRun {
  command: string;
  endpoint: string;
  startedAt: string;
  finishedAt: string;
  seed?: number;
  shard?: Shard;
}

/**
 * report.json (format 1). src/report/report.schema.json is its schema. `suite.commit`, `run.seed`,
 * `run.config` and `run.tls` came after the first reports of format 1: optional in the schema and
 * here (older reports lack them), written by every run since (docs/evidence.md). So are
 * `run.selection.shard` (a run with --shard), `run.mergedFrom` (a report of `chatconform merge`)
 * and `expectations` (a run with --expect; docs/ci.md): present only when they apply.
 */
export interface ReportDocument {
  format: typeof REPORT_FORMAT;
  suite: { name: string; version: string; commit?: string };
  profile: { id: string; version: string };
  run: {
    command: string;
    node: string;
    platform: string;
    caseSetSha256: string;
    selection: { total: number; selected: number; filters: string[]; shard?: Shard };
    mutant?: string;
    policy: string;
    endpointDescription: string;
    seed?: number;
    config?: RedactedConfig;
    tls?: EndpointTlsInfo;
    mergedFrom?: MergedRun[];
  };
  endpoint: string;
  startedAt: string;
  finishedAt: string;
  incomplete: boolean;
  incompleteReason?: string;
  verdict: Verdict;
  summary: RunSummary;
  requirements: AggregatedRequirement[];
  /** Ids of the requirements no case covers. */
  uncovered: string[];
  /** The known failures given with --expect and what became of them; they change the exit code, never the verdict. */
  expectations?: ExpectationsRecord;
  cases: ReportCase[];
}

/** What the CLI knows of a run beyond the runner's events: the shard it runs, the known failures. */
export interface RunExtras {
  shard?: Shard;
  expectations?: ExpectationList;
}

export interface StatsCollector {
  /** Subscribe to a runner's events; a second call with the same emitter does nothing. */
  attach(events: EventEmitter<RunnerEvents>): StatsCollector;
  readonly runInfo: RunInfo | undefined;
  readonly requirements: readonly Requirement[];
  /** Case results in the order they ended. */
  readonly cases: readonly CaseResult[];
  readonly end: RunEndInfo | undefined;
  readonly started: boolean;
  readonly ended: boolean;
  summary(): RunSummary;
  requirementResults(): AggregatedRequirement[];
  /** True when run:end said so, or when the run has not ended (yet). */
  incomplete(): boolean;
  verdict(): Verdict;
  /** The report document; before run:end it describes the run so far as incomplete. Throws before run:start. */
  report(): ReportDocument;
  /** Record the shard and the known failures in the report (call before the run ends). */
  setExtras(extras: RunExtras): StatsCollector;
  /** The known failures and what became of them so far; undefined without a list or before run:start. */
  expectations(): ExpectationsRecord | undefined;
}

export function createStatsCollector(): StatsCollector {
  let runInfo: RunInfo | undefined;
  let requirements: Requirement[] = [];
  let cases: CaseResult[] = [];
  let end: RunEndInfo | undefined;
  let extras: RunExtras = {};
  const attached = new WeakSet<EventEmitter<RunnerEvents>>();

  const collector: StatsCollector = {
    attach(events) {
      if (attached.has(events)) return collector;
      attached.add(events);
      events.on("run:start", (info, reqs) => {
        runInfo = info;
        requirements = [...reqs];
        cases = [];
        end = undefined;
      });
      events.on("case:end", (result) => {
        cases.push(result);
      });
      events.on("run:end", (info) => {
        end = info;
      });
      return collector;
    },
    get runInfo() {
      return runInfo;
    },
    get requirements() {
      return requirements;
    },
    get cases() {
      return cases;
    },
    get end() {
      return end;
    },
    get started() {
      return runInfo !== undefined;
    },
    get ended() {
      return end !== undefined;
    },
    summary: () => summarize(cases),
    requirementResults: () => aggregateRequirements(requirements, cases),
    incomplete: () => end?.incomplete ?? true,
    verdict: () => computeVerdict(aggregateRequirements(requirements, cases), { incomplete: collector.incomplete() }),
    report() {
      if (!runInfo) throw new Error("no run has started: the stats collector saw no run:start event");
      return buildReport(runInfo, requirements, cases, end, extras);
    },
    setExtras(next) {
      extras = { ...next };
      return collector;
    },
    expectations() {
      if (!runInfo || !extras.expectations) return undefined;
      return evaluateExpectations(extras.expectations, { cases, requirements: aggregateRequirements(requirements, cases), startedAt: runInfo.startedAt });
    },
  };
  return collector;
}

const collectors = new WeakMap<EventEmitter<RunnerEvents>, StatsCollector>();

/** The one stats collector of a runner: created and subscribed on first use, shared by every reporter. */
export function statsFor(events: EventEmitter<RunnerEvents>): StatsCollector {
  let stats = collectors.get(events);
  if (!stats) {
    stats = createStatsCollector().attach(events);
    collectors.set(events, stats);
  }
  return stats;
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Assemble the report document; cases are sorted by id so two runs of the same set compare line by line. */
export function buildReport(runInfo: RunInfo, requirements: readonly Requirement[], cases: readonly CaseResult[], end: RunEndInfo | undefined, extras: RunExtras = {}): ReportDocument {
  const reqResults = aggregateRequirements(requirements, cases);
  const incomplete = end?.incomplete ?? true;
  const incompleteReason = end ? end.incompleteReason : "the run did not end";
  const { suite, profile } = runInfo;
  return {
    format: REPORT_FORMAT,
    suite: { name: suite.name, version: suite.version, commit: suite.commit ?? "unknown" },
    profile: { id: profile.id, version: profile.version },
    run: {
      command: runInfo.command,
      node: runInfo.node,
      platform: runInfo.platform,
      caseSetSha256: runInfo.caseSetSha256,
      selection: {
        total: runInfo.selection.total, selected: runInfo.selection.selected, filters: [...runInfo.selection.filters],
        ...(extras.shard ? { shard: { index: extras.shard.index, count: extras.shard.count } } : {}),
      },
      ...(runInfo.mutant !== undefined ? { mutant: runInfo.mutant } : {}),
      policy: runInfo.policy,
      endpointDescription: runInfo.endpointDescription,
      ...(runInfo.seed !== undefined ? { seed: runInfo.seed } : {}),
      ...(runInfo.config !== undefined ? { config: structuredClone(runInfo.config) } : {}),
      ...(runInfo.tls !== undefined ? { tls: { ...runInfo.tls } } : {}),
    },
    endpoint: runInfo.endpoint,
    startedAt: runInfo.startedAt,
    finishedAt: end?.finishedAt ?? new Date().toISOString(),
    incomplete,
    ...(incomplete && incompleteReason !== undefined ? { incompleteReason } : {}),
    verdict: computeVerdict(reqResults, { incomplete }),
    summary: summarize(cases),
    requirements: reqResults,
    uncovered: reqResults.filter((r) => r.status === "uncovered").map((r) => r.id),
    ...(extras.expectations ? { expectations: evaluateExpectations(extras.expectations, { cases, requirements: reqResults, startedAt: runInfo.startedAt }) } : {}),
    cases: [...cases].sort(byId).map(copyCase),
  };
}

/** A plain copy with the schema's keys only, so an extra property on a result cannot break report.json. */
function copyCase(c: CaseResult): ReportCase {
  const failure = (k: CheckResult): ReportFailure => ({ requirement: k.requirement, step: k.step, expected: k.expected, actual: k.actual, evidence: [...k.evidence] });
  const check = (k: CheckResult): CheckResult => ({ ...failure(k), ok: k.ok });
  return {
    id: c.id,
    title: c.title,
    file: c.file,
    area: c.area,
    requirements: [...c.requirements],
    level: c.level,
    tags: [...c.tags],
    status: c.status,
    ...(c.reason !== undefined ? { reason: c.reason } : {}),
    durationMs: c.durationMs,
    timeoutWaitMs: c.timeoutWaitMs,
    sha256: c.sha256,
    checks: c.checks.map(check),
    failures: c.failures.map(failure),
    transcript: c.transcript.map((e) => ({
      seq: e.seq, t: e.t, actor: e.actor, direction: e.direction, xml: e.xml,
      ...(e.decrypted !== undefined ? { decrypted: e.decrypted } : {}),
      ...(e.note !== undefined ? { note: e.note } : {}),
    })),
  };
}
