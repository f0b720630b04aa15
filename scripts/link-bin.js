// npm does not link a package's own bin into its node_modules/.bin; do it so that
// `node_modules/.bin/chatconform` works in a clone as it does for an installed package.
import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import path from "node:path";

const binDir = path.resolve("node_modules/.bin");
mkdirSync(binDir, { recursive: true });
const link = path.join(binDir, "chatconform");
rmSync(link, { force: true });
symlinkSync(path.relative(binDir, path.resolve("bin/chatconform.js")), link);
