// SPDX-License-Identifier: GPL-2.0

//! For the tools' tests only (the `testing` feature, which each tool enables as a
//! dev-dependency): command-line fuzzing.

use crate::Rng;

/// For the tools' tests: random command lines made of `words` (a tool's flags and values) and of
/// hostile strings (huge, negative, non-finite, non-ASCII, empty). Every tool feeds thousands of
/// them to its parser and to what runs on a parsed result, and asserts that nothing panics.
pub fn random_argv(rng: &mut Rng, prog: &str, words: &[&str]) -> Vec<String> {
    const HOSTILE: &[&str] = &[
        "",
        "-",
        "--",
        "0",
        "-1",
        "1e19",
        "1e308",
        "inf",
        "-inf",
        "nan",
        "NaN",
        "0x",
        "0xffffffffffffffffff",
        "18446744073709551616",
        "99999999999999999999",
        "4294967296",
        "é",
        "a=b=c",
        ",",
        "=",
        "x=",
        "compute=0",
        "none",
        "ENOPE",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    let mut argv = vec![prog.to_string()];
    for _ in 0..rng.below(7) {
        let w = if rng.below(3) == 0 {
            *rng.pick(HOSTILE)
        } else {
            *rng.pick(words)
        };
        argv.push(w.to_string());
    }
    argv
}

/// For the tools' tests: runs `run` (a tool's parser and what it does with the result) on `count`
/// command lines from [`random_argv`], and fails naming the first command line that panics.
pub fn fuzz_command_lines(prog: &str, words: &[&str], count: usize, run: impl Fn(&[String])) {
    let mut rng = Rng(0x5eed);
    for _ in 0..count {
        let argv = random_argv(&mut rng, prog, words);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&argv)));
        assert!(r.is_ok(), "{argv:?} panicked");
    }
}
