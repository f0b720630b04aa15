// The HTML reporter: report.html, one self-contained file that opens offline (no network, no
// external asset): the verdict banner, the requirement matrix with links to the cases, a panel per
// case with Expected/Actual and the full stanza transcript (wire stanza and decrypted payload side
// by side, with timestamps), filters by status, area, requirement and text, and a timing chart.
//
// Everything from the report is escaped through one element builder (`h`): transcripts hold
// attacker-controlled XML. Defence in depth: a Content-Security-Policy allows only this file's own
// style and script (by hash) and no network at all, so even a missed escape could not run or load
// anything.
import { createHash } from "node:crypto";
import type { CaseStatus, TranscriptEntry, Verdict } from "../checks/model.ts";
import type { AggregateStatus } from "../checks/verdict.ts";
import { CASE_STATUSES, REQUIREMENT_STATUSES, VERDICT_TEXT, formatDuration, runDurationMs, showControls } from "./document.ts";
import type { ReportCase, ReportDocument, ReportFailure } from "./document.ts";

export const HTML_FILE_NAME = "report.html";

export interface HtmlOptions {
  /** Bars in the timing chart at most (default 20): the slowest cases. */
  chartBars?: number;
  /** Cases whose panel starts open: those that did not pass (default) or none. */
  open?: "failures" | "none";
}

// ---- the element builder: every string child and attribute value is escaped

/** Markup that is already safe (built by `h` or a constant of this file). */
class Markup {
  constructor(readonly html: string) {}
  toString(): string {
    return this.html;
  }
}

type Child = Markup | string | number | null | undefined | false | readonly Child[];
type Attrs = Record<string, string | number | boolean | null | undefined>;

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text safe in HTML content and in a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const VOID = new Set(["meta", "input", "br", "col"]);

function render(child: Child): string {
  if (child === null || child === undefined || child === false) return "";
  if (child instanceof Markup) return child.html;
  if (Array.isArray(child)) return child.map(render).join("");
  return escapeHtml(showControls(String(child)));
}

/** An element; `tag` and attribute names are constants of this file, never report data. */
function h(tag: string, attrs: Attrs | null, ...children: Child[]): Markup {
  let open = `<${tag}`;
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    open += value === true ? ` ${name}` : ` ${name}="${escapeHtml(showControls(String(value)))}"`;
  }
  if (VOID.has(tag)) return new Markup(`${open}>`);
  return new Markup(`${open}>${render(children)}</${tag}>`);
}

const fragment = (...children: Child[]) => new Markup(render(children));

// ---- vocabulary

const STATUS_MARK: Record<AggregateStatus, string> = { pass: "✔", fail: "✖", error: "!", "not-tested": "○", skip: "–", uncovered: "∅" };
const STATUS_LABEL: Record<AggregateStatus, string> = { pass: "pass", fail: "fail", error: "error", "not-tested": "not tested", skip: "skip", uncovered: "uncovered" };
const VERDICT_MARK: Record<Verdict, string> = { compliant: "✔", "compliant-with-warnings": "⚠", incomplete: "⏸", "non-compliant": "✖" };

const CASE_ORDER: readonly CaseStatus[] = ["fail", "error", "not-tested", "pass", "skip"];

const caseAnchor = (id: string) => `case-${id}`;
const entryAnchor = (caseId: string, seq: number) => `case-${caseId}-seq-${seq}`;
const reqAnchor = (id: string) => `req-${id}`;

function badge(status: AggregateStatus): Markup {
  return h("span", { class: `badge st-${status}` }, `${STATUS_MARK[status]} ${STATUS_LABEL[status]}`);
}

// ---- parts of the page

