// The scheduler: runs selected cases (in parallel with isolated actors), emits events, nothing else.
import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import type { CaseDefinition } from "../cases/loader.ts";
import type { CaseResult, CaseStatus, Requirement } from "../checks/model.ts";
import type { EndpointConfig, StaticAccount } from "../config/config.ts";
import type { RunInfo, RunnerEvents } from "./events.ts";
import { Actor, CaseContext, CheckFailed, NotTested, expandPhone } from "./context.ts";
import { STEP_HANDLERS } from "./steps.ts";
import { MEDIA_STEP_HANDLERS } from "./media-steps.ts";
import { ELIGIBILITY_STEP_HANDLERS } from "./eligibility-steps.ts";
import { BLOCKING_STEP_HANDLERS } from "./blocking-steps.ts";
import { PRIVACY_STEP_HANDLERS } from "./privacy-steps.ts";
import type { PreflightFailure } from "./preflight.ts";
import { addRunSink, describeError, runInScope } from "./stray.ts";
import { DEFAULT_GRACE_MS } from "../config/config.ts";
import { redactSecrets } from "../report/json.ts";

const HANDLERS = { ...STEP_HANDLERS, ...MEDIA_STEP_HANDLERS, ...ELIGIBILITY_STEP_HANDLERS, ...BLOCKING_STEP_HANDLERS, ...PRIVACY_STEP_HANDLERS };

export const DEFAULT_CASE_TIMEOUT_MS = 60_000;
/** How long a case may tear down its connections after a deadline or an interruption. */
const TEARDOWN_MS = 2000;
const DEFAULT_PHONE = "+33 6 1# ## ## ##";

export interface RunOptions {
  config: EndpointConfig;
  cases: CaseDefinition[];
  /** Cases filtered out: reported as skip, never run. */
  skipped?: { case: CaseDefinition; reason: string }[];
  requirements: Requirement[];
  runInfo: RunInfo;
  jobs?: number;
  /**
   * Aborting stops new cases from starting; running ones get `graceMs` (config timeouts.grace) to
   * finish, then stop as not-tested. The abort reason ("SIGINT", "SIGTERM") names the interruption.
   */
  signal?: AbortSignal;
  graceMs?: number;
  /** The first connection failed (src/runner/preflight.ts): the cases that cannot run are skipped. */
  preflight?: PreflightFailure | null;
}

/** Why a case stopped before its steps ended; it carries the status the case gets. */
class CaseStopped extends Error {
  constructor(readonly status: CaseStatus, message: string) {
    super(message);
    this.name = "CaseStopped";
  }
}

function interruptionName(signal: AbortSignal | undefined): string {
  const reason: unknown = signal?.reason;
  return typeof reason === "string" && reason ? reason : "an abort";
}

export interface RunOutcome {
  results: CaseResult[];
  incomplete: boolean;
  incompleteReason?: string;
}

/**
 * Static accounts are lent to cases one at a time. A case takes all the accounts it needs from a
 * pool at once (taking them one by one while holding some could deadlock two cases), and cases are
 * served in the order they asked, so none starves. The wait is not part of the case's deadline
 * (queueing behind other cases is not the endpoint's fault), but an interruption ends it.
 */
