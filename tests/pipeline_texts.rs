//! The layout rules on real texts (tests/fixtures/texts: a Python file, Markdown with a fenced block
//! and a pipe table, `ls -l` and other command output, JSON, a GPL-3 excerpt), compressed by a fixture
//! model: indentation, paragraphs and endings kept, code and table rows byte for byte, JSON passed
//! through, and no prose line taken for a table or code.

mod common;

use common::*;
use kompress::pipeline::{compress, Compat, CompressOptions, CompressResult, Mode, Passthrough, Reason};
use kompress::{DTypeChoice, Kompress, LoadOptions};

fn model() -> Kompress {
    Kompress::from_dir(model_dir("v5"), &LoadOptions { dtype: DTypeChoice::F32, ..Default::default() })
        .unwrap()
}

fn text(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("texts").join(name)).unwrap()
}

fn run(name: &str, opts: &CompressOptions) -> (String, CompressResult) {
    let t = text(name);
    let r = compress(&model(), &t, &CompressOptions { explain: true, ..opts.clone() }).unwrap();
    (t, r)
}

fn threshold() -> CompressOptions {
    CompressOptions { mode: Mode::Threshold(0.5), ..Default::default() }
}

/// Input lines (1-based) holding a word with `reason`.
fn lines_with(r: &CompressResult, reason: Reason) -> Vec<usize> {
    let mut lines: Vec<usize> =
        r.words.as_ref().unwrap().iter().filter(|d| d.reason == reason).map(|d| d.line).collect();
    lines.dedup();
    lines
}

/// Every output line is an input line's leading whitespace and some of its words, in input order.
fn assert_lines_from_input(input: &str, output: &str) {
    let mut from = 0;
    let lines: Vec<&str> = input.lines().collect();
    for out in output.lines().filter(|l| !l.is_empty()) {
        let lead = &out[..out.len() - out.trim_start().len()];
        let i = (from..lines.len())
            .find(|&i| {
                let l = lines[i];
                l == out
                    || (l.starts_with(lead) && !l[lead.len()..].starts_with(char::is_whitespace) && {
                        let mut words = l.split_whitespace();
                        out.split_whitespace().all(|w| words.any(|x| x == w))
                    })
            })
            .unwrap_or_else(|| panic!("{out:?} is not from a later input line"));
        from = i + 1;
    }
}

#[test]
fn python_keeps_its_indentation_and_paragraphs() {
    let (input, r) = run("sample.py", &threshold());
    assert!(!r.passthrough && r.kept_words < r.original_words);
    assert_lines_from_input(&input, &r.compressed);
    assert!(r.compressed.contains("\n        super().__init__()\n"), "{}", r.compressed);
    assert!(r.compressed.contains("\n\n@dataclass\n"), "blank lines keep definitions apart");
    assert!(!r.compressed.contains("\n\n\n"), "blank runs collapse to one line");
    assert!(r.compressed.ends_with('\n'));
}

#[test]
fn markdown_code_blocks_and_pipe_tables_are_verbatim() {
    let (input, r) = run("sample.md", &threshold());
    let block = "```sh\ngit clean -fdx\ncargo build --release --locked\n\ncargo test --release\n```\n";
    let table = &input[input.find("| platform").unwrap()..input.find("\n\nIf a platform").unwrap()];
    assert!(r.compressed.contains(block) && r.compressed.contains(table), "{}", r.compressed);
    assert_eq!(lines_with(&r, Reason::Code), [12, 13, 14, 16, 17]);
    assert_eq!(lines_with(&r, Reason::Table), [21, 22, 23, 24, 25]);
    assert_lines_from_input(&input, &r.compressed);
    // Without the protections the model decides those lines too.
    let opts = CompressOptions { protect_code: false, protect_tables: false, ..threshold() };
    let (_, free) = run("sample.md", &opts);
    assert!(lines_with(&free, Reason::Code).is_empty() && lines_with(&free, Reason::Table).is_empty());
}

#[test]
fn ls_and_command_output_rows_are_kept_byte_for_byte() {
    let (input, r) = run("ls_l.txt", &threshold());
    let rows: Vec<&str> = input.lines().filter(|l| l.starts_with(['-', 'd', 'l'])).collect();
    assert_eq!(rows.len(), 26);
    for row in &rows {
        assert!(r.compressed.lines().any(|l| l == *row), "{row}");
    }
    assert_eq!(lines_with(&r, Reason::Table), (3..=28).collect::<Vec<_>>());
    let (input, r) = run("commands.txt", &threshold());
    for header in ["USER ", "Filesystem ", "CONTAINER ID", "NAME "] {
        let start = input.find(header).unwrap();
        let block: Vec<&str> = input[start..].lines().take_while(|l| !l.starts_with('$')).take(5).collect();
        for row in block.iter().filter(|l| !l.starts_with("The ")) {
            assert!(r.compressed.lines().any(|l| l == *row), "{row}");
        }
    }
    assert!(!lines_with(&r, Reason::Table).contains(&26), "the prose after the pods is not a table");
}

#[test]
fn json_passes_through_with_its_reason() {
    let (input, r) = run("data.json", &CompressOptions { min_words: 1, ..threshold() });
    assert_eq!(
        (r.compressed.as_str(), r.passthrough_reason),
        (input.as_str(), Some(Passthrough::Structured))
    );
    assert!(r.words.unwrap().iter().all(|d| d.reason == Reason::Structured));
    let (_, text) = run("data.json", &CompressOptions { min_words: 1, protect_json: false, ..threshold() });
    assert!(!text.passthrough && text.kept_words < text.original_words);
}

#[test]
fn gpl_prose_keeps_its_paragraphs_and_has_no_table() {
    let (input, r) = run("gpl3_excerpt.txt", &Default::default());
    assert!(lines_with(&r, Reason::Table).is_empty() && lines_with(&r, Reason::Code).is_empty());
    assert_lines_from_input(&input, &r.compressed);
    let paragraphs = |t: &str| t.split("\n\n").filter(|p| !p.trim().is_empty()).count();
    assert!(paragraphs(&r.compressed) >= paragraphs(&input) - 2, "{}", r.compressed);
    assert!(
        r.compressed.contains("\n                            Preamble\n"),
        "centred titles keep their indentation"
    );
}

#[test]
fn headroom_compat_flattens_as_headroom_does() {
    let (_, r) = run("sample.py", &CompressOptions { compat: Compat::Headroom, ..threshold() });
    assert!(r.compressed.lines().all(|l| !l.starts_with(' ') && !l.is_empty()));
    assert!(!r.compressed.ends_with('\n'));
}

#[test]
fn readme_prose_has_no_table() {
    // The README's prose: its text without fenced blocks and Markdown tables.
    let readme = std::fs::read_to_string(fixtures().join("../../README.md")).unwrap();
    let code = kompress::pipeline::code::fenced_code(&readme);
    let prose: Vec<&str> = readme
        .split('\n')
        .enumerate()
        .filter(|(i, l)| !code.contains(*i) && !l.trim_start().starts_with('|'))
        .map(|(_, l)| l)
        .collect();
    let prose = prose.join("\n");
    assert!(kompress::pipeline::table::tables(&prose).is_empty());
    assert!(kompress::pipeline::code::fenced_code(&prose).is_empty());
}
