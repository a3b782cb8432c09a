// Runs the compiled reference specs with jasmine under Node, the way the
// reference build's Node run does (declaration order, one spec at a time),
// and prints one line per spec plus the totals.
//
//   node support/run.cjs OUT_DIR CLIENT_LOG
//
// OUT_DIR holds the specs tsc compiled (`*Tests.js`); SERVER_URL must be set
// as the suite reads it (`HTTPS_URL;HTTP_URL`). Everything the suite and the
// SignalR client write to the console goes to CLIENT_LOG, tagged with the
// running spec, so that this output stays a readable report.
// Exits 0 only when no spec failed.

"use strict";

const fs = require("node:fs");
const path = require("node:path");
const Module = require("node:module");
const util = require("node:util");
const Jasmine = require("jasmine");
const exclusions = require("./exclusions.cjs");

const [outDir, clientLog] = process.argv.slice(2);
if (!outDir || !clientLog || !process.env.SERVER_URL) {
  console.error("usage: SERVER_URL='HTTPS_URL;HTTP_URL' node support/run.cjs OUT_DIR CLIENT_LOG");
  process.exit(2);
}

// The specs import internals of the client from its ES module build
// (`@microsoft/signalr/dist/esm/Utils` and the like), which the reference
// build hands to a bundler. Under plain Node the CommonJS build of the same
// package has the same files; using it also keeps one copy of each class, so
// `instanceof` checks between the public API and the internals hold.
const ESM_BUILD = /^@microsoft\/(signalr|signalr-protocol-msgpack)\/dist\/esm\//;
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  const mapped = ESM_BUILD.test(request) ? request.replace("/dist/esm/", "/dist/cjs/") : request;
  return resolve.call(this, mapped, ...rest);
};

const log = fs.createWriteStream(clientLog);
let current = "(loading)";
for (const level of ["log", "info", "warn", "error", "debug", "trace"]) {
  console[level] = (...args) => log.write(`[${current}] ${util.format(...args)}\n`);
}
const print = (text) => process.stdout.write(`${text}\n`);

function exclusionOf(fullName) {
  return exclusions.find((entry) => entry.pattern.test(fullName));
}

const totals = { passed: 0, failed: 0, excluded: 0, pending: 0 };
const failures = [];

const reporter = {
  specStarted(result) {
    current = result.fullName;
  },
  specDone(result) {
    current = "(between specs)";
    switch (result.status) {
      case "passed":
        totals.passed += 1;
        print(`  ok       ${result.fullName}`);
        break;
      case "failed":
        totals.failed += 1;
        failures.push(result);
        print(`  FAILED   ${result.fullName}`);
        break;
      case "excluded": {
        const entry = exclusionOf(result.fullName);
        totals.excluded += 1;
        print(`  excluded ${result.fullName}\n           (${entry ? entry.reason : "excluded by the suite"})`);
        break;
      }
      default:
        totals.pending += 1;
        print(`  pending  ${result.fullName}${result.pendingReason ? ` (${result.pendingReason})` : " (disabled in the reference suite)"}`);
    }
  },
  suiteDone(result) {
    // Errors in beforeAll/afterAll or thrown while a describe is declared.
    for (const failure of result.failedExpectations || []) {
      failures.push({ fullName: `${result.fullName} (suite)`, failedExpectations: [failure] });
      totals.failed += 1;
    }
  },
  jasmineDone(result) {
    for (const failure of result.failedExpectations || []) {
      failures.push({ fullName: "(top level)", failedExpectations: [failure] });
      totals.failed += 1;
    }
    if (failures.length > 0) {
      print("\nFailures:");
      for (const failure of failures) {
        print(`\n  ${failure.fullName}`);
        for (const expectation of failure.failedExpectations) {
          print(`    ${expectation.message}`);
        }
      }
    }
    print(
      `\n${totals.passed + totals.failed + totals.excluded + totals.pending} specs: ` +
        `${totals.passed} passed, ${totals.failed} failed, ${totals.excluded} excluded, ` +
        `${totals.pending} pending (overall: ${result.overallStatus})`,
    );
    print(`client and suite console output: ${clientLog}`);
  },
};

const specs = fs
  .readdirSync(outDir, { recursive: true })
  .filter((file) => /Tests\.js$/.test(file))
  .sort()
  .map((file) => path.resolve(outDir, file));
if (specs.length === 0) {
  console.error(`no *Tests.js under ${outDir}: did tsc run?`);
  process.exit(2);
}

const runner = new Jasmine({ projectBaseDir: outDir });
runner.exitOnCompletion = false;
runner.loadConfig({ spec_files: specs, random: false, stopSpecOnExpectationFailure: false });
runner.clearReporters();
runner.addReporter(reporter);
runner.env.configure({ specFilter: (spec) => !exclusionOf(spec.getFullName()) });

runner.execute().then(
  (result) => {
    log.end(() => process.exit(totals.failed === 0 && result.overallStatus !== "failed" ? 0 : 1));
  },
  (error) => {
    process.stdout.write(`jasmine could not run the specs: ${error && error.stack ? error.stack : error}\n`);
    log.end(() => process.exit(1));
  },
);
