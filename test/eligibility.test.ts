import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parsePhoneNumberWithError } from "libphonenumber-js/max";
import {
  POLICIES,
  TERRITORIES_FILE,
  TerritoryDataError,
  classifyNumber,
  describePolicy,
  isPolicyName,
  listRules,
  normaliseNumber,
  parseTerritoryData,
  policyRegions,
} from "../src/eligibility/classify.ts";
import type { PolicyName, UnparsableKind } from "../src/eligibility/classify.ts";

const WER: PolicyName = "whatsapp-european-region";

/** "+47 79 12 34 56" → "+4779123456" */
function e164(n: string): string {
  return n.replace(/ /g, "");
}

interface Row {
  territory: string;
  number: string;
  region: string;
  ruleId: string;
  eea: boolean;
  wer: boolean;
  /** false only for +379, which libphonenumber has no metadata for. */
  inLibphonenumber?: boolean;
}

// Every row of the brief's §9 territory table, with real numbers libphonenumber-js/max says are
// valid for the region.
const TERRITORY_TABLE: Row[] = [
  { territory: "Åland Islands (+358 18)", number: "+358 18 123456", region: "AX", ruleId: "aland", eea: true, wer: true },
  { territory: "Svalbard and Jan Mayen (+47 79)", number: "+47 79 12 34 56", region: "SJ", ruleId: "svalbard-jan-mayen", eea: false, wer: false },
  { territory: "Faroe Islands (+298)", number: "+298 21 12 34", region: "FO", ruleId: "faroe-islands", eea: false, wer: false },
  { territory: "Greenland (+299)", number: "+299 32 10 00", region: "GL", ruleId: "greenland", eea: false, wer: false },
  { territory: "Guadeloupe, fixed", number: "+590 590 20 12 34", region: "GP", ruleId: "guadeloupe-saint-martin", eea: true, wer: true },
  { territory: "Guadeloupe, mobile (shared +590 690)", number: "+590 690 00 12 34", region: "GP", ruleId: "guadeloupe-saint-martin", eea: true, wer: true },
  { territory: "Saint-Martin, fixed", number: "+590 590 77 12 34", region: "MF", ruleId: "guadeloupe-saint-martin", eea: true, wer: true },
  { territory: "Saint-Barthélemy, +590 590 27", number: "+590 590 27 12 34", region: "BL", ruleId: "saint-barthelemy", eea: false, wer: false },
  { territory: "Saint-Barthélemy, +590 590 29", number: "+590 590 29 12 34", region: "BL", ruleId: "saint-barthelemy", eea: false, wer: false },
  { territory: "Saint-Barthélemy, +590 590 51", number: "+590 590 51 12 34", region: "BL", ruleId: "saint-barthelemy", eea: false, wer: false },
  { territory: "Saint-Barthélemy, +590 590 52", number: "+590 590 52 12 34", region: "BL", ruleId: "saint-barthelemy", eea: false, wer: false },
  { territory: "Saint-Barthélemy, +590 590 87", number: "+590 590 87 12 34", region: "BL", ruleId: "saint-barthelemy", eea: false, wer: false },
  { territory: "French Guiana, mobile", number: "+594 694 20 12 34", region: "GF", ruleId: "french-guiana", eea: true, wer: true },
  { territory: "French Guiana, fixed", number: "+594 594 10 12 34", region: "GF", ruleId: "french-guiana", eea: true, wer: true },
  { territory: "Martinique, mobile", number: "+596 696 20 12 34", region: "MQ", ruleId: "martinique", eea: true, wer: true },
  { territory: "Martinique, fixed", number: "+596 596 30 12 34", region: "MQ", ruleId: "martinique", eea: true, wer: true },
  { territory: "Réunion, mobile", number: "+262 692 12 34 56", region: "RE", ruleId: "reunion-mayotte", eea: true, wer: true },
  { territory: "Réunion, fixed", number: "+262 262 16 12 34", region: "RE", ruleId: "reunion-mayotte", eea: true, wer: true },
  { territory: "Mayotte, mobile", number: "+262 639 01 23 45", region: "YT", ruleId: "reunion-mayotte", eea: true, wer: true },
  { territory: "Mayotte, fixed", number: "+262 269 60 12 34", region: "YT", ruleId: "reunion-mayotte", eea: true, wer: true },
  { territory: "Saint-Pierre-et-Miquelon (+508)", number: "+508 55 12 34", region: "PM", ruleId: "saint-pierre-miquelon", eea: false, wer: false },
  { territory: "Wallis and Futuna (+681)", number: "+681 82 12 34", region: "WF", ruleId: "wallis-futuna", eea: false, wer: false },
  { territory: "New Caledonia (+687)", number: "+687 75 12 34", region: "NC", ruleId: "new-caledonia", eea: false, wer: false },
  { territory: "French Polynesia (+689)", number: "+689 87 12 34 56", region: "PF", ruleId: "french-polynesia", eea: false, wer: false },
  { territory: "Spain, mobile", number: "+34 612 34 56 78", region: "ES", ruleId: "spain", eea: true, wer: true },
  { territory: "Canary Islands, Tenerife", number: "+34 922 12 34 56", region: "ES", ruleId: "canary-islands", eea: true, wer: true },
  { territory: "Canary Islands, Gran Canaria", number: "+34 928 12 34 56", region: "ES", ruleId: "canary-islands", eea: true, wer: true },
  { territory: "Ceuta area (+34 956 5…)", number: "+34 956 51 12 34", region: "ES", ruleId: "spain", eea: true, wer: true },
  { territory: "Melilla area (+34 952 6…)", number: "+34 952 69 12 34", region: "ES", ruleId: "spain", eea: true, wer: true },
  { territory: "Portugal, mobile", number: "+351 912 345 678", region: "PT", ruleId: "portugal", eea: true, wer: true },
  { territory: "Azores (Ponta Delgada)", number: "+351 296 123 456", region: "PT", ruleId: "azores", eea: true, wer: true },
  { territory: "Madeira (Funchal)", number: "+351 291 123 456", region: "PT", ruleId: "madeira", eea: true, wer: true },
  { territory: "Vatican City (+39 06 698)", number: "+39 06 6981 2345", region: "VA", ruleId: "vatican-city", eea: false, wer: true },
  { territory: "Vatican City, reserved +379", number: "+379 1234 5678", region: "VA", ruleId: "vatican-city-379", eea: false, wer: false, inLibphonenumber: false },
  { territory: "San Marino, mobile", number: "+378 66 66 12 12", region: "SM", ruleId: "san-marino", eea: false, wer: true },
  { territory: "San Marino, fixed", number: "+378 0549 886377", region: "SM", ruleId: "san-marino", eea: false, wer: true },
  { territory: "Monaco (+377)", number: "+377 6 12 34 56 78", region: "MC", ruleId: "monaco", eea: false, wer: true },
  { territory: "Andorra (+376)", number: "+376 312 345", region: "AD", ruleId: "andorra", eea: false, wer: true },
  { territory: "United Kingdom", number: "+44 7400 123456", region: "GB", ruleId: "united-kingdom-crown-dependencies", eea: false, wer: true },
  { territory: "Guernsey, fixed", number: "+44 1481 256789", region: "GG", ruleId: "united-kingdom-crown-dependencies", eea: false, wer: true },
  { territory: "Guernsey, mobile", number: "+44 7781 123456", region: "GG", ruleId: "united-kingdom-crown-dependencies", eea: false, wer: true },
  { territory: "Jersey, fixed", number: "+44 1534 456789", region: "JE", ruleId: "united-kingdom-crown-dependencies", eea: false, wer: true },
  { territory: "Jersey, mobile", number: "+44 7797 712345", region: "JE", ruleId: "united-kingdom-crown-dependencies", eea: false, wer: true },
  { territory: "Isle of Man, fixed", number: "+44 1624 756789", region: "IM", ruleId: "united-kingdom-crown-dependencies", eea: false, wer: true },
  { territory: "Isle of Man, mobile", number: "+44 7624 123456", region: "IM", ruleId: "united-kingdom-crown-dependencies", eea: false, wer: true },
  { territory: "Gibraltar (+350)", number: "+350 57123456", region: "GI", ruleId: "gibraltar", eea: false, wer: false },
  { territory: "Switzerland", number: "+41 78 123 45 67", region: "CH", ruleId: "switzerland", eea: false, wer: true },
  { territory: "Campione d'Italia / Ticino (+41 91)", number: "+41 91 123 45 67", region: "CH", ruleId: "campione-ditalia", eea: false, wer: true },
  { territory: "Cyprus, mobile", number: "+357 96 123456", region: "CY", ruleId: "cyprus", eea: true, wer: true },
  { territory: "Cyprus, fixed (Nicosia)", number: "+357 22 123456", region: "CY", ruleId: "cyprus", eea: true, wer: true },
  { territory: "Northern Cyprus (+90 392)", number: "+90 392 212 34 56", region: "TR", ruleId: "northern-cyprus", eea: false, wer: false },
];

