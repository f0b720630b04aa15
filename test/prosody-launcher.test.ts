// The Prosody-backed reference partner: launcher, config, mod_tpc's provisioning, stop by pid and
// cleanup, the errors when Prosody is missing or a mutant does not exist there, and the CLI flags.
// Needs Prosody (skipped, with the reason, when it is not installed; .ci/run installs it).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, watch, writeFileSync } from "node:fs";
import { once } from "node:events";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startReferencePartner } from "../src/partner/index.ts";
import { ProsodyNotInstalledError, findProsody, prosodySkipReason } from "../src/partner/prosody/availability.ts";
import { startProsodyPartner } from "../src/partner/prosody/index.ts";
import { prosodyConfig } from "../src/partner/prosody/config.ts";
import { ProsodyStartError, startProsodyProcess } from "../src/partner/prosody/launcher.ts";
import { generateCertificate } from "../src/partner/tls.ts";
import type { ProsodyPartner } from "../src/partner/prosody/index.ts";
import { MutantNotOnProsodyError, PROSODY_MUTANTS, PROSODY_SERVER_MUTANTS, whyNotOnProsody } from "../src/partner/prosody/mutants.ts";
import { MUTANTS } from "../src/partner/mutants.ts";
import { SERVER_FAULTS } from "../src/partner/server/index.ts";
import { XmppConnection } from "../src/protocol/connection.ts";
import { NS, xml } from "../src/protocol/xml.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = path.join(ROOT, "bin/chatconform.js");

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("Prosody backend: which mutants exist there", () => {
  it("has every reflector mutant and says why each missing server mutant is missing", () => {
    for (const m of MUTANTS) {
      if (m.side === "reflector") assert.ok(PROSODY_MUTANTS.includes(m), m.name);
      if (!PROSODY_MUTANTS.includes(m)) assert.match(whyNotOnProsody(m) ?? "", /\w/, m.name);
    }
    assert.ok(PROSODY_SERVER_MUTANTS.length >= 15);
    assert.ok(PROSODY_SERVER_MUTANTS.every((m) => m.side === "server"));
  });

  it("names only server faults the in-process server knows as server mutants", () => {
    // eligibility and upload faults live beside the server; all others are in SERVER_FAULTS
    const beside = new Set(["media-tiny-limit", "eligibility-prefix-only", "eligibility-ignores-overrides", "eligibility-policy-ignored", "eligibility-no-normalisation"]);
    for (const m of PROSODY_SERVER_MUTANTS) assert.ok(SERVER_FAULTS.has(m.name) || beside.has(m.name), m.name);
  });
});

describe("Prosody backend: a clear error when Prosody is missing", () => {
  const saved = process.env.CHATCONFORM_PROSODY;
  afterEach(() => {
    if (saved === undefined) delete process.env.CHATCONFORM_PROSODY;
    else process.env.CHATCONFORM_PROSODY = saved;
  });

  it("says what to install and how", async () => {
    process.env.CHATCONFORM_PROSODY = "/nonexistent/prosody";
    assert.throws(() => findProsody(), (err: Error) => err instanceof ProsodyNotInstalledError && /apt-get install -y prosody/.test(err.message));
    await assert.rejects(startReferencePartner({ backend: "prosody" }), ProsodyNotInstalledError);
  });

  it("makes the CLI exit 3 with that message", () => {
    const r = spawnSync(process.execPath, [BIN, "run", "--partner-backend", "prosody", "--case", "transport/unknown-iq", "--out", path.join(os.tmpdir(), "chatconform-test-no-prosody")], {
      encoding: "utf8", env: { ...process.env, CHATCONFORM_PROSODY: "/nonexistent/prosody", NO_COLOR: "1" }, timeout: 60_000,
    });
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /Prosody is needed.*apt-get install -y prosody/s);
  });

  it("refuses an unknown backend and a backend beside --config (exit 3)", () => {
    const a = spawnSync(process.execPath, [BIN, "run", "--partner-backend", "ejabberd"], { encoding: "utf8", timeout: 60_000 });
    assert.equal(a.status, 3);
    assert.match(a.stderr, /--partner-backend ejabberd: must be one of builtin, prosody/);
    const b = spawnSync(process.execPath, [BIN, "run", "--partner-backend", "prosody", "--config", "endpoint.example.yaml"], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    assert.equal(b.status, 3);
    assert.match(b.stderr, /cannot be combined with --endpoint or --config/);
  });
});

const skipReason = prosodySkipReason();
const withProsody = skipReason ? describe.skip : describe;

