// `chatconform selftest` interrupted: the first signal stops the partners' runs and the selftest
// ends incomplete (exit 2, never "OK"); a second one exits at once with 130, as `run` does (the
// shared handling is tested below; test/hostile plays a double SIGINT through `run`).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { MUTANTS } from "../src/partner/mutants.ts";
import { judge } from "../src/runner/selftest.ts";
import { handleInterrupts } from "../src/cli/interrupts.ts";
import type { ReportSlice } from "../src/runner/selftest.ts";

const BIN = fileURLToPath(new URL("../bin/chatconform.js", import.meta.url));

interface Interrupted {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Start a selftest and send it `signal` after its first line (its handlers are in place by then). */
function interruptSelftest(signal: NodeJS.Signals): Promise<Interrupted> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, "selftest", "--parallel", "1", "--mutant", "plaintext-accepted"], { env: { ...process.env, NO_COLOR: "1" } });
    let stdout = "";
    let stderr = "";
    let sent = false;
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!sent && stdout.includes("\n")) {
        sent = true;
        child.kill(signal);
      }
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("chatconform selftest interrupted (CLI)", function () {
  this.timeout(120_000);

  it("ends incomplete with exit 2 on SIGINT, never reporting OK", async () => {
    const r = await interruptSelftest("SIGINT");
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stdout, /^Selftest on the builtin backend: the reference partner under eea and whatsapp-european-region, then 1 mutant\(s\)/);
    assert.match(r.stdout, /selftest INCOMPLETE \(interrupted\): \d+ of 3 partners judged/);
    assert.doesNotMatch(r.stdout, /selftest OK/);
    assert.match(r.stderr, /SIGINT: stopping the partners' runs/);
  });

});

describe("interrupt handling of run and selftest", () => {
  it("stops gracefully on the first signal and exits 130 at once on a second, SIGINT or SIGTERM", () => {
    const controller = new AbortController();
    const said: string[] = [];
    const exits: number[] = [];
    const handling = handleInterrupts({ controller, err: (l) => said.push(l), exit: (c) => exits.push(c), exitCode: 130, firstMessage: "stopping" });
    try {
      handling.onSignal("SIGINT");
      assert.equal(controller.signal.aborted, true);
      assert.equal(controller.signal.reason, "SIGINT");
      assert.deepEqual(exits, []);
      handling.onSignal("SIGTERM");
      assert.deepEqual(exits, [130]);
      assert.deepEqual(said, ["\nSIGINT: stopping (press Ctrl-C again to exit now).", "\nSIGTERM again: exiting without waiting."]);
    } finally {
      handling.remove();
    }
  });
});

describe("selftest judging a partner's run", () => {
  const mutant = MUTANTS.find((m) => m.name === "plaintext-accepted")!;
  const report = (over: Partial<ReportSlice> = {}): ReportSlice => ({
    verdict: "non-compliant",
    incomplete: false,
    requirements: [{ id: "ENC-14", status: "fail" }, { id: "ENC-01", status: "pass" }],
    cases: [{ id: "encryption/plaintext-refused", status: "fail", failures: [{ requirement: "ENC-14", expected: "refused", actual: "delivered" }] }],
    ...over,
  });

  it("counts a mutant killed when it fails exactly what it declares", () => {
    assert.equal(judge({ mutant, policy: "eea" }, "builtin", report(), "", 1).ok, true);
  });

  it("never counts a run that was cut short as a kill, whatever it failed", () => {
    const row = judge({ mutant, policy: "eea" }, "builtin", report({ incomplete: true, incompleteReason: "interrupted by SIGTERM: 40 selected case(s) did not run." }), "", 1);
    assert.equal(row.ok, false);
    assert.deepEqual(row.errors, ["the run was cut short: interrupted by SIGTERM: 40 selected case(s) did not run."]);
  });
});