// One valid (mobile) number for every EU and EEA state.
const EEA_STATES: [string, string][] = [
  ["AT", "+43 664 123456"], ["BE", "+32 450 00 12 34"], ["BG", "+359 43 012 345"], ["HR", "+385 92 123 4567"],
  ["CY", "+357 96 123456"], ["CZ", "+420 601 123 456"], ["DK", "+45 34 41 23 45"], ["EE", "+372 5123 4567"],
  ["FI", "+358 41 2345678"], ["FR", "+33 6 12 34 56 78"], ["DE", "+49 1512 3456789"], ["GR", "+30 691 234 5678"],
  ["HU", "+36 20 123 4567"], ["IE", "+353 85 012 3456"], ["IT", "+39 312 345 6789"], ["LV", "+371 21 234 567"],
  ["LT", "+370 612 34567"], ["LU", "+352 628 123 456"], ["MT", "+356 9696 1234"], ["NL", "+31 6 12345678"],
  ["PL", "+48 512 345 678"], ["PT", "+351 912 345 678"], ["RO", "+40 712 034 567"], ["SK", "+421 912 123 456"],
  ["SI", "+386 31 234 567"], ["ES", "+34 612 34 56 78"], ["SE", "+46 70 123 45 67"],
  ["IS", "+354 611 1234"], ["LI", "+423 660 234 567"], ["NO", "+47 40 61 23 45"],
];
const STATE_RULES: Record<string, string> = { ES: "spain", PT: "portugal", CY: "cyprus" };

