// Regenerates the requirement table in docs/profile.md from profile/requirements.yaml.
import { readFileSync, writeFileSync } from "node:fs";
import { loadRequirements } from "../src/checks/requirements.ts";
import { withRequirementTable } from "../src/checks/requirements-doc.ts";

const file = new URL("../docs/profile.md", import.meta.url);
writeFileSync(file, withRequirementTable(readFileSync(file, "utf8"), loadRequirements()));
console.log("docs/profile.md: requirement table updated");
