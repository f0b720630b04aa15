// A fake runner for the reporter tests: it emits the runner's events itself, with cases that
// cover every status and transcripts that carry hostile text (markup, control characters, a lone
// surrogate, a secret), so each reporter can be checked for escaping and redaction.
import { EventEmitter } from "node:events";
import type { CaseResult, CaseStatus, CheckResult, Level, Requirement } from "../src/checks/model.ts";
import type { RunEndInfo, RunInfo, RunnerEvents } from "../src/runner/events.ts";

export const SECRET = 'hunter2"s3cr3t\\pw';
export const SCRIPT = "<script>window.__pwned=1</script>";
export const IMG = '<img src=x onerror="window.__pwned=2">';
export const CONTROL = "bell\x07esc\x1b[31mred\x00nul\ud800lone";

const SHA = "b".repeat(64);

export function req(id: string, level: Level = "MUST"): Requirement {
  return { id, level, text: `${id} requirement text.`, source: "TPC/1 §0" };
}

function failed(requirement: string, evidence: number[], over: Partial<CheckResult> = {}): CheckResult {
  return { requirement, ok: false, step: "steps[1] expect receipt m1", expected: `what ${requirement} expects`, actual: `what came for ${requirement}`, evidence, ...over };
}

function result(id: string, status: CaseStatus, requirements: string[], over: Partial<CaseResult> = {}): CaseResult {
  return {
    id, title: `Case ${id} title`, file: `cases/${id}.yaml`, area: id.split("/")[0]!, requirements, level: "MUST", tags: ["core"],
    status, durationMs: 12, timeoutWaitMs: 0, checks: [], failures: [], transcript: [], sha256: SHA, ...over,
  };
}

export const runInfo: RunInfo = {
  suite: { name: "chatconform", version: "0.1.0" },
  profile: { id: "TPC", version: "1" },
  endpoint: "xmpp://127.0.0.1:5222",
  endpointDescription: "fake endpoint",
  policy: "eea",
  startedAt: "2025-01-01T10:00:00.000Z",
  command: "chatconform run --reporter html",
  caseSetSha256: SHA,
  selection: { total: 5, selected: 4, filters: ["--case encryption/,lifecycle/"] },
  node: "v20.19.0",
  platform: "linux-x64",
};

export const requirements: Requirement[] = [req("ENC-06"), req("ENC-10"), req("ENC-03", "SHOULD"), req("ENC-20"), req("LIF-02"), req("TRN-01")];

export const cases: CaseResult[] = [
  result("encryption/text-roundtrip", "pass", ["ENC-06"], {
    durationMs: 420,
    checks: [{ ...failed("ENC-06", [1]), ok: true, expected: "a receipt for m1", actual: "receipt" }],
    transcript: [{ seq: 1, t: 5, actor: "alice", direction: "out", xml: "<message id='m1'><encrypted>CIPHERTEXT-ONE</encrypted></message>", decrypted: '{"text":"hello"}' }],
  }),
  result("encryption/replay", "fail", ["ENC-06", "ENC-10"], {
    durationMs: 1310,
    timeoutWaitMs: 500,
    checks: [{ ...failed("ENC-06", [1]), ok: true }],
    failures: [failed("ENC-10", [2, 99], { expected: "exactly one receipt for m1 | no more", actual: `2 receipts; the second one said ${SCRIPT} @octocat` })],
    transcript: [
      { seq: 1, t: 5, actor: "alice", direction: "out", xml: `<message id='m1'><auth>${SECRET}</auth><encrypted>CIPHERTEXT-TWO</encrypted></message>`, decrypted: `{"text":"hi ${SECRET}"}` },
      { seq: 2, t: 120, actor: "alice", direction: "in", xml: `<message id='r2'><body>${SCRIPT}${IMG} ${CONTROL} ]]&gt;</body><received id='m1'/></message>`, decrypted: `{"kind":"receipt","note":"${SCRIPT}"}`, note: "second receipt" },
      { seq: 3, t: 130, actor: "bob", direction: "in", xml: "<presence/>" },
    ],
  }),
  result("encryption/prekeys", "not-tested", ["ENC-03"], { level: "SHOULD", reason: "hook state missing" }),
  result("lifecycle/hooks", "error", ["LIF-02"], { durationMs: 75, reason: `connection reset by peer ${CONTROL}` }),
  result("transport/starttls", "skip", ["TRN-01"], { reason: "filtered out by --case encryption/,lifecycle/", durationMs: 0 }),
];

export const END: RunEndInfo = { finishedAt: "2025-01-01T10:00:02.500Z", incomplete: false };

/** Emit a whole run on `events`: run:start, then case:start / step / case:end per case, then run:end. */
export function fakeRun(events: EventEmitter<RunnerEvents>, list: CaseResult[] = cases, end: RunEndInfo = END): void {
  events.emit("run:start", runInfo, requirements);
  for (const c of list) {
    if (c.status !== "skip") {
      events.emit("case:start", { id: c.id, title: c.title, file: c.file, area: c.area, requirements: c.requirements });
      events.emit("step", { caseId: c.id, index: 0, description: "connect alice" });
    }
    events.emit("case:end", c);
  }
  events.emit("run:end", end);
}

export const newEvents = () => new EventEmitter<RunnerEvents>();

/** A writable stream that keeps what is written. */
export class FakeStream {
  text = "";
  constructor(public isTTY = false, public columns = 100) {}
  write(chunk: string) {
    this.text += chunk;
    return true;
  }
}
