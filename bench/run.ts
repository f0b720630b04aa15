// npm run bench: the whole catalogue against the in-process reference partner, timed; then the CLI
// against each mode of the hostile test server (bench/hostile.ts), with peak memory and wall time.
// `npm run bench -- hostile [mode,…]` runs only the hostile part (or some of its modes). Figures are printed, never asserted.
import { listCaseFiles, loadCases, DEFAULT_CASES_DIR } from "../src/cases/loader.ts";
import { loadRequirements } from "../src/checks/requirements.ts";
import { startReferencePartner } from "../src/partner/index.ts";
import { runSuite } from "../src/runner/suite.ts";
import { randomBytes } from "node:crypto";
import { XmppConnection } from "../src/protocol/connection.ts";
import { discoverUploadService, httpGet, httpPut, requestSlot } from "../src/protocol/upload.ts";
import { benchHostile } from "./hostile.ts";

const only = process.argv[2];
if (only === "hostile") {
  await benchHostile(process.argv[3]?.split(","));
  process.exit(0);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

const requirements = loadRequirements();
const { cases, problems } = loadCases(requirements, listCaseFiles(DEFAULT_CASES_DIR));
if (problems.length) throw new Error(`case files have problems; run chatconform lint`);

for (const jobs of [1, 4]) {
  const startupStarted = performance.now();
  const partner = await startReferencePartner();
  const startupMs = performance.now() - startupStarted;
  const started = performance.now();
  const run = await runSuite({ config: partner.config, endpointDescription: "bench", requirements, allCases: cases, selected: cases, jobs, command: "bench" });
  const wallMs = performance.now() - started;
  await partner.stop();
  const durations = run.results.map((r) => r.durationMs).sort((a, b) => a - b);
  const timeoutWait = run.results.reduce((sum, r) => sum + r.timeoutWaitMs, 0);
  const passingTimeoutWait = run.results.filter((r) => r.status === "pass").reduce((sum, r) => sum + r.timeoutWaitMs, 0);
  console.log(`catalogue, --jobs ${jobs}: ${run.results.length} cases, verdict ${run.verdict}`);
  console.log(`  partner start-up        ${startupMs.toFixed(0)} ms`);
  console.log(`  full-run wall time      ${(wallMs / 1000).toFixed(2)} s`);
  console.log(`  cases per second        ${(run.results.length / (wallMs / 1000)).toFixed(2)}`);
  console.log(`  case duration median    ${percentile(durations, 50)} ms`);
  console.log(`  case duration p95       ${percentile(durations, 95)} ms`);
  console.log(`  waiting on timeouts     ${timeoutWait} ms (passing cases: ${passingTimeoutWait} ms)`);
  console.log(`  peak RSS                ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
}
// Media: the catalogue's media cases alone, and 16 MiB through the upload service.
{
  const media = cases.filter((c) => c.area === "media");
  const partner = await startReferencePartner();
  const started = performance.now();
  const run = await runSuite({ config: partner.config, endpointDescription: "bench", requirements, allCases: cases, selected: media, jobs: 4, command: "bench" });
  const wallMs = performance.now() - started;
  console.log(`media catalogue, --jobs 4: ${media.length} cases in ${(wallMs / 1000).toFixed(2)} s (${run.summary.pass} pass)`);

  const conn = await XmppConnection.connectAndLogin(
    { service: partner.config.service, domain: partner.config.domain, tls: partner.config.tls },
    { username: "tpc-test-bench", password: "bench-password", register: { phone: "+33612345678" } },
  );
  const service = await discoverUploadService(conn, partner.config.domain);
  const size = service?.maxFileSize ?? 16 * 1024 * 1024;
  const blob = randomBytes(size);
  const slot = await requestSlot(conn, service!.jid, { filename: "bench.bin", size, contentType: "application/octet-stream" });
  const putStarted = performance.now();
  await httpPut(slot.putUrl, blob, { ca: partner.config.tls.ca, headers: slot.headers });
  const putMs = performance.now() - putStarted;
  const getStarted = performance.now();
  const got = await httpGet(slot.getUrl, { ca: partner.config.tls.ca, maxBytes: size + 1024 });
  const getMs = performance.now() - getStarted;
  const mib = size / (1024 * 1024);
  console.log(`upload ${mib.toFixed(1)} MiB: PUT ${putMs.toFixed(0)} ms (${(mib / (putMs / 1000)).toFixed(0)} MiB/s), GET ${getMs.toFixed(0)} ms (${(mib / (getMs / 1000)).toFixed(0)} MiB/s), intact: ${got.body.equals(blob)}`);
  await conn.close();
  await partner.stop();
}
await benchHostile();
process.exit(0);