export class AccountPool {
  private free: StaticAccount[];
  private readonly capacity: number;
  private waiting: { count: number; signal?: AbortSignal; grant: (accounts: StaticAccount[]) => void; cancel: () => void }[] = [];
  constructor(accounts: StaticAccount[]) {
    this.free = [...accounts];
    this.capacity = accounts.length;
  }
  get size(): number {
    return this.free.length;
  }
  acquire(count: number, signal?: AbortSignal): Promise<StaticAccount[]> {
    if (count > this.capacity) return Promise.reject(new Error(`a case needs ${count} static accounts and the pool has ${this.capacity}`));
    if (count === 0) return Promise.resolve([]);
    if (this.waiting.length === 0 && this.free.length >= count) return Promise.resolve(this.free.splice(0, count));
    return new Promise((resolve, reject) => {
      const waiter = {
        count,
        signal,
        grant: (accounts: StaticAccount[]) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(accounts);
        },
        cancel: () => reject(notStarted(signal)),
      };
      const onAbort = () => {
        this.waiting = this.waiting.filter((w) => w !== waiter);
        this.grantInOrder();
        waiter.cancel();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }
  release(accounts: readonly StaticAccount[]): void {
    this.free.push(...accounts);
    this.grantInOrder();
  }
  private grantInOrder(): void {
    while (this.waiting.length) {
      const next = this.waiting[0]!;
      // Interrupted, its own abort handler not run yet: it gets nothing (a case must not start now).
      if (next.signal?.aborted) {
        this.waiting.shift();
        next.cancel();
        continue;
      }
      if (this.free.length < next.count) return;
      this.waiting.shift();
      next.grant(this.free.splice(0, next.count));
    }
  }
}

function notStarted(signal: AbortSignal | undefined): CaseStopped {
  return new CaseStopped("not-tested", `interrupted by ${interruptionName(signal)} while waiting for a static account: not started`);
}

function unmetNeed(caseDef: CaseDefinition, config: EndpointConfig, staticCount: number): string | undefined {
  for (const need of caseDef.needs) {
    if (need === "ineligible-account" && config.accounts.ineligible.length === 0) {
      return "the endpoint config lists no gatekeeper account with an ineligible number (accounts.ineligible)";
    }
    if (need === "registration" && config.accounts.mode !== "register") return "the endpoint does not offer in-band registration to the suite (accounts.mode is static)";
    if (need === "reflector" && !config.reflector) return "the endpoint config names no reflector";
    if (need === "optout" && !config.optout) return "the endpoint config names no opted-out user";
    if (need.startsWith("hook:") && !config.hooks.includes(need.slice(5) as never)) return `the endpoint exposes no "${need.slice(5)}" hook`;
  }
  const ineligibleCount = Object.values(caseDef.actors).filter((a) => a.account === "ineligible").length;
  if (ineligibleCount > config.accounts.ineligible.length) return `the case needs ${ineligibleCount} accounts with ineligible numbers and the config lists ${config.accounts.ineligible.length} (accounts.ineligible)`;
  const actorCount = Object.values(caseDef.actors).filter((a) => a.account !== "ineligible").length;
  if (config.accounts.mode === "static" && actorCount > staticCount) return `the case needs ${actorCount} accounts and the config lists ${staticCount}`;
  return undefined;
}

export class Runner extends EventEmitter<RunnerEvents> {
  private readonly claimedPreKeys = new Set<string>();
  /** Gatekeeper accounts with ineligible numbers, shared by cases one at a time like static ones. */
  private ineligiblePool = new AccountPool([]);

  constructor(private readonly options: RunOptions) {
    super();
  }

  async run(): Promise<RunOutcome> {
    const { options } = this;
    this.emit("run:start", options.runInfo, options.requirements);
    const results: CaseResult[] = [];
    const finish = (result: CaseResult) => {
      results.push(result);
      this.emit("case:end", result);
    };
    for (const { case: c, reason } of options.skipped ?? []) finish(this.emptyResult(c, "skip", reason));
    // Errors that escape outside any case (the run's own code, an in-process partner) are recorded
    // here: the run goes on and its report says so, instead of the process dying without one.
    const runProblems: string[] = [];
    const removeSink = addRunSink((error) => runProblems.push(describeError(error)));
    try {
      const pool = new AccountPool(options.config.accounts.static);
      const staticCount = pool.size;
      this.ineligiblePool = new AccountPool(options.config.accounts.ineligible);
      const preflight = options.preflight ?? null;
      const queue: CaseDefinition[] = [];
      let preflightSkipped = 0;
      for (const c of options.cases) {
        if (!preflight) queue.push(c);
        else if (unmetNeed(c, options.config, staticCount)) queue.push(c); // not-tested, for its own reason
        else if (preflight.scope === "all" || Object.keys(c.actors).length > 0) {
          preflightSkipped++;
          finish(this.emptyResult(c, "skip", preflight.short));
        } else queue.push(c);
      }
      let stopped = 0;
      let notStartedCount = 0;
      const worker = async () => {
        for (;;) {
          if (options.signal?.aborted) return;
          const next = queue.shift();
          if (!next) return;
          const result = await this.runCase(next, pool, staticCount);
          if (result.reason?.startsWith("interrupted") && result.reason.includes("stopped after the grace")) stopped++;
          else if (result.reason?.startsWith("interrupted")) notStartedCount++;
          finish(result);
        }
      };
      const jobs = Math.max(1, Math.min(options.jobs ?? 1, queue.length || 1));
      await Promise.all(Array.from({ length: jobs }, worker));
      const notRun = queue.length + notStartedCount;
      const reasons: string[] = [];
      if (preflight) reasons.push(`${preflight.message} ${preflightSkipped} selected case(s) did not run.`);
      if (options.signal?.aborted) {
        const name = interruptionName(options.signal);
        for (const c of queue.splice(0)) finish(this.emptyResult(c, "skip", `not run: the run was interrupted (${name})`));
        reasons.push(`interrupted by ${name}: ${notRun} selected case(s) did not run${stopped ? `, ${stopped} stopped after the grace of ${options.graceMs ?? DEFAULT_GRACE_MS} ms` : ""}.`);
      } else if (notRun > 0) {
        reasons.push(`${notRun} selected case(s) did not run.`);
      }
      if (runProblems.length) reasons.push(`internal error outside any case: ${runProblems.join("; ")}.`);
      const incomplete = reasons.length > 0;
      const incompleteReason = incomplete ? reasons.join(" ") : undefined;
      this.emit("run:end", { finishedAt: new Date().toISOString(), incomplete, incompleteReason });
      return { results, incomplete, incompleteReason };
    } finally {
      removeSink();
    }
  }

  private emptyResult(c: CaseDefinition, status: CaseStatus, reason: string): CaseResult {
    return {
      id: c.id, title: c.title, file: c.file, area: c.area, requirements: c.requirements, level: c.level, tags: c.tags,
      status, reason, durationMs: 0, timeoutWaitMs: 0, checks: [], failures: [], transcript: [], sha256: c.sha256,
    };
  }

  private async runCase(caseDef: CaseDefinition, pool: AccountPool, staticCount: number): Promise<CaseResult> {
    const { config } = this.options;
    this.emit("case:start", { id: caseDef.id, title: caseDef.title, file: caseDef.file, area: caseDef.area, requirements: caseDef.requirements });
    const unmet = unmetNeed(caseDef, config, staticCount);
    if (unmet) return this.emptyResult(caseDef, "not-tested", unmet);

    const ctx = new CaseContext(caseDef, config, this.claimedPreKeys, this.options.runInfo.seed);
    const borrowed: { pool: AccountPool; accounts: StaticAccount[] }[] = [];
    let status: CaseStatus = "pass";
    let reason: string | undefined;
    let deadline: NodeJS.Timeout | undefined;
    let grace: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    // Settles when the case must stop before its steps end: deadline, interruption, a stray error.
    let stop!: (err: CaseStopped) => void;
    const stopped = new Promise<never>((_, reject) => (stop = reject));
    const run = { ended: false, interrupted: false };
    const { signal } = this.options;
    try {
      // Every static account the case needs, each pool's at once and the pools always in the same
      // order (the endpoint's static accounts, then the ineligible ones): no two cases can deadlock.
      const actorEntries = Object.entries(caseDef.actors);
      const poolOf = (spec: (typeof actorEntries)[number][1]) =>
        spec.account === "ineligible" ? this.ineligiblePool : config.accounts.mode === "static" ? pool : undefined;
      const lent = new Map<AccountPool, StaticAccount[]>();
      for (const from of [pool, this.ineligiblePool]) {
        const count = actorEntries.filter(([, spec]) => poolOf(spec) === from).length;
        const accounts = await from.acquire(count, signal);
        borrowed.push({ pool: from, accounts });
        lent.set(from, [...accounts]);
      }
      // Accounts that arrive as the run is interrupted start nothing.
      if (signal?.aborted && borrowed.some((b) => b.accounts.length > 0)) throw notStarted(signal);
      for (const [name, spec] of actorEntries) {
        let account: { username: string; password: string };
        let phone: string;
        let provisioned = false;
        const from = poolOf(spec);
        if (from) {
          const staticAccount = lent.get(from)!.shift()!;
          account = staticAccount;
          phone = staticAccount.phone;
          provisioned = true;
        } else {
          const slug = caseDef.id.split("/")[1]!.slice(0, 24);
          const prefix = spec.testPrefix === false ? "user-" : config.accounts.prefix;
          account = { username: `${prefix}${slug}-${name}-${randomBytes(3).toString("hex")}`, password: randomBytes(12).toString("base64url") };
          phone = expandPhone(spec.phone ?? DEFAULT_PHONE, ctx.random("phone"));
        }
        ctx.secrets.push(account.password);
        const actor = new Actor(name, spec, phone, account, config.domain);
        actor.registered = provisioned;
        ctx.actors.set(name, actor);
      }
      const timeoutMs = caseDef.timeoutMs ?? DEFAULT_CASE_TIMEOUT_MS;
      deadline = setTimeout(() => stop(new CaseStopped("error", `the case did not finish within ${timeoutMs} ms`)), timeoutMs);
      const graceMs = this.options.graceMs ?? DEFAULT_GRACE_MS;
      onAbort = () => {
        grace = setTimeout(() => {
          run.interrupted = true;
          stop(new CaseStopped("not-tested", `interrupted by ${interruptionName(signal)}: stopped after the grace of ${graceMs} ms`));
        }, graceMs);
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
      // Everything the steps start (sockets, timers, promises) runs in the case's scope: an error
      // that escapes from it ends this case as error, not the process.
      const steps = runInScope({
        report: (error) => {
          if (run.ended) return; // a late error of a torn-down connection: the case already has its result
          stop(new CaseStopped("error", `uncaught error: ${describeError(error)}`));
        },
      }, () => this.runSteps(ctx, run));
      await Promise.race([steps, stopped]);
      if (ctx.invariantFailures.length) status = "fail";
    } catch (err) {
      if (err instanceof CaseStopped) {
        status = err.status;
        // An interruption is said first (it is why the case stopped); anything else after its step.
        reason = err.status === "not-tested"
          ? `${err.message}${ctx.currentStep ? ` (in ${ctx.currentStep})` : ""}`
          : `${ctx.currentStep ? `${ctx.currentStep}: ` : ""}${err.message}`;
      } else if (err instanceof CheckFailed) status = "fail";
      else if (err instanceof NotTested) {
        status = "not-tested";
        reason = err.message;
      } else {
        status = "error";
        reason = `${ctx.currentStep ? `${ctx.currentStep}: ` : ""}${(err as Error).message || String(err)}`;
      }
    } finally {
      run.ended = true;
      ctx.ended = true;
      clearTimeout(deadline);
      clearTimeout(grace);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
      // Close politely (each close is bounded); an interrupted case drops its connections at once.
      const teardown = Promise.all([...ctx.actors.values()].flatMap((actor) => actor.devices.map((device) => {
        if (!device.conn) return undefined;
        if (run.interrupted) return device.conn.destroy();
        return device.conn.close().catch(() => undefined);
      })));
      let teardownTimer: NodeJS.Timeout | undefined;
      await Promise.race([teardown, new Promise<void>((resolve) => (teardownTimer = setTimeout(resolve, TEARDOWN_MS)))]);
      clearTimeout(teardownTimer);
      for (const actor of ctx.actors.values()) for (const device of actor.devices) device.conn?.destroy();
      for (const { pool: from, accounts } of borrowed) from.release(accounts);
    }
    // A copy: nothing a late callback does can change a result once it is made.
    const checks = [...ctx.checks];
    const failures = checks.filter((c) => !c.ok);
    if (failures.length && status === "pass") status = "fail";
    const requirements = [...caseDef.requirements];
    for (const f of ctx.invariantFailures) if (!requirements.includes(f.requirement)) requirements.push(f.requirement);
    // Every password the case knows (its registered accounts' and the config's) is redacted from
    // everything the result carries: transcripts, checks, failures and the reason. Very short
    // passwords are left alone: redacting "pw" everywhere would garble the evidence.
    const secrets = [...ctx.secrets, ...[...config.accounts.static, ...config.accounts.ineligible].map((a) => a.password)].filter((s) => s.length >= 4);
    const evidence = redactSecrets({ reason, checks, failures, transcript: [...ctx.transcript] }, secrets);
    return {
      id: caseDef.id, title: caseDef.title, file: caseDef.file, area: caseDef.area, requirements, level: caseDef.level,
      tags: caseDef.tags, status, reason: evidence.reason, durationMs: Date.now() - ctx.startedAt, timeoutWaitMs: ctx.timeoutWaitMs,
      checks: evidence.checks, failures: evidence.failures, transcript: evidence.transcript, sha256: caseDef.sha256,
    };
  }

  private async runSteps(ctx: CaseContext, run: { ended: boolean }): Promise<void> {
    for (const [index, stepDef] of ctx.caseDef.steps.entries()) {
      // A case stopped by its deadline or an interruption starts no further step.
      if (run.ended) return;
      const name = Object.keys(stepDef).find((k) => k !== "note")!;
      const params = stepDef[name] as Record<string, unknown>;
      const handler = HANDLERS[name];
      if (!handler) throw new Error(`step ${name} has no handler`);
      const target = params.actor ? ` ${params.actor as string}` : "";
      ctx.currentStep = `steps[${index}] ${name}${target}${params.as ? ` as ${params.as as string}` : ""}${params.ref ? ` ${params.ref as string}` : ""}`;
      this.emit("step", { caseId: ctx.caseDef.id, index, description: ctx.currentStep });
      await handler(ctx, params);
    }
  }
}
