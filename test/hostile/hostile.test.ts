// Hostile and dead endpoints (issue 9): the real CLI against a hostile loopback server in each of
// its modes. For every mode the run ends on its own well before its deadline, does not crash,
// gives each case the right status with a readable reason, writes a report.json valid against the
// schema, and exits with the documented code. Modes run in parallel (a few at a time); no sleeps:
// stalls are "never answer" and the client's short deadlines (800 ms) end them.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import type { ChildProcess } from "node:child_process";
import { validateReport } from "../../src/report/json.ts";
import { DEFAULT_CASE_TIMEOUT_MS } from "../../src/runner/runner.ts";
import { startHostileServer } from "./server.ts";
import type { HostileMode, HostileServer } from "./server.ts";
import { ACCOUNTS, hostileCertificates, readReport, runCli, writeEndpoint } from "./harness.ts";
import { fileURLToPath } from "node:url";
import type { CliRun, Certificates, HostileReport } from "./harness.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const P = "transport/plain-only-over-tls"; // a negotiation probe: no login
const U = "transport/unknown-iq"; // login without OMEMO keys, then IQs it expects errors for
const E = "transport/error-stanzas-well-formed"; // login with OMEMO keys published, then errors
const CASES = [P, U, E];

type Status = "pass" | "fail" | "error" | "not-tested" | "skip";

interface Scenario {
  name: string;
  /** Omitted: nothing listens on the port. */
  mode?: HostileMode;
  from?: number;
  cert?: keyof Certificates;
  /** Where the trust in the certificate comes from: the config's tls.ca (default), --ca FILE, or nowhere. */
  trust?: "config" | "flag" | "none";
  args?: string[];
  timeouts?: Record<string, number>;
  maxInboundBytesPerSecond?: number;
  /** Signals the child when the server starts misbehaving (SIGINT mid-run). */
  interrupt?: { signal: NodeJS.Signals; twice?: boolean };
  exit: number;
  statuses?: Record<string, Status>;
  /** Must match the run's incompleteReason (preflight failures, interruptions). */
  incomplete?: RegExp;
  /** Must match the reason of every case whose expected status is error (or the failure's actual, for fail). */
  reason?: RegExp;
  /** Further checks on the outcome. */
  also?: (outcome: Outcome) => void;
}

interface Outcome {
  run: CliRun;
  report?: HostileReport;
  raw?: unknown;
  server?: HostileServer;
}

const all = (status: Status) => Object.fromEntries(CASES.map((c) => [c, status])) as Record<string, Status>;
const probeOk = (rest: Status) => ({ [P]: "pass", [U]: rest, [E]: rest }) as Record<string, Status>;