// Neighbours outside the EEA.
const NEIGHBOURS: { region: string; number: string; wer: boolean }[] = [
  { region: "CH", number: "+41 78 123 45 67", wer: true },
  { region: "GB", number: "+44 7400 123456", wer: true },
  { region: "UA", number: "+380 50 123 4567", wer: false },
  { region: "TR", number: "+90 501 234 56 78", wer: false },
  { region: "RS", number: "+381 60 1234567", wer: false },
  { region: "MA", number: "+212 650 123456", wer: false },
  { region: "US", number: "+1 201 555 0123", wer: false },
];

describe("eligibility: the brief's territory table", () => {
  for (const row of TERRITORY_TABLE) {
    it(`${row.territory}: ${row.number} → ${row.region}, eea ${row.eea ? "yes" : "no"}, whatsapp-european-region ${row.wer ? "yes" : "no"}`, () => {
      for (const [policy, eligible] of [["eea", row.eea], [WER, row.wer]] as const) {
        const d = classifyNumber(row.number, policy);
        assert.equal(d.e164, e164(row.number));
        assert.equal(d.region, row.region);
        assert.equal(d.ruleId, row.ruleId);
        assert.equal(d.policy, policy);
        assert.equal(d.eligible, eligible, `${policy}: ${d.reason}`);
        assert.equal(d.unparsable, undefined);
        assert.ok(d.source && d.source.length > 0);
        assert.match(d.reason, new RegExp(`Region ${row.region}: ${eligible ? "eligible" : "not eligible"} under policy ${policy}`));
      }
    });
  }

  it("uses numbers libphonenumber-js/max itself says are valid for the region", () => {
    for (const row of TERRITORY_TABLE) {
      if (row.inLibphonenumber === false) continue;
      const phone = parsePhoneNumberWithError(e164(row.number));
      assert.ok(phone.isValid(), `${row.number} is valid`);
      assert.equal(phone.country, row.region, row.number);
    }
    assert.throws(() => parsePhoneNumberWithError("+37912345678"), /INVALID_COUNTRY/);
  });

  it("reports Campione d'Italia as CH and Northern Cyprus as TR (§10a)", () => {
    const campione = classifyNumber("+41 91 123 45 67");
    assert.equal(campione.region, "CH");
    assert.equal(campione.eligible, false);
    assert.match(campione.reason, /Campione d'Italia/);
    const north = classifyNumber("+90 392 212 34 56");
    assert.equal(north.region, "TR");
    assert.equal(north.eligible, false);
    assert.match(north.source ?? "", /Protocol No 10/);
  });

  it("keeps Saint-Barthélemy apart from Guadeloupe and Saint-Martin inside +590", () => {
    assert.equal(classifyNumber("+590 590 27 12 34").eligible, false);
    assert.equal(classifyNumber("+590 590 28 12 34").region, "GP");
    assert.equal(classifyNumber("+590 590 28 12 34").eligible, true);
    assert.equal(classifyNumber("+590 590 30 12 34").region, "MF");
    assert.equal(classifyNumber("+590 590 30 12 34").eligible, true);
  });

  it("treats mainland Norway as EEA but not Svalbard", () => {
    assert.deepEqual([classifyNumber("+47 40 61 23 45").region, classifyNumber("+47 40 61 23 45").eligible], ["NO", true]);
    assert.deepEqual([classifyNumber("+47 79 12 34 56").region, classifyNumber("+47 79 12 34 56").eligible], ["SJ", false]);
  });

  it("treats mainland Finland and Åland alike, and Rome apart from the Vatican", () => {
    assert.equal(classifyNumber("+358 41 2345678").ruleId, "country-code-range");
    assert.equal(classifyNumber("+358 18 123456").ruleId, "aland");
    const rome = classifyNumber("+39 06 1234 5678");
    assert.deepEqual([rome.region, rome.eligible, rome.ruleId], ["IT", true, "country-code-range"]);
    const vatican = classifyNumber("+39 06 6981 2345");
    assert.deepEqual([vatican.region, vatican.eligible, vatican.ruleId], ["VA", false, "vatican-city"]);
  });
});

describe("eligibility: EU and EEA states", () => {
  it("covers all 30 states of the eea policy", () => {
    assert.equal(EEA_STATES.length, 30);
    assert.deepEqual(EEA_STATES.map(([c]) => c).sort(), [...describePolicy("eea").regions].sort());
  });

  for (const [region, number] of EEA_STATES) {
    it(`${region}: ${number} is eligible under both policies`, () => {
      for (const policy of POLICIES) {
        const d = classifyNumber(number, policy);
        assert.equal(d.region, region);
        assert.equal(d.e164, e164(number));
        assert.equal(d.eligible, true, d.reason);
        assert.equal(d.ruleId, STATE_RULES[region] ?? "country-code-range");
      }
    });
  }
});

describe("eligibility: neighbours outside the EEA", () => {
  for (const { region, number, wer } of NEIGHBOURS) {
    it(`${region}: ${number} is not eligible under eea${wer ? " but is under whatsapp-european-region" : " nor whatsapp-european-region"}`, () => {
      const eea = classifyNumber(number, "eea");
      assert.equal(eea.region, region);
      assert.equal(eea.eligible, false);
      assert.equal(eea.e164, e164(number));
      const w = classifyNumber(number, WER);
      assert.equal(w.region, region);
      assert.equal(w.eligible, wer);
    });
  }

  it("says why in plain words for a region without a rule", () => {
    const d = classifyNumber("+380 50 123 4567");
    assert.equal(d.ruleId, "country-code-range");
    assert.equal(d.reason, "Region UA (Ukraine): not eligible under policy eea (UA is not in its region set: EU 27 + Iceland, Liechtenstein, Norway).");
  });
});

describe("eligibility: the policy switch", () => {
  const added: [string, string][] = [
    ["CH", "+41 78 123 45 67"], ["GB", "+44 7400 123456"], ["GG", "+44 1481 256789"], ["JE", "+44 1534 456789"],
    ["IM", "+44 1624 756789"], ["AD", "+376 312 345"], ["MC", "+377 6 12 34 56 78"], ["SM", "+378 66 66 12 12"],
    ["VA", "+39 06 6981 2345"],
  ];
  for (const [region, number] of added) {
    it(`${region} becomes eligible under whatsapp-european-region`, () => {
      assert.equal(classifyNumber(number, "eea").eligible, false);
      const d = classifyNumber(number, WER);
      assert.equal(d.region, region);
      assert.equal(d.eligible, true, d.reason);
    });
  }

  const stillOut: [string, string][] = [
    ["SJ", "+47 79 12 34 56"], ["FO", "+298 21 12 34"], ["GL", "+299 32 10 00"], ["BL", "+590 590 27 12 34"],
    ["PM", "+508 55 12 34"], ["NC", "+687 75 12 34"], ["TR", "+90 392 212 34 56"], ["GI", "+350 57123456"],
  ];
  for (const [region, number] of stillOut) {
    it(`${region} (${number}) stays ineligible under whatsapp-european-region`, () => {
      const d = classifyNumber(number, WER);
      assert.equal(d.region, region);
      assert.equal(d.eligible, false, d.reason);
    });
  }

  it("defaults to eea", () => {
    assert.equal(classifyNumber("+41 78 123 45 67").policy, "eea");
    assert.equal(classifyNumber("+41 78 123 45 67").eligible, false);
  });

  it("never admits the reserved +379 range, even where VA is eligible", () => {
    const d = classifyNumber("+379 1234 5678", WER);
    assert.deepEqual([d.region, d.eligible, d.ruleId], ["VA", false, "vatican-city-379"]);
  });

  it("lists the regions of each policy", () => {
    const eea = policyRegions("eea");
    assert.deepEqual(eea, [...describePolicy("eea").regions, "AX", "GF", "GP", "MF", "MQ", "RE", "YT"].sort());
    const wer = policyRegions(WER);
    assert.deepEqual(wer, [...eea, "CH", "GB", "GG", "JE", "IM", "AD", "MC", "SM", "VA"].sort());
    for (const out of ["SJ", "FO", "GL", "BL", "PM", "WF", "NC", "PF", "GI", "TR", "ZZ"]) assert.ok(!wer.includes(out), out);
  });

  it("knows its policy names", () => {
    assert.deepEqual(POLICIES, ["eea", "whatsapp-european-region"]);
    assert.equal(isPolicyName("eea"), true);
    assert.equal(isPolicyName(WER), true);
    assert.equal(isPolicyName("EEA"), false);
    assert.equal(isPolicyName(undefined), false);
    assert.equal(describePolicy(WER).extends, "eea");
    assert.throws(() => classifyNumber("+34 612 34 56 78", "mars" as PolicyName), (err: unknown) => err instanceof TypeError && /unknown eligibility policy "mars"/.test(err.message));
  });
});

describe("eligibility: normalisation", () => {
  const forms = [
    "+34612345678",
    "+34 612 34 56 78",
    "0034 612 34 56 78",
    "0034612345678",
    "00 34 612 345 678",
    "+34-612-345-678",
    "+34.612.345.678",
    "(+34) 612345678",
    "+34 (612) 345 678",
    "[+34] 612 345 678",
    "  +34 612 345 678\t",
    "+34\u00a0612\u00a0345\u00a0678",
    "+34\u2013612\u2013345\u2013678",
  ];
  for (const form of forms) {
    it(`${JSON.stringify(form)} → +34612345678`, () => {
      const d = classifyNumber(form);
      assert.equal(d.input, form);
      assert.equal(d.e164, "+34612345678");
      assert.equal(d.region, "ES");
      assert.equal(d.eligible, true);
      assert.equal(d.ruleId, "spain");
    });
  }

  it("normalises before looking up territory ranges", () => {
    assert.equal(classifyNumber("0047 79-12-34-56").region, "SJ");
    assert.equal(classifyNumber("(+358) 18 123.456").region, "AX");
    assert.equal(classifyNumber("00 379 1234 5678").region, "VA");
    assert.equal(classifyNumber("+90 (392) 212-34-56").ruleId, "northern-cyprus");
  });

  it("exposes the structural step", () => {
    assert.deepEqual(normaliseNumber("0034 612-34-56-78"), { ok: true, e164: "+34612345678" });
    assert.equal(normaliseNumber("612 34 56 78").ok, false);
  });
});

describe("eligibility: unparsable numbers", () => {
  const cases: [string, UnparsableKind][] = [
    ["", "empty"],
    ["   ", "empty"],
    ["( - )", "empty"],
    ["+34 612 34 56 7O", "letters"],
    ["call me", "letters"],
    ["+34 612#345", "invalid-characters"],
    ["+34 612 345 678 / 679", "invalid-characters"],
    ["34+612345678", "misplaced-plus"],
    ["++34612345678", "misplaced-plus"],
    ["612 34 56 78", "no-international-prefix"],
    ["0612 34 56 78", "no-international-prefix"],
    ["+999 123 456 789", "unknown-country-code"],
    ["+0034 612 34 56 78", "unknown-country-code"],
    ["+34 12", "too-short"],
    ["+", "too-short"],
    ["+379 12", "too-short"],
    ["+34 612 345 678 901 234", "too-long"],
    ["+1 201 555 0123 4567 8901 2345 6789 0123 4567 8901 2345 6789 0123", "too-long"],
    ["+423 1234 5678", "invalid-length"],
    ["+34 000 000 000", "invalid-number"],
    ["+881 612 345 678", "non-geographic"],
  ];
  for (const [input, kind] of cases) {
    it(`${JSON.stringify(input)} is unparsable (${kind})`, () => {
      for (const policy of POLICIES) {
        const d = classifyNumber(input, policy);
        assert.equal(d.input, input);
        assert.equal(d.e164, null);
        assert.equal(d.region, "ZZ");
        assert.equal(d.eligible, false);
        assert.equal(d.ruleId, "unparsable");
        assert.equal(d.unparsable, kind);
        assert.match(d.reason, /^Unparsable number: /);
      }
    });
  }

  it("gives each kind of failure its own reason", () => {
    const reasons = new Map<UnparsableKind, string>();
    for (const [input, kind] of cases) if (!reasons.has(kind)) reasons.set(kind, classifyNumber(input).reason);
    assert.equal(reasons.size, 11);
    assert.equal(new Set(reasons.values()).size, 11);
    assert.match(reasons.get("letters")!, /letters \("O"\)/);
    assert.match(reasons.get("no-international-prefix")!, /no international prefix/);
    assert.match(reasons.get("unknown-country-code")!, /\+999123456789 does not start with an assigned country calling code/);
    assert.match(classifyNumber("0612 34 56 78").reason, /national form/);
  });
});

describe("eligibility: the rules data", () => {
  const rules = listRules();

  it("has a rule for every row of the brief's table", () => {
    const ids = new Set(rules.map((r) => r.id));
    for (const id of [
      "aland", "svalbard-jan-mayen", "faroe-islands", "greenland", "guadeloupe-saint-martin", "saint-barthelemy",
      "french-guiana", "martinique", "reunion-mayotte", "saint-pierre-miquelon", "wallis-futuna", "new-caledonia",
      "french-polynesia", "spain", "canary-islands", "portugal", "azores", "madeira", "vatican-city", "vatican-city-379",
      "san-marino", "monaco", "andorra", "united-kingdom-crown-dependencies", "gibraltar", "switzerland",
      "campione-ditalia", "cyprus", "northern-cyprus",
    ]) assert.ok(ids.has(id), id);
    assert.equal(ids.size, rules.length, "rule ids are unique");
  });

  it("classifies every rule's examples with that rule and its region", () => {
    for (const rule of rules) {
      const regions = typeof rule.region === "string" ? [rule.region] : rule.region;
      for (const example of rule.examples) {
        const d = classifyNumber(example);
        assert.equal(d.ruleId, rule.id, `${example}: ${d.reason}`);
        assert.ok(regions.includes(d.region), `${example} → ${d.region}`);
        assert.equal(d.source, rule.source);
      }
    }
  });

  it("hands out copies", () => {
    const copy = listRules();
    copy[0]!.ranges.push("+1");
    copy[0]!.eea = false;
    assert.deepEqual(listRules()[0], rules[0]);
    assert.equal(classifyNumber("+358 18 123456").eligible, true);
  });

  it("is documented in docs/eligibility.md", () => {
    const doc = readFileSync(new URL("../docs/eligibility.md", import.meta.url), "utf8");
    for (const rule of rules) assert.ok(doc.includes(`\`${rule.id}\``), `docs/eligibility.md lists rule ${rule.id}`);
  });
});

describe("eligibility: loading the data file", () => {
  const good = readFileSync(TERRITORIES_FILE, "utf8");

  function brokenWith(text: string, pattern: RegExp): void {
    assert.throws(() => parseTerritoryData(text, "test.yaml"), (err: unknown) => {
      assert.ok(err instanceof TerritoryDataError, String(err));
      assert.match(err.message, /^eligibility data test\.yaml is broken:/);
      assert.match(err.message, pattern);
      return true;
    });
  }

  it("accepts the shipped file", () => {
    const data = parseTerritoryData(good);
    assert.equal(data.version, 1);
    assert.equal(data.rules.length, listRules().length);
  });

  it("refuses text that is not YAML", () => brokenWith("rules: [\n", /not valid YAML/));
  it("refuses a missing source", () => brokenWith(good.replace('    source: "EEA Agreement Protocol 40 (Svalbard)"\n', ""), /\/rules\/1: must have required property 'source'/));
  it("refuses a range without +", () => brokenWith(good.replace('ranges: ["+4779"]', 'ranges: ["4779"]'), /\/rules\/1\/ranges\/0: must match pattern/));
  it("refuses an unknown field", () => brokenWith(good.replace("    eea: false\n    source: \"EEA Agreement Protocol 40", "    eea: false\n    eaa: true\n    source: \"EEA Agreement Protocol 40"), /\/rules\/1: unknown field "eaa"/));
  it("refuses an unknown policy", () => brokenWith(good.replace("    extends: eea\n", "    extends: efta\n"), /extends: must be one of eea, whatsapp-european-region/));
  it("refuses a duplicate rule id", () => brokenWith(good.replace("- id: faroe-islands", "- id: aland"), /\(aland\): duplicate id/));
  it("refuses a range in two rules", () => brokenWith(good.replace('ranges: ["+298"]', 'ranges: ["+4779"]'), /range \+4779 is already in rule svalbard-jan-mayen/));
  it("refuses a region libphonenumber does not know", () => brokenWith(good.replace("    region: SJ\n", "    region: QQ\n"), /region QQ is not a region libphonenumber knows/));
  it("refuses digitsAfterRange on a known calling code", () => brokenWith(good.replace('ranges: ["+4779"]', 'ranges: ["+4779"]\n    digitsAfterRange: [4, 8]'), /digitsAfterRange is only for calling codes libphonenumber has no metadata for/));
});
