#!/usr/bin/env node
// A stand-in for the native `solc` binary, backed by solc-js (npm `solc`, wasm).
//
// No native solc can be downloaded on our machines, and the plain `solcjs` CLI is
// unusable from py-solc-x: it prints a `>>>` line before the JSON and has no
// `--combined-json`. py-solc-x's `compile_standard(..., solc_binary=<this file>)`
// only needs two things, which this script provides:
//
//   solc.cjs --version
//       prints the version the way native solc does; py-solc-x extracts it with
//       the regex (\d+\.\d+\.\d+)(?:-nightly.\d+.\d+.\d+|)(\+commit.\w+)
//   solc.cjs --standard-json [--base-path DIR] [--allow-paths DIRS] [-]
//       reads Standard JSON input on stdin, writes Standard JSON output on stdout.
//       Like native solc it exits 0 when compilation errors are reported inside
//       the output JSON; py-solc-x turns those into a SolcError.
//
// Imports are resolved by source unit name, never by absolute path, so the output
// (metadata hash included) does not depend on where the repository is checked out:
//   `@openzeppelin/...`  -> <root>/node_modules/@openzeppelin/...
//   anything else        -> <root>/<unit name>   (e.g. contracts/lib/Foo.sol)
// where <root> is --base-path, or else the directory above this script. Nothing
// outside <root> is ever read.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const v8 = require("node:v8");

const USAGE = "usage: solc.cjs --version | --standard-json [--base-path DIR] [--allow-paths DIRS]";

function fail(message) {
  // py-solc-x recognises "unrecognised option '<flag>'" and raises UnknownOption.
  process.stderr.write(`${message}\n`);
  process.exitCode = 1;
}

function parseArgs(argv) {
  const options = { version: false, standardJson: false, basePath: null, allowPaths: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    switch (arg) {
      case "--version":
        options.version = true;
        break;
      case "--standard-json":
        options.standardJson = true;
        break;
      case "--base-path":
        options.basePath = argv[++i];
        if (options.basePath === undefined) throw new Error("--base-path needs a directory");
        break;
      case "--allow-paths":
        // Accepted for compatibility with py-solc-x's `allow_paths=`. The import
        // callback below is stricter than native solc: it only ever reads inside
        // the root, so extra allowed paths do not widen anything.
        if (argv[i + 1] === undefined) throw new Error("--allow-paths needs a value");
        options.allowPaths = argv[++i].split(",");
        break;
      case "-":
        // py-solc-x appends "-" (read stdin) when no source files are given.
        break;
      default:
        throw new Error(`unrecognised option '${arg}'`);
    }
  }
  return options;
}

function isInside(parent, child) {
  const relative = path.relative(parent, child);
  return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative);
}

function makeImportCallback(root) {
  const nodeModules = path.join(root, "node_modules");
  return function findImports(unitName) {
    if (path.isAbsolute(unitName) || unitName.split("/").includes("..")) {
      return { error: `refusing to import '${unitName}': source unit names must be relative, without '..'` };
    }
    const base = unitName.startsWith("@openzeppelin/") ? nodeModules : root;
    const file = path.resolve(base, unitName);
    if (!isInside(base, file)) {
      return { error: `refusing to import '${unitName}': it resolves outside ${base}` };
    }
    try {
      return { contents: fs.readFileSync(file, "utf8") };
    } catch (err) {
      return { error: `cannot read '${unitName}' (${file}): ${err.code || err.message}` };
    }
  };
}

function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    fail(err.message);
    return;
  }
  if (options.version === options.standardJson) {
    fail(USAGE);
    return;
  }

  // The compiler is a ~9 MB wasm module run once per process: V8's optimising tier
  // costs more CPU compiling it than it saves (measured: ~30% less CPU time, same
  // output). Must be set before the module is compiled, i.e. before require("solc").
  v8.setFlagsFromString("--liftoff-only");
  let solc;
  try {
    solc = require("solc");
  } catch (err) {
    fail(`cannot load solc-js (${err.code || err.message}): run \`npm ci\` in the repository`);
    return;
  }
  if (options.version) {
    process.stdout.write(
      `solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`,
    );
    return;
  }

  const root = path.resolve(options.basePath ?? path.join(__dirname, ".."));
  const input = fs.readFileSync(0, "utf8");
  const output = solc.compile(input, { import: makeImportCallback(root) });
  // Set exitCode rather than calling process.exit(): the output can be megabytes
  // and exiting early would truncate it on a pipe.
  process.stdout.write(output);
}

main();