const SCENARIOS: Scenario[] = [
  { name: "refused connection", exit: 2, statuses: all("skip"), incomplete: /First connection to xmpp:\/\/127\.0\.0\.1:\d+ failed: connection to 127\.0\.0\.1:\d+ refused\. Try: is the endpoint running, and is the port right\?/ },
  { name: "silent server", mode: "silent", exit: 2, statuses: all("skip"), incomplete: /failed: stream features did not answer within 800 ms\./ },
  {
    name: "non-XML bytes", mode: "non-xml", exit: 2, statuses: all("skip"), incomplete: /not-well-formed: the stream does not start with XML: bytes ff fe 00 01 .*Try: is this the endpoint's XMPP client port\?/,
    also: ({ server }) => assert.ok(server!.clientStreamErrors.includes("not-well-formed"), "the suite tells the server not-well-formed"),
  },
  { name: "malformed XML", mode: "malformed-xml", exit: 2, statuses: all("skip"), incomplete: /not-well-formed: <\/stream:features> where <\/starttls> was expected/ },
  {
    name: "a DTD with entity expansion", mode: "dtd", exit: 2, statuses: all("skip"), incomplete: /refused as restricted-xml: the stream carries a DTD or an entity declaration .*RFC 6120 §11\.1/,
    also: ({ server }) => assert.ok(server!.clientStreamErrors.includes("restricted-xml"), "the suite ends the stream with <restricted-xml/>"),
  },
  // Also the baseline: a server that behaves (if slowly) passes.
  { name: "byte-by-byte responses (drip), a well-behaved server otherwise", mode: "drip", exit: 0, statuses: all("pass") },
  { name: "stall at stream open", mode: "stall-stream", from: 3, exit: 2, statuses: all("error"), reason: /^steps\[0\] (probe|connect alice): stream features did not answer within 800 ms$/ },
  { name: "stall at STARTTLS", mode: "stall-starttls", from: 3, exit: 2, statuses: all("error"), reason: /^steps\[0\] (probe|connect alice): STARTTLS did not answer within 800 ms$/ },
  { name: "stall in the TLS handshake", mode: "stall-tls", from: 3, exit: 2, statuses: all("error"), reason: /^steps\[0\] (probe|connect alice): TLS handshake did not answer within 800 ms$/ },
  { name: "stall at SASL", mode: "stall-sasl", from: 3, exit: 2, statuses: probeOk("error"), reason: /^steps\[0\] connect alice: SASL did not answer within 800 ms$/ },
  { name: "stall at bind", mode: "stall-bind", from: 3, exit: 2, statuses: probeOk("error"), reason: /^steps\[0\] connect alice: resource binding did not answer within 800 ms$/ },
  { name: "SASL failure", mode: "sasl-failure", exit: 2, statuses: probeOk("skip"), incomplete: /authentication failed: not-authorized .*Try: check the username and password of accounts\.static in the config\./ },
  { name: "bad certificate: self-signed, not trusted", mode: "good", trust: "none", exit: 2, statuses: all("skip"), incomplete: /self-signed and not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)\. Try: pass the endpoint's certificate or the CA that signed it with --ca FILE/ },
  {
    name: "bad certificate: self-signed, trusted with --ca FILE", mode: "good", trust: "flag", exit: 0, statuses: all("pass"),
    also: ({ report }) => assert.match(JSON.stringify(report!.run.config?.tls), /"caSha256":"[0-9a-f]{64}"/),
  },
  { name: "bad certificate: wrong host name", mode: "good", cert: "wrongHost", exit: 2, statuses: all("skip"), incomplete: /certificate does not match the host name hostile\.test .*DNS:other\.example.*Try: set domain to the name the certificate is for, or tls\.servername/ },
  { name: "bad certificate: expired", mode: "good", cert: "expired", exit: 2, statuses: all("skip"), incomplete: /TLS certificate has expired\. Try: renew the endpoint's certificate; --insecure skips verification/ },
  {
    name: "bad certificate: expired, with --insecure (the report says so)", mode: "good", cert: "expired", args: ["--insecure"], exit: 0, statuses: all("pass"),
    also: ({ report, run }) => {
      assert.equal(report!.run.config?.tls.insecure, true);
      assert.equal(report!.run.tls?.verified, false);
      assert.match(run.stderr, /warning: TLS certificate verification is off/);
    },
  },
  { name: "mid-session disconnect", mode: "disconnect", from: 3, exit: 2, statuses: probeOk("error"), reason: /^steps\[[01]\] (connect|iq) alice: the endpoint closed the connection$/ },
  { name: "a stream error mid-session", mode: "stream-error-mid", from: 3, exit: 2, statuses: probeOk("error"), reason: /^steps\[[01]\] (connect|iq) alice: the server ended the stream: system-shutdown \("going down for maintenance"\)$/ },
  {
    name: "IQs never answered", mode: "iq-never", from: 3, exit: 1, statuses: { [P]: "pass", [U]: "fail", [E]: "error" },
    also: ({ report }) => {
      const unknownIq = report!.cases.find((c) => c.id === U)!;
      // The case is about answering IQs: the silence is its failure, with the deadline as the actual.
      assert.equal(unknownIq.failures[0]!.requirement, "TRN-03");
      assert.match(unknownIq.failures[0]!.actual, /^IQ get query \(urn:x-chatconform:unknown:0\) did not answer within 800 ms$/);
      assert.match(report!.cases.find((c) => c.id === E)!.reason!, /^steps\[0\] connect alice: IQ set pubsub \(http:\/\/jabber\.org\/protocol\/pubsub\) did not answer within 800 ms$/);
    },
  },
  {
    name: "an oversized stanza", mode: "oversized-stanza", from: 3, exit: 2, statuses: probeOk("error"), reason: /^steps\[[01]\] (connect|iq) alice: the endpoint's stream exceeded a limit: a stanza exceeded the limit of 65536 bytes$/,
    also: ({ server }) => assert.ok(server!.clientStreamErrors.includes("policy-violation")),
  },
  // A low rate limit, so that it trips on the first reads whatever the machine's load: a client slower
  // than the flood would otherwise see its IQ answers stuck behind it and time out first.
  {
    name: "a flood of stanzas", mode: "flood", from: 3, maxInboundBytesPerSecond: 65536, exit: 2, statuses: probeOk("error"),
    // The case's reason proves the limit tripped; whether the suite's <policy-violation/> reaches the
    // flooding server before the socket goes is up to the server's own read loop, so it is not asserted.
    reason: /^steps\[[0-2]\] (connect|iq) alice: the endpoint sent data faster than the limit of 65536 bytes per second$/,
  },
  {
    name: "an exception thrown from a callback and a rejection nobody handles, inside cases", mode: "good",
    args: ["--reporter", path.join(HERE, "throwing-reporter.ts")], exit: 2,
    statuses: { [P]: "pass", [U]: "error", [E]: "error" }, reason: /^steps\[0\] connect alice: uncaught error: (thrown from a callback|rejected and never handled)$/,
  },
  {
    name: "SIGINT mid-run writes an incomplete report", mode: "iq-never", from: 3, args: ["--jobs", "1"], timeouts: { iq: 30_000, stanza: 30_000, grace: 300 },
    interrupt: { signal: "SIGINT" }, exit: 2, statuses: { [E]: "not-tested", [P]: "skip", [U]: "skip" },
    incomplete: /^interrupted by SIGINT: 2 selected case\(s\) did not run, 1 stopped after the grace of 300 ms\.$/,
    also: ({ report }) => {
      assert.equal(report!.verdict, "incomplete");
      assert.match(report!.cases.find((c) => c.id === E)!.reason!, /^interrupted by SIGINT: stopped after the grace of 300 ms \(in steps\[0\] connect alice\)$/);
      assert.equal(report!.cases.find((c) => c.id === P)!.reason, "not run: the run was interrupted (SIGINT)");
    },
  },
  {
    name: "SIGTERM mid-run writes an incomplete report", mode: "iq-never", from: 3, args: ["--jobs", "1"], timeouts: { iq: 30_000, stanza: 30_000, grace: 300 },
    interrupt: { signal: "SIGTERM" }, exit: 2, statuses: { [E]: "not-tested", [P]: "skip", [U]: "skip" }, incomplete: /^interrupted by SIGTERM: /,
  },
  {
    name: "a second SIGINT exits at once with 130", mode: "iq-never", from: 3, args: ["--jobs", "1"], timeouts: { iq: 30_000, stanza: 30_000, grace: 30_000 },
    interrupt: { signal: "SIGINT", twice: true }, exit: 130,
  },
];

async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function interrupter(server: HostileServer, interrupt: NonNullable<Scenario["interrupt"]>): (child: ChildProcess) => void {
  return (child) => {
    // Signal when a case is stuck at the server (an IQ it never answers): a case is surely running.
    server.events.once("misbehaving", () => {
      child.kill(interrupt.signal);
      if (!interrupt.twice) return;
      let said = "";
      child.stderr!.on("data", (d: string) => {
        said += d;
        if (/no new cases start/.test(said)) {
          said = "";
          child.kill(interrupt.signal);
        }
      });
    });
  };
}

async function play(scenario: Scenario, certs: Certificates): Promise<Outcome> {
  const cert = certs[scenario.cert ?? "good"];
  const server = scenario.mode ? await startHostileServer({ mode: scenario.mode, from: scenario.from, certificate: cert, accounts: ACCOUNTS }) : undefined;
  try {
    const port = server?.port ?? (await closedPort());
    const trust = scenario.trust ?? "config";
    const endpoint = writeEndpoint({ port, caPem: trust === "config" ? cert.certPem : undefined, timeouts: scenario.timeouts, maxInboundBytesPerSecond: scenario.maxInboundBytesPerSecond });
    const args = ["run", "--config", endpoint.config, "--out", endpoint.out, "--case", CASES.join(","), "--reporter", "console,json", ...(scenario.args ?? [])];
    if (trust === "flag") {
      const caFile = path.join(endpoint.dir, "trusted-ca.pem");
      writeFileSync(caFile, cert.certPem);
      args.push("--ca", caFile);
    }
    const run = await runCli(args, { onSpawn: scenario.interrupt && server ? interrupter(server, scenario.interrupt) : undefined });
    const written = readReport(endpoint.out);
    rmSync(endpoint.dir, { recursive: true, force: true });
    return { run, report: written?.doc, raw: written?.raw, server };
  } finally {
    await server?.stop();
  }
}

/** Run `tasks` with at most `limit` at once. */
async function pool<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await tasks[index]!();
    }
  }));
  return results;
}

