// npm run bench: the whole catalogue against the in-process reference partner, timed.
// Figures are printed, never asserted: a benchmark is not a test.
import { listCaseFiles, loadCases, DEFAULT_CASES_DIR } from "../src/cases/loader.ts";
import { loadRequirements } from "../src/checks/requirements.ts";
import { startReferencePartner } from "../src/partner/index.ts";
import { runSuite } from "../src/runner/suite.ts";

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
process.exit(0);
