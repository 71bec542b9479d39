#!/usr/bin/env node
// Lint Cypher files with Neo4j's own linter (@neo4j-cypher/language-support), so that the
// statements the tests run on ArcadeDB are also valid Neo4j 5 Cypher.
//
// Usage: node tools/cypherlint/lint.mjs [--no-cache] FILE...
// Prints JSON: [{file, diagnostics: [{message, severity, line, column, deprecated?}], writes: [...]}]
// Exit status: 0 clean (warnings allowed), 1 an error or a deprecation in some file, 2 usage.
//
// - Linted as Cypher 5 (the package default), with no database schema: labels, properties and
//   functions are not checked against a database; syntax and semantics are.
// - "Parameter $x is not defined" is dropped: every statement of the project is parameterised.
// - Deprecations fail too: they are Neo4j 5 syntax that Neo4j is removing (for example
//   `CALL { WITH x ... }`, whose replacement is `CALL (x) { ... }`).
// - One statement per file: a second statement in the same file is an error.
// - `writes` lists the updating clauses and commands found in the parse tree (CREATE, MERGE,
//   SET, ...); the linter itself does not judge them, the caller may (examples must be reads).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Imported on first use: loading Neo4j's analyser takes about a second, a cache hit needs none of it.
let cypher;
async function languageSupport() {
  cypher ??= await import('@neo4j-cypher/language-support');
  return cypher;
}

const SEVERITY = { 1: 'error', 2: 'warning', 3: 'information', 4: 'hint' };
const DEPRECATED_TAG = 2; // DiagnosticTag.Deprecated of the language server protocol
const PARAMETER_NOT_DEFINED = /^Parameter \$(\w+|`[^`]*`) is not defined\.?$/;

// Parse-tree rules that change the graph or the schema, as named by the package's grammar.
const WRITE_RULES = new Map([
  ['createClause', 'CREATE'],
  ['insertClause', 'INSERT'],
  ['mergeClause', 'MERGE'],
  ['setClause', 'SET'],
  ['removeClause', 'REMOVE'],
  ['deleteClause', 'DELETE'],
  ['foreachClause', 'FOREACH'],
  ['loadCSVClause', 'LOAD CSV'],
  ['callClause', 'CALL procedure'],
  ['subqueryInTransactionsParameters', 'IN TRANSACTIONS'],
  ['command', 'schema or admin command'],
  ['terminateCommand', 'TERMINATE'],
  ['terminateTransactions', 'TERMINATE'],
]);

function writeClauses({ getDebugTree }, text) {
  const found = new Set();
  const walk = (node) => {
    // terminals (tokens) have no children; only rule nodes name a clause
    if (!node.children || node.children.length === 0) return;
    if (WRITE_RULES.has(node.name)) found.add(WRITE_RULES.get(node.name));
    node.children.forEach(walk);
  };
  walk(getDebugTree(text));
  return [...found].sort();
}

async function lintText(text) {
  const ls = await languageSupport();
  const { diagnostics } = ls.lintCypherQuery(text, {}, { consoleCommandsEnabled: false });
  const kept = diagnostics
    .filter((d) => !PARAMETER_NOT_DEFINED.test(d.message))
    .map((d) => {
      const deprecated = (d.tags ?? []).includes(DEPRECATED_TAG) || /deprecat/i.test(d.message);
      return {
        message: d.message,
        severity: SEVERITY[d.severity] ?? 'error',
        line: d.range.start.line + 1,
        column: d.range.start.character + 1,
        ...(deprecated ? { deprecated: true } : {}),
      };
    });
  const statements = ls.parseStatementsStrs(text).filter((s) => s.trim() !== '');
  if (statements.length > 1) {
    kept.push({ message: `file holds ${statements.length} statements; keep one statement per file`, severity: 'error', line: 1, column: 1 });
  }
  return { diagnostics: kept, writes: writeClauses(ls, text) };
}

// Results are cached by content: Neo4j's semantic analysis costs a few hundred ms per statement,
// and the key covers the file text, this script and the installed package version, so a cached
// answer is the answer the linter would give.  The cache lives under node_modules/ (never
// committed; `npm ci` clears it).  --no-cache lints everything afresh.
const HERE = dirname(fileURLToPath(import.meta.url));
const CACHE_DIR = join(HERE, 'node_modules', '.cache', 'cypherlint');
const PACKAGE_VERSION = JSON.parse(
  readFileSync(join(HERE, 'node_modules', '@neo4j-cypher', 'language-support', 'package.json'), 'utf8'),
).version;
const SCRIPT_HASH = createHash('sha256').update(readFileSync(fileURLToPath(import.meta.url))).digest('hex');

async function cachedLint(file, useCache) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    return { file, diagnostics: [{ message: `cannot read file (${error.code})`, severity: 'error', line: 0, column: 0 }], writes: [] };
  }
  const key = createHash('sha256').update(`${PACKAGE_VERSION}\0${SCRIPT_HASH}\0${text}`).digest('hex');
  const path = join(CACHE_DIR, `${key}.json`);
  if (useCache && existsSync(path)) {
    return { file, ...JSON.parse(readFileSync(path, 'utf8')) };
  }
  const { diagnostics, writes } = await lintText(text);
  if (useCache) {
    mkdirSync(CACHE_DIR, { recursive: true });
    const partial = `${path}.${process.pid}.tmp`;
    writeFileSync(partial, JSON.stringify({ diagnostics, writes }));
    renameSync(partial, path);
  }
  return { file, diagnostics, writes };
}

const args = process.argv.slice(2);
const useCache = !args.includes('--no-cache');
const files = args.filter((a) => a !== '--no-cache');
if (files.some((f) => f.startsWith('-'))) {
  process.stderr.write('usage: node lint.mjs [--no-cache] FILE...\n');
  process.exit(2);
}
const results = [];
for (const file of files) results.push(await cachedLint(file, useCache));
process.stdout.write(JSON.stringify(results, null, 2) + '\n');
const failed = results.some((r) => r.diagnostics.some((d) => d.severity === 'error' || d.deprecated));
process.exit(failed ? 1 : 0);