// HOSTILE_ONLY=regex plays only the scenarios whose name matches (when debugging one mode).
const PLAYED = process.env.HOSTILE_ONLY ? SCENARIOS.filter((s) => new RegExp(process.env.HOSTILE_ONLY!).test(s.name)) : SCENARIOS;

describe("hostile and dead endpoints (the CLI against a hostile server)", function () {
  this.timeout(240_000);
  const outcomes = new Map<string, Outcome>();

  before(async function () {
    const certs = await hostileCertificates();
    // Two at a time: each CLI start costs ~1.5 s of CPU, and a starved child misses 800 ms deadlines.
    const results = await pool(PLAYED.map((s) => () => play(s, certs)), 2);
    PLAYED.forEach((s, i) => outcomes.set(s.name, results[i]!));
  });

  // HOSTILE_VERBOSE=1 prints each mode's exit code, wall time and case statuses.
  after(() => {
    if (!process.env.HOSTILE_VERBOSE) return;
    for (const [name, { run, report }] of outcomes) {
      const got = report ? CASES.map((id) => report.cases.find((c) => c.id === id)?.status ?? "-").join(" ") : "(no report)";
      console.log(`  ${name.padEnd(90)} exit ${String(run.code).padStart(3)}  ${(run.ms / 1000).toFixed(1).padStart(5)} s  ${got}`);
    }
  });

  for (const scenario of PLAYED) {
    it(`${scenario.name}: exit ${scenario.exit}`, () => {
      const { run, report, raw } = outcomes.get(scenario.name)!;
      const said = `${run.stdout}\n${run.stderr}`;
      assert.equal(run.killed, false, `the run hung and was killed by the test's backstop:\n${said}`);
      assert.equal(run.signal, null, `the process died of a signal:\n${said}`);
      assert.doesNotMatch(run.stderr, /internal error|Unhandled|TypeError|at .*\.ts:\d+/, "nothing escaped as a crash");
      assert.equal(run.code, scenario.exit, said);
      if (scenario.exit === 130) return; // exits at once, without waiting for the report
      assert.ok(report, `report.json was written:\n${said}`);
      assert.deepEqual(validateReport(raw), [], "report.json is valid against the schema");
      assert.ok(Date.parse(report.finishedAt) - Date.parse(report.startedAt) < DEFAULT_CASE_TIMEOUT_MS, "the run ended before a case deadline");
      const got = Object.fromEntries(CASES.map((id) => [id, report.cases.find((c) => c.id === id)?.status]));
      assert.deepEqual(got, scenario.statuses, JSON.stringify(report.cases.filter((c) => CASES.includes(c.id)).map((c) => [c.id, c.status, c.reason]), null, 1));
      if (scenario.incomplete) {
        assert.equal(report.incomplete, true);
        assert.match(report.incompleteReason ?? "", scenario.incomplete);
        // Said once, in the run's reason; cases that did not run point to it without failing one by one.
        assert.match(run.stdout, /Run incomplete: /);
      }
      for (const c of report.cases.filter((x) => CASES.includes(x.id))) {
        if (c.status === "error") {
          assert.ok(c.reason, `${c.id} has a reason`);
          if (scenario.reason) assert.match(c.reason, scenario.reason, `${c.id}: ${c.reason}`);
        }
        if (c.status === "skip" && scenario.incomplete) assert.match(c.reason ?? "", /^not run: /);
      }
      scenario.also?.(outcomes.get(scenario.name)!);
    });
  }
});
