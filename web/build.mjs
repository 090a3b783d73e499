// Builds the web page served by `claude-history serve` at / into src/claude_history/server/static/ (git-ignored):
// one script bundle (the page's code with marked, DOMPurify, highlight.js and Chart.js), one stylesheet and
// index.html pointing at both by content hash, so a browser never runs a stale bundle. `make install` runs it.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "claude_history", "server", "static");
const hash = (text) => createHash("sha256").update(text).digest("hex").slice(0, 12);

const bundle = await esbuild.build({
  entryPoints: [join(here, "src", "main.js")],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  legalComments: "eof",
  write: false,
});
const script = bundle.outputFiles[0].text;
const style = [
  readFileSync(join(here, "node_modules", "highlight.js", "styles", "github.css"), "utf8"),
  readFileSync(join(here, "src", "app.css"), "utf8"),
].join("\n");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "app.js"), script);
writeFileSync(join(out, "app.css"), style);
const page = readFileSync(join(here, "src", "index.html"), "utf8")
  .replace("app.js", `app.js?v=${hash(script)}`)
  .replace("app.css", `app.css?v=${hash(style)}`);
writeFileSync(join(out, "index.html"), page);
writeFileSync(join(out, ".built"), new Date().toISOString() + "\n");
console.log(`web page built into ${out} (app.js ${(script.length / 1024).toFixed(0)} KiB)`);
