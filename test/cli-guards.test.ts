// Refused before anything runs, with a clear error (exit 3) and nothing left behind: `run --out`
// somewhere that cannot be written, `partner --host` on an address other than loopback, a built-in
// partner that cannot start.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../bin/chatconform.js", import.meta.url));

describe("chatconform run --out that cannot be written (CLI)", function () {
  this.timeout(60_000);

  it("exits 3 naming the directory", () => {
    // A regular file where the reports directory should be: mkdir fails whoever runs the test (root too).
    const blocker = path.join(mkdtempSync(path.join(os.tmpdir(), "chatconform-out-")), "not-a-dir");
    writeFileSync(blocker, "");
    const r = spawnSync(process.execPath, [BIN, "run", "--out", path.join(blocker, "reports"), "--case", "transport/"], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 50_000 });
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /--out .*not-a-dir\/reports: cannot create the (run.s )?directory( there)? \(ENOTDIR/);
  });

  it("partner --host refuses a non-loopback address", () => {
    for (const host of ["0.0.0.0", "192.168.1.10", "::"]) {
      const r = spawnSync(process.execPath, [BIN, "partner", "--host", host, "--port", "0"], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 50_000 });
      assert.equal(r.status, 3, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`--host ${host.replace(/\./g, "\\.")}: the reference partner listens on a loopback address only`));
    }
  });

  it("a built-in partner that cannot start leaves no run directory behind", () => {
    // The partner refuses a mutant it does not know when it starts, after the run directory is made.
    const out = mkdtempSync(path.join(os.tmpdir(), "chatconform-out-"));
    const r = spawnSync(process.execPath, [BIN, "run", "--partner-mutant", "no-such-mutant", "--out", out], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 50_000 });
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /unknown mutant "no-such-mutant"/);
    assert.deepEqual(readdirSync(out), []);
  });
});
