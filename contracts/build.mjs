#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// Compiles src/*.sol with the pinned npm `solc` (solc-js, standard JSON) and writes
// artifacts/CarbonAnchor.json, which the Python side deploys with no Node at run time.
//
//   node build.mjs           compile and (re)write the artifact
//   node build.mjs --check   compile and exit 1 if the committed artifact differs
//
// The artifact is a pure function of the sources and the settings below, so a fresh
// compile reproduces it byte for byte on any machine.

import { createHash } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join, normalize, isAbsolute, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const ROOT = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const CONTRACT = { source: "src/CarbonAnchor.sol", name: "CarbonAnchor" };
const ARTIFACT = join(ROOT, "artifacts", `${CONTRACT.name}.json`);
const SOURCE_HASH_RULE =
  "sha256 of the text made of one line '<sha256 hex of the file>  <source unit name>\\n' " +
  "per source unit compiled (sorted by name, as sha256sum prints them)";

// Every setting that affects the bytecode. foundry.toml mirrors these (optimizer,
// optimizer_runs, evm_version, via_ir, bytecode_hash) so forge tests the same code.
const SETTINGS = {
  remappings: ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
  optimizer: { enabled: true, runs: 10000 },
  evmVersion: "cancun",
  viaIR: false,
  metadata: { bytecodeHash: "ipfs", appendCBOR: true },
};

function sha256hex(data) {
  return createHash("sha256").update(data).digest("hex");
}

function projectSources() {
  const units = [];
  const walk = (dir) => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith(".sol")) units.push(rel);
    }
  };
  walk("src");
  return units.sort();
}

// Source unit names are paths relative to contracts/; imports resolve only inside it.
function readUnit(unit) {
  if (isAbsolute(unit) || normalize(unit).split(sep).includes("..")) {
    throw new Error(`refusing to read ${unit}: outside contracts/`);
  }
  return readFileSync(join(ROOT, unit), "utf8");
}

function loadSolc() {
  const solc = require("solc");
  const pinned = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).devDependencies.solc;
  const installed = require("solc/package.json").version;
  const long = solc.version(); // e.g. 0.8.37+commit.f401782d.Emscripten.clang
  if (installed !== pinned || !long.startsWith(`${pinned}+`)) {
    throw new Error(`solc ${installed} (${long}) is installed but package.json pins ${pinned}: run npm ci`);
  }
  return { solc, pinned, long };
}

export function compile() {
  const { solc, pinned, long } = loadSolc();
  const contents = new Map();
  for (const unit of projectSources()) contents.set(unit, readUnit(unit));
  const input = {
    language: "Solidity",
    sources: Object.fromEntries([...contents].map(([unit, content]) => [unit, { content }])),
    settings: {
      ...SETTINGS,
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  const findImports = (unit) => {
    try {
      const content = readUnit(unit);
      contents.set(unit, content);
      return { contents: content };
    } catch (err) {
      return { error: String(err.message ?? err) };
    }
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const problems = (output.errors ?? []).filter(
    (e) => e.severity === "error" || !String(e.sourceLocation?.file ?? "").startsWith("node_modules/"),
  );
  for (const e of output.errors ?? []) process.stderr.write(`${e.formattedMessage ?? e.message}\n`);
  if (problems.length) throw new Error(`compilation failed: ${problems.length} error(s)/warning(s) in our sources`);

  const compiled = output.contracts?.[CONTRACT.source]?.[CONTRACT.name];
  if (!compiled) throw new Error(`${CONTRACT.source}:${CONTRACT.name} missing from compiler output`);
  for (const [unit, byName] of Object.entries(output.contracts)) {
    for (const [name, c] of Object.entries(byName)) {
      if (/__\$[0-9a-f]{34}\$__/.test(c.evm.bytecode.object)) {
        throw new Error(`${unit}:${name} needs library linking; keep RFC9162 functions internal`);
      }
    }
  }

  // Every unit the compiler saw, including imports, by name.
  const units = Object.keys(output.sources).sort();
  const sources = Object.fromEntries(units.map((u) => [u, sha256hex(contents.get(u))]));
  const sourceHash = sha256hex(units.map((u) => `${sources[u]}  ${u}\n`).join(""));

  const artifact = {
    contractName: CONTRACT.name,
    sourceName: CONTRACT.source,
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
    deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
    compiler: {
      name: "solc-js",
      npmPackage: `solc@${pinned}`,
      version: long.replace(/\.Emscripten\.clang$/, ""),
      longVersion: long,
      settings: SETTINGS,
    },
    sourceHash,
    sourceHashRule: SOURCE_HASH_RULE,
    sources,
  };
  return `${JSON.stringify(artifact, null, 2)}\n`;
}

function main(argv) {
  const check = argv.includes("--check");
  const unknown = argv.filter((a) => a !== "--check");
  if (unknown.length) {
    process.stderr.write(`usage: node build.mjs [--check]\n`);
    return 2;
  }
  const fresh = compile();
  if (!check) {
    mkdirSync(dirname(ARTIFACT), { recursive: true });
    writeFileSync(ARTIFACT, fresh);
    process.stdout.write(`wrote ${ARTIFACT}\n`);
    return 0;
  }
  if (!existsSync(ARTIFACT)) {
    process.stderr.write(`${ARTIFACT} is missing: run npm run build\n`);
    return 1;
  }
  const committed = readFileSync(ARTIFACT, "utf8");
  if (committed === fresh) {
    process.stdout.write(`${ARTIFACT} matches a fresh compile\n`);
    return 0;
  }
  let differing = ["(formatting)"];
  try {
    const a = JSON.parse(committed);
    const b = JSON.parse(fresh);
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    const changed = keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
    if (changed.length) differing = changed;
  } catch {
    differing = ["(committed artifact is not valid JSON)"];
  }
  process.stderr.write(
    `${ARTIFACT} is stale: it differs from a fresh compile in ${differing.join(", ")}; run npm run build\n`,
  );
  return 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`build.mjs: ${err.message ?? err}\n`);
    process.exitCode = 1;
  }
}
