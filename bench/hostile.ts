// Hostile endpoints in the bench: the real CLI against each mode of the hostile test server
// (test/hostile/server.ts), with the default limits (maxStanzaBytes 1 MiB, maxInboundBytesPerSecond
// 1 MiB/s) and 1 s phase deadlines. For each mode: exit code, wall time, the CLI's peak RSS, and for
// the flood and oversized-stanza modes how much the server pushed before the suite hung up.
// Printed, never asserted.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startHostileServer } from "../test/hostile/server.ts";
import type { HostileMode } from "../test/hostile/server.ts";
import { ACCOUNTS, hostileCertificates, runCli, writeEndpoint } from "../test/hostile/harness.ts";

const PRELOAD = fileURLToPath(new URL("./report-rss.mjs", import.meta.url));
const CASES = "transport/plain-only-over-tls,transport/unknown-iq,transport/error-stanzas-well-formed";
const PHASE_MS = 1000;
/**
 * The stated bound on the CLI's peak RSS in the oversized-stanza and flood modes with the default
 * limits (docs/troubleshooting.md): a well-behaved run of these cases peaks at ~160 MiB (mostly the
 * suite's own modules); the limits end a hostile stream before it adds more than ~100 MiB.
 */
const MEMORY_BOUND = 256 * 1024 * 1024;

/** Modes and the connection from which each misbehaves (3: after the run's first two connections). */
const MODES: [HostileMode, number][] = [
  ["good", 1], ["drip", 1], ["silent", 1], ["non-xml", 1], ["malformed-xml", 1], ["dtd", 1], ["stream-error", 1], ["slowloris", 1],
  ["stall-stream", 3], ["stall-starttls", 3], ["stall-tls", 3], ["stall-sasl", 3], ["stall-bind", 3], ["sasl-failure", 1],
  ["scram-bad-signature", 1], ["disconnect", 3], ["stream-error-mid", 3], ["iq-never", 3], ["oversized-stanza", 3], ["flood", 3],
];

const mib = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;

/** `only`: a subset of the modes (npm run bench -- hostile good,flood); "good" is always run, as the baseline. */
export async function benchHostile(only?: string[]): Promise<void> {
  const certs = await hostileCertificates();
  console.log(`hostile endpoints: the CLI against each mode (default limits, ${PHASE_MS} ms phase deadlines, 3 transport cases, one at a time)`);
  console.log(`  ${"mode".padEnd(20)} ${"exit".padStart(4)} ${"wall".padStart(7)} ${"peak RSS".padStart(10)}  server pushed`);
  const rows: { mode: string; rss: number }[] = [];
  for (const [mode, from] of MODES.filter(([m]) => !only || m === "good" || only.includes(m))) {
    const server = await startHostileServer({ mode, from, certificate: certs.good, accounts: ACCOUNTS });
    const endpoint = writeEndpoint({
      port: server.port, caPem: certs.good.certPem,
      timeouts: Object.fromEntries(["connect", "stream", "tls", "sasl", "bind", "iq", "stanza"].map((k) => [k, PHASE_MS])),
      // The defaults of the config (src/config/config.ts), not the tests' small limits.
      maxStanzaBytes: 1024 * 1024, maxInboundBytesPerSecond: 1024 * 1024,
    });
    const rssDir = mkdtempSync(path.join(os.tmpdir(), "chatconform-bench-rss-"));
    const rssFile = path.join(rssDir, "maxrss");
    const run = await runCli(["run", "--config", endpoint.config, "--out", endpoint.out, "--case", CASES, "--quiet"], {
      env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${PRELOAD}`.trim(), CHATCONFORM_BENCH_RSS_FILE: rssFile },
    });
    await server.stop();
    let rss = Number.NaN;
    try {
      rss = Number(readFileSync(rssFile, "utf8")) * 1024;
    } catch {
      // no figure: the process died before its exit handler
    }
    rmSync(rssDir, { recursive: true, force: true });
    rmSync(endpoint.dir, { recursive: true, force: true });
    rows.push({ mode, rss });
    const pushed = mode === "flood" || mode === "oversized-stanza" ? mib(server.floodBytes()) : "";
    console.log(`  ${mode.padEnd(20)} ${String(run.code ?? run.signal).padStart(4)} ${`${(run.ms / 1000).toFixed(2)} s`.padStart(7)} ${mib(rss).padStart(10)}  ${pushed}`);
  }
  const baseline = rows.find((r) => r.mode === "good")!.rss;
  for (const mode of ["oversized-stanza", "flood"]) {
    const row = rows.find((r) => r.mode === mode);
    if (!row) continue;
    const within = row.rss <= MEMORY_BOUND ? "within" : "ABOVE";
    console.log(`  ${mode}: peak RSS ${mib(row.rss)} (${mib(row.rss - baseline)} above the well-behaved run), ${within} the stated bound of ${mib(MEMORY_BOUND)}`);
  }
}
