// report.html in a real browser: headless Chromium (Debian's `chromium`, driven by playwright-core)
// opens the page written by the live HTML reporter from a fake run, offline, and the test asserts
// on what a person sees: the verdict banner, the requirement matrix and its links, the case panels
// with Expected/Actual and the transcript, the filters and the timing chart. A transcript's
// <script> must show as text and run nothing. The screenshot goes to reports/html-screenshot.png.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Browser, Page } from "playwright-core";
import { createReporters, parseReporterList, resolveReporters } from "../src/report/reporters.ts";
import { FakeStream, IMG, SCRIPT, fakeRun, newEvents } from "./fake-runner.ts";

const CHROMIUM = "/usr/bin/chromium";
const root = fileURLToPath(new URL("..", import.meta.url));
export const SCREENSHOT = path.join(root, "reports", "html-screenshot.png");

describe(`HTML report in headless Chromium (${CHROMIUM})`, function () {
  this.timeout(60_000);
  let browser: Browser | undefined;
  let page: Page;
  let pageUrl: string;
  let junitText: string;
  const requests: string[] = [];
  const problems: string[] = [];

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      // Skipped, never passed: CI installs it (apt-get install chromium).
      process.stderr.write(`    skipped: ${CHROMIUM} not found; install Debian's chromium package (apt-get install -y chromium) to run the browser test\n`);
      this.skip();
    }
    const outDir = path.join(mkdtempSync(path.join(os.tmpdir(), "chatconform-html-")), "run");
    const set = await createReporters(await resolveReporters(parseReporterList(["html", "junit"])), { outDir, secrets: ['hunter2"s3cr3t\\pw'], stdout: new FakeStream() });
    const events = newEvents();
    set.attach(events);
    fakeRun(events);
    await set.done();
    pageUrl = pathToFileURL(path.join(outDir, "report.html")).href;
    junitText = readFileSync(path.join(outDir, "report.junit.xml"), "utf8");

    const { chromium } = await import("playwright-core");
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, offline: true });
    page = await context.newPage();
    page.on("request", (r) => requests.push(r.url()));
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => problems.push(`console ${m.type()}: ${m.text()}`));
    // Record any Content-Security-Policy violation: there must be none (nothing tries to run or load).
    await page.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        ((window as unknown as { __violations?: string[] }).__violations ??= []).push(`${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    await page.goto(pageUrl);
  });

  after(async () => {
    await browser?.close();
  });

  it("shows the verdict banner", async () => {
    const banner = page.locator("#verdict");
    assert.equal(await banner.getAttribute("data-verdict"), "non-compliant");
    assert.equal(await banner.locator(".verdict-label").innerText(), "non-compliant");
    assert.match(await banner.innerText(), /a MUST requirement fails/);
    assert.match(await banner.innerText(), /Endpoint\s+xmpp:\/\/127\.0\.0\.1:5222 \(fake endpoint\)/);
    // White on red, as a banner should be.
    assert.equal(await banner.evaluate((el) => getComputedStyle(el).backgroundColor), "rgb(207, 34, 46)");
  });

  it("loads nothing from the network and runs nothing from the report", async () => {
    assert.deepEqual(requests, [pageUrl]);
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
    assert.deepEqual(await page.evaluate(() => (window as unknown as { __violations?: string[] }).__violations ?? []), []);
    assert.deepEqual(problems, []);
    assert.equal(await page.locator("script").count(), 1, "only the page's own script");
    assert.equal(await page.locator("img").count(), 0, "the <img> of the transcript is text, not an element");
  });

  it("shows a <script> from a transcript as text", async () => {
    const panel = page.locator('details.case[data-status="fail"]');
    assert.equal(await panel.getAttribute("open"), "", "a failed case's panel starts open");
    const row = panel.locator('tr[id="case-encryption/replay-seq-2"]');
    assert.ok(await row.isVisible());
    const wire = await row.locator("td.wire pre").innerText();
    assert.ok(wire.includes(SCRIPT), wire);
    assert.ok(wire.includes(IMG), wire);
    assert.ok(wire.includes("[U+001B]"), "control characters are shown");
    assert.equal(await row.locator("td.plain pre").innerText(), `{"kind":"receipt","note":"${SCRIPT}"}`);
  });

  it("puts the wire stanza and the decrypted payload side by side, with timestamps", async () => {
    const row = page.locator('tr[id="case-encryption/replay-seq-1"]');
    const cells = await row.locator("td").allInnerTexts();
    assert.equal(cells[0], "1");
    assert.equal(cells[1], "+5 ms");
    assert.equal(cells[2], "alice");
    assert.match(cells[4]!, /^<message id='m1'><auth>\[redacted\]<\/auth><encrypted>CIPHERTEXT-TWO<\/encrypted><\/message>$/);
    assert.equal(cells[5], '{"text":"hi [redacted]"}');
    const wire = await row.locator("td.wire").boundingBox();
    const plain = await row.locator("td.plain").boundingBox();
    assert.ok(wire && plain && plain.x > wire.x + wire.width - 1 && Math.abs(plain.y - wire.y) < 1, "side by side");
    assert.equal(await page.locator('tr[id="case-encryption/replay-seq-2"]').getAttribute("class"), "dir-in evidence");
  });

  it("shows Expected and Actual for the failed requirement", async () => {
    const failure = page.locator('details[id="case-encryption/replay"] .failure');
    const text = await failure.innerText();
    assert.match(text, /ENC-10\s+MUST\s+ENC-10 requirement text\./);
    assert.match(text, /Expected\s+exactly one receipt for m1 \| no more/);
    assert.match(text, /Actual\s+2 receipts; the second one said <script>window\.__pwned=1<\/script> @octocat/);
    assert.match(text, /Evidence\s+#2 #99 \(not in the transcript\)/);
  });

  it("has a requirement matrix whose links open the case", async () => {
    const row = page.locator('#matrix tr[data-id="ENC-10"]');
    assert.equal(await row.locator("td.cell.on").innerText(), "✖");
    assert.equal(await row.locator("td.cell.on").getAttribute("title"), "fail");
    assert.equal(await page.locator('#matrix tr[data-id="ENC-20"] td.cell.on').getAttribute("title"), "uncovered");
    const prekeys = page.locator('details[id="case-encryption/prekeys"]');
    assert.equal(await prekeys.getAttribute("open"), null);
    await page.locator('#matrix tr[data-id="ENC-03"] a.case-link').click();
    // The page opens the panel on hashchange; wait for it (bounded), no fixed sleep.
    await page.waitForFunction(() => (document.getElementById("case-encryption/prekeys") as HTMLDetailsElement).open, null, { timeout: 5000 });
    assert.equal(new URL(page.url()).hash, "#case-encryption/prekeys");
    assert.ok(await prekeys.locator(".reason").isVisible());
    assert.equal(await prekeys.locator(".reason").innerText(), "not tested: hook state missing");
  });

  it("filters by status, area, requirement and text", async () => {
    const visible = async () => (await page.locator("details.case:visible").evaluateAll((els) => els.map((e) => e.id))).sort();
    const count = page.locator("#f-count");
    // Filtered-out (skip) cases start hidden.
    assert.deepEqual(await visible(), ["case-encryption/prekeys", "case-encryption/replay", "case-encryption/text-roundtrip", "case-lifecycle/hooks"]);
    assert.equal(await count.innerText(), "showing 4 of 5 cases, 5 of 6 requirements");
    await page.locator('#filters input[value="pass"]').uncheck();
    assert.ok(!(await visible()).includes("case-encryption/text-roundtrip"));
    await page.locator("#f-area").selectOption("lifecycle");
    assert.deepEqual(await visible(), ["case-lifecycle/hooks"]);
    assert.deepEqual(await page.locator("#matrix tbody tr:visible").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-id"))), ["LIF-02"]);
    await page.locator("#f-reset").click();
    assert.equal(await count.innerText(), "showing 5 of 5 cases, 6 of 6 requirements");
    await page.locator("#f-req").selectOption("ENC-06");
    assert.deepEqual(await visible(), ["case-encryption/replay", "case-encryption/text-roundtrip"]);
    await page.locator("#f-req").selectOption("");
    await page.locator("#f-text").fill("HOOK STATE");
    assert.deepEqual(await visible(), ["case-encryption/prekeys"]);
    await page.locator("#f-reset").click();
  });

  it("draws a timing chart of the cases that ran", async () => {
    const chart = page.locator("#timing svg.chart");
    assert.ok(await chart.isVisible());
    const labels = await chart.locator("text.label").allTextContents();
    assert.deepEqual(labels, ["encryption/replay", "encryption/text-roundtrip", "lifecycle/hooks", "encryption/prekeys"]);
    const widths = await chart.locator("rect.dur").evaluateAll((rects) => rects.map((r) => Number(r.getAttribute("width"))));
    assert.ok(widths[0]! > widths[1]! && widths[1]! > widths[2]!, widths.join(","));
    assert.equal(await chart.locator("rect.wait").count(), 1, "the timeout wait of encryption/replay");
    assert.match(await page.locator("#timing .note").innerText(), /The 4 slowest of 4 cases that ran; case time 1\.8 s in all, wall time 2\.5 s/);
  });

  it("parses the JUnit file as strict XML", async () => {
    const result = await page.evaluate((text) => {
      const doc = new DOMParser().parseFromString(text, "application/xml");
      return { error: doc.querySelector("parsererror")?.textContent ?? null, cases: doc.querySelectorAll("testcase").length };
    }, junitText);
    assert.deepEqual(result, { error: null, cases: 5 });
  });

  it("saves a readable screenshot to reports/html-screenshot.png", async () => {
    await page.goto(pageUrl);
    await page.setViewportSize({ width: 1280, height: 1600 });
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: false });
    const png = readFileSync(SCREENSHOT);
    assert.equal(png.subarray(1, 4).toString("latin1"), "PNG");
    assert.equal(png.readUInt32BE(16), 1280);
    assert.equal(png.readUInt32BE(20), 1600);
  });
});
