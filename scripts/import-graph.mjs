#!/usr/bin/env node
// Prints the import graph of src/ by folder: the edges that point back up the layering and
// the cycles between folders. `--check` exits 1 on any that KNOWN does not list (`npm run lint`
// runs it, and so scripts/test.sh).
//   node scripts/import-graph.mjs [--check] [--edges]
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "src");
const args = new Set(process.argv.slice(2));

// Layers, top to bottom: a folder may import folders in its own layer's list or below it.
// Entry points and the composition root sit on top; gen/ and the leaf utilities at the bottom.
const LAYERS = [
  ["main.ts", "app.ts", "cli"],
  ["server"],
  ["cri"],
  ["pod", "recovery", "doctor"],
  ["sandbox", "container", "image", "stats"],
  ["streaming", "network", "registry", "peer", "container-logs", "lifecycle-events"],
  ["containerd", "oci"],
  ["config", "logger", "errors", "util", "version.ts", "gen", "metrics", "node", "rpc", "distribution"],
];
// Back-edges still to be removed, each with the work that removes it. They are printed on every
// run; --check fails on any other, and on a cycle that needs an edge not listed here.
// None left: add one only with the change that will remove it.
const KNOWN = new Map([]);
const layerOf = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, i])));

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === "gen" ? [] : files(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

const unitOf = (file) => relative(root, file).split("/")[0].replace(/\.js$/, ".ts");
const edges = new Map();
for (const file of files(root)) {
  const from = unitOf(file);
  const text = readFileSync(file, "utf8");
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"(\.[^"]+)"/gms)) {
    const to = unitOf(resolve(dirname(file), m[1]));
    if (to === from) continue;
    const key = `${from} -> ${to}`;
    if (!edges.has(key)) edges.set(key, []);
    edges.get(key).push(relative(root, file));
  }
}

const unknown = [...new Set([...edges.keys()].flatMap((k) => k.split(" -> ")))].filter((u) => !layerOf.has(u));
const backEdges = [...edges.entries()].filter(([k]) => {
  const [from, to] = k.split(" -> ");
  return layerOf.has(from) && layerOf.has(to) && layerOf.get(to) < layerOf.get(from);
});

// Cycles between folders (strongly connected components of more than one folder).
function cyclesOf(keys) {
  const graph = new Map();
  for (const k of keys) {
    const [from, to] = k.split(" -> ");
    if (!graph.has(from)) graph.set(from, new Set());
    graph.get(from).add(to);
  }
  const cycles = [];
  {
    let index = 0;
    const idx = new Map(), low = new Map(), stack = [], on = new Set();
    const visit = (v) => {
      idx.set(v, index); low.set(v, index); index++; stack.push(v); on.add(v);
      for (const w of graph.get(v) ?? []) {
        if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
        else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
      }
      if (low.get(v) === idx.get(v)) {
        const comp = [];
        let w;
        do { w = stack.pop(); on.delete(w); comp.push(w); } while (w !== v);
        if (comp.length > 1) cycles.push(comp.sort());
      }
    };
    for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  }
  return cycles;
}
const cycles = cyclesOf(edges.keys());
const newCycles = cyclesOf([...edges.keys()].filter((k) => !KNOWN.has(k)));
const newBackEdges = backEdges.filter(([k]) => !KNOWN.has(k));

if (args.has("--edges")) for (const [k, fs] of [...edges.entries()].sort()) console.log(`${k}  (${fs.length})`);
console.log(`back-edges (an import pointing up the layers): ${backEdges.length}`);
for (const [k, fs] of backEdges) console.log(`  ${k}: ${[...new Set(fs)].join(", ")}${KNOWN.has(k) ? `  [known: ${KNOWN.get(k)}]` : ""}`);
console.log(`cycles between folders: ${cycles.length}`);
for (const c of cycles) console.log(`  ${c.join(" <-> ")}${newCycles.some((n) => n.join() === c.join()) ? "" : "  [known: only through known back-edges]"}`);
if (unknown.length > 0) console.log(`folders with no layer (add them to LAYERS): ${unknown.join(", ")}`);
if (args.has("--check") && (newBackEdges.length > 0 || newCycles.length > 0 || unknown.length > 0)) {
  console.error(`import-graph: ${newBackEdges.length} new back-edges, ${newCycles.length} new cycles, ${unknown.length} folders with no layer`);
  process.exit(1);
}