function banner(doc: ReportDocument): Markup {
  const duration = runDurationMs(doc);
  const facts: [string, Child][] = [
    ["Endpoint", fragment(h("code", null, doc.endpoint), doc.run.endpointDescription ? ` (${doc.run.endpointDescription})` : "")],
    ["Profile", `${doc.profile.id}/${doc.profile.version}`],
    ["Policy", doc.run.policy],
    ...(doc.run.mutant ? [["Partner mutant", doc.run.mutant] as [string, Child]] : []),
    ["Suite", `${doc.suite.name} ${doc.suite.version}${doc.suite.commit && doc.suite.commit !== "unknown" ? ` (${doc.suite.commit.slice(0, 12)})` : ""}`],
    ...(doc.run.seed !== undefined ? [["Seed", String(doc.run.seed)] as [string, Child]] : []),
    ["Started", doc.startedAt],
    ["Finished", `${doc.finishedAt}${duration !== undefined ? ` (${formatDuration(duration)})` : ""}`],
    ["Selection", `${doc.run.selection.selected} of ${doc.run.selection.total} cases${doc.run.selection.filters.length ? ` (${doc.run.selection.filters.join(" ")})` : ""}`],
    ["Case set", h("code", { class: "hash" }, doc.run.caseSetSha256)],
  ];
  return h("header", { id: "verdict", class: `banner v-${doc.verdict}`, "data-verdict": doc.verdict },
    h("div", { class: "verdict-line" },
      h("span", { class: "verdict-mark", "aria-hidden": "true" }, VERDICT_MARK[doc.verdict]),
      h("span", { class: "verdict-label" }, doc.verdict),
      h("span", { class: "verdict-text" }, VERDICT_TEXT[doc.verdict])),
    doc.incomplete ? h("p", { class: "incomplete" }, `Run incomplete: ${doc.incompleteReason ?? "not every selected case ran"}`) : null,
    h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", null, h("dt", null, k), h("dd", null, v)))));
}

function counts(doc: ReportDocument): Markup {
  const s = doc.summary;
  const caseCount: Record<CaseStatus, number> = { pass: s.pass, fail: s.fail, error: s.error, "not-tested": s.notTested, skip: s.skip };
  const reqCount = (st: AggregateStatus) => doc.requirements.filter((r) => r.status === st).length;
  const severity: AggregateStatus[] = ["fail", "error", "not-tested"];
  const unsettled = doc.requirements.filter((r) => severity.includes(r.status)).sort((a, b) => severity.indexOf(a.status) - severity.indexOf(b.status));
  return h("section", { id: "counts", class: "counts" },
    h("div", null, h("strong", null, `${s.total} cases`), CASE_STATUSES.map((st) => h("span", { class: `count st-${st}` }, `${caseCount[st]} ${STATUS_LABEL[st]}`))),
    h("div", null, h("strong", null, `${doc.requirements.length} requirements`), REQUIREMENT_STATUSES.map((st) => h("span", { class: `count st-${st}` }, `${reqCount(st)} ${STATUS_LABEL[st]}`))),
    unsettled.length ? h("div", { class: "unsettled" }, h("strong", null, "Not passing"),
      unsettled.map((r) => h("a", { href: `#${reqAnchor(r.id)}`, class: `req-link st-${r.status}`, title: `${r.text} (${STATUS_LABEL[r.status]})` }, `${r.id} ${r.level} ${STATUS_LABEL[r.status]}`))) : null);
}

function filters(doc: ReportDocument): Markup {
  const areas = [...new Set(doc.cases.map((c) => c.area))].sort();
  return h("section", { id: "filters", class: "filters", "aria-label": "Filters" },
    h("fieldset", null, h("legend", null, "Status"),
      REQUIREMENT_STATUSES.map((st) =>
        h("label", { class: `st-${st}` }, h("input", { type: "checkbox", name: "status", value: st, checked: st !== "skip" }), ` ${STATUS_LABEL[st]}`))),
    h("label", null, "Area ", h("select", { id: "f-area" }, h("option", { value: "" }, "all areas"), areas.map((a) => h("option", { value: a }, a)))),
    h("label", null, "Requirement ", h("select", { id: "f-req" }, h("option", { value: "" }, "all requirements"),
      doc.requirements.map((r) => h("option", { value: r.id }, `${r.id} (${STATUS_LABEL[r.status]})`)))),
    h("label", null, "Text ", h("input", { type: "search", id: "f-text", placeholder: "case id, title, reason" })),
    h("button", { type: "button", id: "f-reset" }, "Show all"),
    h("output", { id: "f-count", "aria-live": "polite" }));
}

function matrix(doc: ReportDocument): Markup {
  const caseStatus = new Map(doc.cases.map((c) => [c.id, c]));
  return h("section", { id: "requirements" },
    h("h2", null, "Requirements"),
    h("table", { id: "matrix", class: "matrix" },
      h("thead", null, h("tr", null,
        h("th", { scope: "col" }, "Requirement"), h("th", { scope: "col" }, "Level"),
        REQUIREMENT_STATUSES.map((st) => h("th", { scope: "col", class: `col-st st-${st}` }, STATUS_LABEL[st])),
        h("th", { scope: "col" }, "Cases"))),
      h("tbody", null, doc.requirements.map((r) => {
        const areas = [...new Set(r.cases.map((id) => caseStatus.get(id)?.area).filter(Boolean))].join(" ");
        return h("tr", { id: reqAnchor(r.id), class: `row-st-${r.status}`, "data-status": r.status, "data-id": r.id, "data-areas": areas, "data-level": r.level },
          h("th", { scope: "row" }, h("span", { class: "req-id" }, r.id), h("span", { class: "req-text" }, r.text), h("span", { class: "req-source" }, r.source)),
          h("td", { class: `level level-${r.level}` }, r.level),
          REQUIREMENT_STATUSES.map((st) => h("td", { class: `cell st-${st}${st === r.status ? " on" : ""}`, title: st === r.status ? STATUS_LABEL[st] : undefined }, st === r.status ? STATUS_MARK[st] : "")),
          h("td", { class: "case-links" }, r.cases.map((id) => {
            const c = caseStatus.get(id);
            return h("a", { href: `#${caseAnchor(id)}`, class: `case-link st-${c?.status ?? "skip"}`, title: c ? `${c.title} (${STATUS_LABEL[c.status]})` : id }, id);
          })));
      }))));
}

function timingChart(doc: ReportDocument, maxBars: number): Markup {
  const ran = doc.cases.filter((c) => c.status !== "skip");
  if (ran.length === 0) return h("section", { id: "timing" }, h("h2", null, "Timing"), h("p", null, "No case ran."));
  const bars = [...ran].sort((a, b) => b.durationMs - a.durationMs).slice(0, maxBars);
  const longest = Math.max(1, bars[0]!.durationMs);
  const labelW = 320;
  const barW = 440;
  const rowH = 18;
  const width = labelW + barW + 90;
  const height = bars.length * rowH + 24;
  const total = ran.reduce((sum, c) => sum + c.durationMs, 0);
  const waited = ran.reduce((sum, c) => sum + c.timeoutWaitMs, 0);
  const wall = runDurationMs(doc);
  const short = (id: string) => (id.length > 46 ? `${id.slice(0, 45)}…` : id);
  const rows = bars.map((c, i) => {
    const y = i * rowH;
    const w = Math.max(1, (c.durationMs / longest) * barW);
    const wait = Math.min(w, (c.timeoutWaitMs / longest) * barW);
    return h("a", { href: `#${caseAnchor(c.id)}` },
      h("g", { class: `bar st-${c.status}` },
        h("title", null, `${c.id}: ${formatDuration(c.durationMs)}${c.timeoutWaitMs ? `, ${formatDuration(c.timeoutWaitMs)} waiting on timeouts` : ""} (${STATUS_LABEL[c.status]})`),
        h("text", { x: labelW - 8, y: y + 13, "text-anchor": "end", class: "label" }, short(c.id)),
        h("rect", { x: labelW, y: y + 3, width: w.toFixed(1), height: rowH - 6, rx: 2, class: "dur" }),
        wait > 0 ? h("rect", { x: labelW, y: y + 3, width: wait.toFixed(1), height: rowH - 6, rx: 2, class: "wait" }) : null,
        h("text", { x: labelW + w + 6, y: y + 13, class: "value" }, formatDuration(c.durationMs))));
  });
  const axisY = bars.length * rowH + 4;
  return h("section", { id: "timing" },
    h("h2", null, "Timing"),
    h("p", { class: "note" },
      `The ${bars.length} slowest of ${ran.length} cases that ran; case time ${formatDuration(total)} in all` +
        `${wall !== undefined ? `, wall time ${formatDuration(wall)}` : ""}; the hatched part of a bar is time spent waiting on timeouts (${formatDuration(waited)} in all).`),
    h("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "Durations of the slowest cases" },
      h("defs", null, h("pattern", { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" }, h("rect", { width: 3, height: 6, class: "hatch" }))),
      rows,
      h("line", { x1: labelW, y1: axisY, x2: labelW + barW, y2: axisY, class: "axis" }),
      h("text", { x: labelW, y: axisY + 14, class: "tick" }, "0"),
      h("text", { x: labelW + barW, y: axisY + 14, "text-anchor": "end", class: "tick" }, formatDuration(longest))));
}

function failureBlock(f: ReportFailure, doc: ReportDocument, c: ReportCase, transcript: ReadonlyMap<number, TranscriptEntry>): Markup {
  const r = doc.requirements.find((x) => x.id === f.requirement);
  return h("div", { class: "failure" },
    h("div", { class: "failure-head" }, h("a", { href: `#${reqAnchor(f.requirement)}`, class: "req-id" }, f.requirement), r ? h("span", { class: `level level-${r.level}` }, r.level) : null, r ? h("span", { class: "req-text" }, r.text) : null),
    h("dl", { class: "expected-actual" },
      f.step ? fragment(h("dt", null, "Step"), h("dd", null, f.step)) : null,
      h("dt", { class: "exp" }, "Expected"), h("dd", { class: "exp" }, f.expected),
      h("dt", { class: "act" }, "Actual"), h("dd", { class: "act" }, f.actual),
      f.evidence.length ? fragment(h("dt", null, "Evidence"), h("dd", null, f.evidence.map((seq) =>
        transcript.has(seq)
          ? h("a", { href: `#${entryAnchor(c.id, seq)}`, class: "evidence-link" }, `#${seq} `)
          : h("span", { class: "evidence-missing", title: "no such entry in the transcript" }, `#${seq} (not in the transcript) `)))) : null));
}

function checksTable(c: ReportCase): Markup | null {
  if (!c.checks.length) return null;
  return h("details", { class: "checks" },
    h("summary", null, `${c.checks.length} check${c.checks.length === 1 ? "" : "s"} (${c.checks.filter((k) => !k.ok).length} failed)`),
    h("table", null,
      h("thead", null, h("tr", null, h("th", null, ""), h("th", null, "Requirement"), h("th", null, "Step"), h("th", null, "Expected"), h("th", null, "Actual"), h("th", null, "Evidence"))),
      h("tbody", null, c.checks.map((k) => h("tr", { class: k.ok ? "ok" : "not-ok" },
        h("td", { class: k.ok ? "st-pass" : "st-fail" }, k.ok ? "✔" : "✖"),
        h("td", null, k.requirement), h("td", null, k.step), h("td", null, k.expected), h("td", null, k.actual),
        h("td", null, k.evidence.map((seq) => h("a", { href: `#${entryAnchor(c.id, seq)}` }, `#${seq} `))))))));
}

function transcriptTable(c: ReportCase): Markup {
  if (!c.transcript.length) return h("p", { class: "note" }, "No stanza was exchanged.");
  const cited = new Set(c.failures.flatMap((f) => f.evidence));
  return h("table", { class: "transcript" },
    h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, "t"), h("th", null, "actor"), h("th", null, "dir"), h("th", null, "stanza on the wire"), h("th", null, "decrypted payload"))),
    h("tbody", null, c.transcript.map((e) => h("tr", { id: entryAnchor(c.id, e.seq), class: `dir-${e.direction}${cited.has(e.seq) ? " evidence" : ""}` },
      h("td", { class: "seq" }, String(e.seq)),
      h("td", { class: "t" }, `+${Math.round(e.t)} ms`),
      h("td", { class: "actor" }, e.actor),
      h("td", { class: "dir", title: e.direction === "in" ? "received by the actor" : "sent by the actor" }, e.direction === "in" ? "← in" : "→ out"),
      h("td", { class: "wire" }, e.note ? h("div", { class: "entry-note" }, e.note) : null, h("pre", null, e.xml)),
      h("td", { class: "plain" }, e.decrypted !== undefined ? h("pre", null, e.decrypted) : null)))));
}

function casePanel(c: ReportCase, doc: ReportDocument, options: HtmlOptions): Markup {
  const transcript = new Map(c.transcript.map((e) => [e.seq, e]));
  const open = (options.open ?? "failures") === "failures" && (c.status === "fail" || c.status === "error" || c.failures.length > 0);
  const search = [c.id, c.title, c.reason ?? "", ...c.requirements, ...c.tags].join(" ").toLowerCase();
  return h("details", { class: `case st-${c.status}`, id: caseAnchor(c.id), open, "data-status": c.status, "data-area": c.area, "data-reqs": ` ${c.requirements.join(" ")} `, "data-search": search },
    h("summary", null,
      badge(c.status),
      h("span", { class: "case-id" }, c.id),
      h("span", { class: "case-title" }, c.title),
      h("span", { class: "case-reqs" }, c.requirements.join(" ")),
      h("span", { class: "case-time" }, c.status === "skip" ? "" : formatDuration(c.durationMs))),
    h("div", { class: "case-body" },
      h("p", { class: "case-meta" },
        h("span", null, "File ", h("code", null, c.file)), " · ",
        h("span", null, `Level ${c.level}`), " · ",
        h("span", null, "Requirements ", c.requirements.map((id, i) => fragment(i ? ", " : "", h("a", { href: `#${reqAnchor(id)}` }, id)))), " · ",
        c.tags.length ? fragment(h("span", null, `Tags ${c.tags.join(", ")}`), " · ") : null,
        h("span", null, `Duration ${formatDuration(c.durationMs)}${c.timeoutWaitMs ? `, ${formatDuration(c.timeoutWaitMs)} waiting on timeouts` : ""}`), " · ",
        h("span", null, "sha256 ", h("code", { class: "hash" }, c.sha256))),
      c.reason ? h("p", { class: `reason st-${c.status}` }, `${STATUS_LABEL[c.status]}: ${c.reason}`) : null,
      c.failures.map((f) => failureBlock(f, doc, c, transcript)),
      checksTable(c),
      c.transcript.length ? h("h4", null, `Transcript (${c.transcript.length} stanzas)`) : null,
      c.status === "skip" && !c.transcript.length ? null : transcriptTable(c)));
}

// ---- style and script: constants, allowed by hash in the page's Content-Security-Policy

const STYLE = `
:root{--pass:#1a7f37;--fail:#cf222e;--error:#8250df;--nt:#9a6700;--skip:#6e7781;--unc:#8c959f;--bg:#fff;--fg:#1f2328;--mute:#59636e;--line:#d1d9e0;--soft:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
main{padding:0 24px 40px;max-width:1500px;margin:0 auto}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h4{margin:14px 0 6px;font-size:13px;color:var(--mute);text-transform:uppercase;letter-spacing:.04em}
code,pre{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
pre{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
.banner{padding:18px 24px 14px;color:#fff}
.v-compliant{background:var(--pass)}.v-compliant-with-warnings{background:#bf8700}.v-incomplete{background:var(--error)}.v-non-compliant{background:var(--fail)}
.verdict-line{display:flex;align-items:baseline;gap:14px;flex-wrap:wrap}
.verdict-mark{font-size:34px;line-height:1}.verdict-label{font-size:30px;font-weight:700;letter-spacing:.01em}.verdict-text{font-size:16px;opacity:.95}
.banner .incomplete{margin:8px 0 0;font-weight:600}
.facts{display:flex;flex-wrap:wrap;gap:4px 26px;margin:12px 0 0}
.facts div{display:flex;gap:6px}.facts dt{opacity:.8}.facts dd{margin:0;font-weight:600}.banner code{font-size:13px;color:#fff}
.hash{font-size:11px;word-break:break-all}
.counts{display:flex;flex-direction:column;gap:4px;padding:12px 0}
.counts div{display:flex;gap:14px;flex-wrap:wrap;align-items:baseline}.counts strong{min-width:130px}
.count{font-weight:600}.req-link{font-weight:700;font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px}
.st-pass{color:var(--pass)}.st-fail{color:var(--fail)}.st-error{color:var(--error)}.st-not-tested{color:var(--nt)}.st-skip{color:var(--skip)}.st-uncovered{color:var(--unc)}
.badge{display:inline-block;min-width:92px;font-weight:700;font-size:12px}
.filters{position:sticky;top:0;z-index:2;background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 12px;display:flex;flex-wrap:wrap;gap:10px 18px;align-items:center}
.filters fieldset{border:0;margin:0;padding:0;display:flex;gap:12px;align-items:center}.filters legend{float:left;margin-right:8px;font-weight:600}
.filters label{font-weight:600}.filters select,.filters input[type=search]{font:inherit;max-width:260px}
#f-count{color:var(--mute)}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
.matrix .col-st{width:62px;text-align:center;font-size:12px}
.matrix td.cell{text-align:center;font-weight:700}.matrix td.cell.on.st-fail,.matrix td.cell.on.st-error{background:#fff0f0}
.matrix th[scope=row]{font-weight:400;width:44%}
.req-id{font-weight:700;margin-right:8px;font-family:ui-monospace,"DejaVu Sans Mono",monospace}.req-source{display:block;color:var(--mute);font-size:12px}
.row-st-fail .req-id{color:var(--fail)}.row-st-error .req-id{color:var(--error)}.row-st-not-tested .req-id{color:var(--nt)}
.level{font-size:12px;font-weight:600}
.case-links a{display:inline-block;margin-right:10px;font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
.case-link.st-pass{color:var(--pass)}.case-link.st-fail{color:var(--fail)}.case-link.st-error{color:var(--error)}.case-link.st-not-tested{color:var(--nt)}.case-link.st-skip{color:var(--skip)}
.chart{max-width:100%;height:auto;font:12px ui-monospace,"DejaVu Sans Mono",monospace}
.chart .label{fill:var(--fg)}.chart .value,.chart .tick{fill:var(--mute)}.chart .axis{stroke:var(--line)}
.chart .st-pass .dur{fill:var(--pass)}.chart .st-fail .dur{fill:var(--fail)}.chart .st-error .dur{fill:var(--error)}.chart .st-not-tested .dur{fill:var(--nt)}
.chart .wait{fill:url(#hatch)}.chart .hatch{fill:rgba(255,255,255,.6)}
.chart a:hover .label{text-decoration:underline}
.note{color:var(--mute);margin:4px 0 8px}
.case{border:1px solid var(--line);border-left:5px solid var(--skip);border-radius:6px;margin:6px 0;background:#fff}
details.case{color:var(--fg)}.case.st-pass{border-left-color:var(--pass)}.case.st-fail{border-left-color:var(--fail)}.case.st-error{border-left-color:var(--error)}.case.st-not-tested{border-left-color:var(--nt)}
.case>summary{cursor:pointer;padding:6px 10px;display:flex;gap:12px;align-items:baseline;flex-wrap:wrap}
.case-id{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-weight:700}.case-title{flex:1}.case-reqs,.case-time{color:var(--mute);font-size:12px}
.case:target,.transcript tr:target{outline:3px solid #0969da}
.case-body{padding:4px 14px 12px;border-top:1px solid var(--line)}
.case-meta{color:var(--mute);font-size:12px}
.reason{font-weight:600}
.failure{border:1px solid #ffcecb;background:#fff8f8;border-radius:6px;padding:8px 12px;margin:8px 0}
.failure-head{display:flex;gap:10px;align-items:baseline}.failure-head .req-id{color:var(--fail)}
.expected-actual{display:grid;grid-template-columns:90px 1fr;gap:2px 10px;margin:6px 0 0}
.expected-actual dt{font-weight:700}.expected-actual dd{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
dt.exp{color:var(--pass)}dt.act{color:var(--fail)}
.checks{margin:8px 0}.checks table{font-size:12px}.checks summary{cursor:pointer;color:var(--mute)}
.transcript{table-layout:fixed;font-size:12px}
.transcript th:nth-child(1){width:42px}.transcript th:nth-child(2){width:72px}.transcript th:nth-child(3){width:110px}.transcript th:nth-child(4){width:56px}
.transcript td.wire,.transcript td.plain{width:calc(50% - 140px)}
.transcript td.plain pre{color:#0a3069}
.transcript tr.dir-in td.dir{color:#0969da}.transcript tr.dir-out td.dir{color:#953800}
.transcript tr.evidence{background:#fff8c5}
.entry-note{color:var(--mute);font-style:italic}
.actor{overflow-wrap:anywhere}
footer{color:var(--mute);font-size:12px;margin-top:30px}
[hidden]{display:none!important}
[id]{scroll-margin-top:100px}
@media print{.filters{display:none}.case{break-inside:avoid}}
`;

const SCRIPT = `
(function () {
  "use strict";
  var all = function (sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); };
  var boxes = all('#filters input[name="status"]');
  var area = document.getElementById("f-area");
  var req = document.getElementById("f-req");
  var text = document.getElementById("f-text");
  var count = document.getElementById("f-count");
  function apply() {
    var on = {};
    boxes.forEach(function (b) { on[b.value] = b.checked; });
    var a = area.value, r = req.value, q = text.value.trim().toLowerCase();
    var shown = 0, cases = all("details.case");
    cases.forEach(function (el) {
      var ok = on[el.getAttribute("data-status")] &&
        (!a || el.getAttribute("data-area") === a) &&
        (!r || el.getAttribute("data-reqs").indexOf(" " + r + " ") >= 0) &&
        (!q || el.getAttribute("data-search").indexOf(q) >= 0);
      el.hidden = !ok;
      if (ok) shown++;
    });
    var rows = all("#matrix tbody tr"), shownRows = 0;
    rows.forEach(function (row) {
      var ok = on[row.getAttribute("data-status")] &&
        (!a || (" " + row.getAttribute("data-areas") + " ").indexOf(" " + a + " ") >= 0) &&
        (!r || row.getAttribute("data-id") === r);
      row.hidden = !ok;
      if (ok) shownRows++;
    });
    count.textContent = "showing " + shown + " of " + cases.length + " cases, " + shownRows + " of " + rows.length + " requirements";
  }
  function reset() {
    boxes.forEach(function (b) { b.checked = true; });
    area.value = ""; req.value = ""; text.value = "";
    apply();
  }
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && document.getElementById(id);
    if (!target) return;
    var panel = target.closest ? target.closest("details.case") : null;
    if ((panel && panel.hidden) || target.hidden) reset();
    if (panel) panel.open = true;
    target.scrollIntoView();
  }
  boxes.forEach(function (b) { b.addEventListener("change", apply); });
  area.addEventListener("change", apply);
  req.addEventListener("change", apply);
  text.addEventListener("input", apply);
  document.getElementById("f-reset").addEventListener("click", reset);
  window.addEventListener("hashchange", reveal);
  apply();
  reveal();
})();
`;

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("base64");

/** The page's policy: its own style and script (by hash), data: images, and nothing else; no network. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `style-src 'sha256-${sha256(STYLE)}'`,
  `script-src 'sha256-${sha256(SCRIPT)}'`,
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/** report.html for a report document. */
export function renderHtml(doc: ReportDocument, options: HtmlOptions = {}): string {
  const title = `${doc.suite.name} ${doc.profile.id}/${doc.profile.version}: ${doc.verdict} — ${doc.endpoint}`;
  const page = h("html", { lang: "en" },
    h("head", null,
      h("meta", { charset: "utf-8" }),
      h("meta", { "http-equiv": "Content-Security-Policy", content: CONTENT_SECURITY_POLICY }),
      h("meta", { name: "referrer", content: "no-referrer" }),
      h("meta", { name: "viewport", content: "width=device-width, initial-scale=1" }),
      h("meta", { name: "generator", content: `${doc.suite.name} ${doc.suite.version}` }),
      h("title", null, title),
      h("style", null, new Markup(STYLE))),
    h("body", null,
      banner(doc),
      h("main", null,
        counts(doc),
        filters(doc),
        matrix(doc),
        timingChart(doc, options.chartBars ?? 20),
        h("section", { id: "cases" },
          h("h2", null, "Cases"),
          // What did not pass first; by id within a status.
          [...doc.cases].sort((a, b) => CASE_ORDER.indexOf(a.status) - CASE_ORDER.indexOf(b.status) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((c) => casePanel(c, doc, options))),
        h("footer", null,
          `Rendered from report.json (format ${doc.format}) of ${doc.suite.name} ${doc.suite.version}; command: `, h("code", null, doc.run.command),
          `; ${doc.run.node} on ${doc.run.platform}. Passwords, SASL exchanges and private keys are redacted.`)),
      h("script", null, new Markup(SCRIPT))));
  return `<!DOCTYPE html>\n${page.html}\n`;
}