withProsody(`Prosody backend: launcher and policy module${skipReason ? ` (skipped: ${skipReason})` : ""}`, function () {
  this.timeout(60_000);

  it("starts Prosody on free loopback ports with the reflector logged in, and stops it by pid, leaving nothing behind", async () => {
    const lines: string[] = [];
    const partner: ProsodyPartner = await startProsodyPartner({ testPrefix: "tpc-test-", log: (l) => lines.push(l) });
    let stopped = false;
    try {
      assert.match(partner.config.service, /^xmpp:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(partner.config.domain, "partner.test");
      assert.ok(alive(partner.pid));
      const cfg = readFileSync(path.join(partner.dir, "prosody.cfg.lua"), "utf8");
      for (const needle of ['interfaces = { "127.0.0.1" }', "c2s_require_encryption = true", "default_iteration_count = 64", '"phone+"', '"tpc"', '"blocklist"', '"pep"', '"http_file_share"', "tpc_eligibility_data"]) {
        assert.ok(cfg.includes(needle), `prosody.cfg.lua has ${needle}`);
      }
      assert.ok(lines.some((l) => /chatconform-ready partner\.test: 2 partner user\(s\), 1 gatekeeper user\(s\)/.test(l)), "mod_tpc provisioned the accounts");
      assert.ok(lines.some((l) => /Authenticated as reflector@partner\.test/.test(l)), "the reflector logged in");

      // A gatekeeper actor registers with its number; an ineligible one is refused before the account exists.
      const options = { service: partner.config.service, domain: partner.config.domain, tls: partner.config.tls };
      const conn = await XmppConnection.open(options);
      try {
        await conn.startTls();
        await assert.rejects(conn.register("tpc-test-launcher-gl", "pw", "+299 32 10 00"), (err: Error & { condition?: string; stanza?: { toString(): string } }) => {
          const text = String(err.stanza ?? err.message);
          return /not-allowed/.test(text) && /ineligible-region/.test(text) && /region=["']GL["']/.test(text);
        });
      } finally {
        conn.destroy();
      }
      const g = await XmppConnection.connectAndLogin(options, { username: "tpc-test-launcher-fr", password: "pw", resource: "r", register: { phone: "+33 6 12 34 56 78" } });
      try {
        const change = await g.iq(xml("iq", { type: "set", to: "partner.test" }, xml("number-change", { xmlns: NS.tpcAccount, number: "+299 32 10 00" })));
        const nc = change.getChild("number-change", NS.tpcAccount);
        assert.deepEqual({ number: nc?.attrs.number, region: nc?.attrs.region, status: nc?.attrs.status }, { number: "+299321000", region: "GL", status: "read-only" });
      } finally {
        await g.close();
      }

      const { pid, dir } = partner;
      await partner.stop();
      stopped = true;
      assert.equal(alive(pid), false, "Prosody exited");
      assert.equal(existsSync(dir), false, "the temp dir is gone");
    } finally {
      if (!stopped) await partner.stop();
    }
  });

  it("fails at once, with Prosody's words, when a module does not load", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-prosody-test-"));
    try {
      const { certPem, keyPem } = await generateCertificate("partner.test");
      writeFileSync(path.join(dir, "cert.pem"), certPem);
      writeFileSync(path.join(dir, "key.pem"), keyPem);
      const ports = await Promise.all([freePort(), freePort()]);
      const configFile = path.join(dir, "prosody.cfg.lua");
      writeFileSync(configFile, prosodyConfig({
        dir, domain: "partner.test", host: "127.0.0.1", c2sPort: ports[0], httpsPort: ports[1],
        certFile: path.join(dir, "cert.pem"), keyFile: path.join(dir, "key.pem"), dataFile: path.join(dir, "missing-data.lua"),
        tpcFaults: [], partnerUsers: [], gatekeeperUsers: [],
      }));
      const started = Date.now();
      await assert.rejects(
        startProsodyProcess({ configFile, cwd: dir, c2s: { host: "127.0.0.1", port: ports[0] }, https: { host: "127.0.0.1", port: ports[1] } }),
        (err: Error) => err instanceof ProsodyStartError && /could not load a module/.test(err.message) && /missing-data\.lua/.test(err.message),
      );
      assert.ok(Date.now() - started < 20_000, "not by the startup deadline");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a mutant that has no Prosody counterpart, saying why", async () => {
    await assert.rejects(startProsodyPartner({ testPrefix: "tpc-test-", mutant: "out-of-order-delivery" }), MutantNotOnProsodyError);
  });

  it("Prosody stops by itself, and removes the temp dir, when the process that started it is killed", async () => {
    const child = spawn(process.execPath, [BIN, "partner", "--backend", "prosody", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("Ctrl-C stops the partner")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`partner exited early (${code}): ${out}`)));
    });
    const ps = spawnSync("ps", ["-o", "pid=,args=", "--ppid", String(child.pid)], { encoding: "utf8" });
    const line = ps.stdout.split("\n").find((l) => l.includes("prosody"));
    assert.ok(line, `a prosody child: ${ps.stdout}`);
    const dir = /--config (\S+)\/prosody\.cfg\.lua/.exec(line)![1]!;
    const port = Number(/listening on xmpp:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]);
    // A connection of our own: its close is the event that Prosody has shut down.
    const socket = net.connect(port, "127.0.0.1");
    await once(socket, "connect");
    const closed = once(socket, "close");
    socket.on("error", () => undefined);
    socket.resume(); // read (and discard) what comes, so that its end is seen
    child.kill("SIGKILL");
    await closed;
    // mod_tpc removes the dir as Prosody finishes stopping, just after its sockets close.
    await new Promise<void>((resolve) => {
      const watcher = watch(path.dirname(dir), () => check());
      const check = () => {
        if (existsSync(dir)) return;
        watcher.close();
        resolve();
      };
      check(); // it may be gone already, before the watcher started
    });
    assert.equal(existsSync(dir), false, "and removed the temp dir");
  });
});
