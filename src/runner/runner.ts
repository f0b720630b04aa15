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

const HANDLERS = { ...STEP_HANDLERS, ...MEDIA_STEP_HANDLERS, ...ELIGIBILITY_STEP_HANDLERS, ...BLOCKING_STEP_HANDLERS, ...PRIVACY_STEP_HANDLERS };

export const DEFAULT_CASE_TIMEOUT_MS = 60_000;
const DEFAULT_PHONE = "+33 6 1# ## ## ##";

export interface RunOptions {
  config: EndpointConfig;
  cases: CaseDefinition[];
  /** Cases filtered out: reported as skip, never run. */
  skipped?: { case: CaseDefinition; reason: string }[];
  requirements: Requirement[];
  runInfo: RunInfo;
  jobs?: number;
  /** Aborting stops new cases from starting; running ones finish or hit their deadline. */
  signal?: AbortSignal;
}

export interface RunOutcome {
  results: CaseResult[];
  incomplete: boolean;
  incompleteReason?: string;
}

/** Static accounts are shared by cases one at a time. */
class AccountPool {
  private free: StaticAccount[];
  private waiting: ((a: StaticAccount) => void)[] = [];
  constructor(accounts: StaticAccount[]) {
    this.free = [...accounts];
  }
  get size(): number {
    return this.free.length;
  }
  acquire(): Promise<StaticAccount> {
    const account = this.free.shift();
    if (account) return Promise.resolve(account);
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  release(account: StaticAccount): void {
    const next = this.waiting.shift();
    if (next) next(account);
    else this.free.push(account);
  }
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
  const actorCount = Object.values(caseDef.actors).filter((a) => a.account !== "ineligible").length;
  if (config.accounts.mode === "static" && actorCount > staticCount) return `the case needs ${actorCount} accounts and the config lists ${staticCount}`;
  return undefined;
}

function redact(text: string, secrets: string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join("[redacted]");
  return out;
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
    for (const { case: c, reason } of options.skipped ?? []) {
      const result = this.emptyResult(c, "skip", reason);
      results.push(result);
      this.emit("case:end", result);
    }
    const pool = new AccountPool(options.config.accounts.static);
    const staticCount = pool.size;
    this.ineligiblePool = new AccountPool(options.config.accounts.ineligible);
    const queue = [...options.cases];
    let interrupted = false;
    const worker = async () => {
      for (;;) {
        if (options.signal?.aborted) {
          interrupted = true;
          return;
        }
        const next = queue.shift();
        if (!next) return;
        const result = await this.runCase(next, pool, staticCount);
        results.push(result);
        this.emit("case:end", result);
      }
    };
    const jobs = Math.max(1, Math.min(options.jobs ?? 1, queue.length || 1));
    await Promise.all(Array.from({ length: jobs }, worker));
    const notRun = queue.length;
    const incomplete = interrupted || notRun > 0;
    const incompleteReason = incomplete ? `interrupted: ${notRun} selected case(s) did not run` : undefined;
    this.emit("run:end", { finishedAt: new Date().toISOString(), incomplete, incompleteReason });
    return { results, incomplete, incompleteReason };
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
    const borrowed: { pool: AccountPool; account: StaticAccount }[] = [];
    let status: CaseStatus = "pass";
    let reason: string | undefined;
    let deadline: NodeJS.Timeout | undefined;
    try {
      for (const [name, spec] of Object.entries(caseDef.actors)) {
        let account: { username: string; password: string };
        let phone: string;
        let provisioned = false;
        if (spec.account === "ineligible" || config.accounts.mode === "static") {
          const from = spec.account === "ineligible" ? this.ineligiblePool : pool;
          const staticAccount = await from.acquire();
          borrowed.push({ pool: from, account: staticAccount });
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
      const timedOut = new Promise<never>((_, reject) => {
        deadline = setTimeout(() => reject(new Error(`the case did not finish within ${timeoutMs} ms`)), timeoutMs);
      });
      await Promise.race([this.runSteps(ctx), timedOut]);
      if (ctx.invariantFailures.length) status = "fail";
    } catch (err) {
      if (err instanceof CheckFailed) status = "fail";
      else if (err instanceof NotTested) {
        status = "not-tested";
        reason = err.message;
      } else {
        status = "error";
        reason = `${ctx.currentStep ? `${ctx.currentStep}: ` : ""}${(err as Error).message || String(err)}`;
      }
    } finally {
      clearTimeout(deadline);
      for (const actor of ctx.actors.values()) {
        for (const device of actor.devices) await device.conn?.close().catch(() => undefined);
      }
      for (const { pool: from, account } of borrowed) from.release(account);
    }
    const failures = ctx.checks.filter((c) => !c.ok);
    if (failures.length && status === "pass") status = "fail";
    const requirements = [...caseDef.requirements];
    for (const f of ctx.invariantFailures) if (!requirements.includes(f.requirement)) requirements.push(f.requirement);
    const secrets = [...ctx.secrets, ...[...config.accounts.static, ...config.accounts.ineligible].map((a) => a.password)];
    const transcript = ctx.transcript.map((e) => ({ ...e, xml: redact(e.xml, secrets), ...(e.decrypted ? { decrypted: redact(e.decrypted, secrets) } : {}) }));
    return {
      id: caseDef.id, title: caseDef.title, file: caseDef.file, area: caseDef.area, requirements, level: caseDef.level,
      tags: caseDef.tags, status, reason, durationMs: Date.now() - ctx.startedAt, timeoutWaitMs: ctx.timeoutWaitMs,
      checks: ctx.checks, failures, transcript, sha256: caseDef.sha256,
    };
  }

  private async runSteps(ctx: CaseContext): Promise<void> {
    for (const [index, stepDef] of ctx.caseDef.steps.entries()) {
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
