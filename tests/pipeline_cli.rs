//! `kompress compress` end to end on a fixture model: output forms, several files, corpus mode,
//! explain, token counts and budgets, a closed output, and bad input (empty, non-UTF-8, giant words,
//! mixed CRLF, bad flags, missing files, corpus lines without text) handled without a panic.

mod common;

use std::process::Output;

use common::*;
use serde_json::Value;

fn kompress(args: &[&str], stdin: &[u8]) -> Output {
    let model = model_dir("v5");
    let mut full = vec!["compress", "--device", "cpu", "--model", model.to_str().unwrap()];
    full.extend_from_slice(args);
    run_kompress(&full, &[], stdin)
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(out: Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn failure(out: Output, needle: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle) && !err.contains("panicked"), "{err}");
}

fn prose() -> String {
    let (_, text) = inputs().into_iter().find(|(k, _)| k == "long").unwrap();
    text
}

#[test]
fn json_has_the_documented_fields() {
    let v = json(kompress(&["--json", "--mode", "threshold"], prose().as_bytes()));
    for key in [
        "compressed",
        "original_words",
        "kept_words",
        "original_tokens",
        "compressed_tokens",
        "tokens_saved",
        "token_counter",
        "compression_ratio",
        "chunks",
        "over_budget",
    ] {
        assert!(!v[key].is_null(), "{key}");
    }
    assert_eq!(v["token_counter"], "cl100k");
    let (t0, t1) = (v["original_tokens"].as_u64().unwrap(), v["compressed_tokens"].as_u64().unwrap());
    assert_eq!(v["tokens_saved"].as_u64().unwrap(), t0 - t1);
    assert_eq!(
        (v["mode"].as_str(), v["device"].as_str(), v["dtype"].as_str()),
        (Some("threshold:0.5"), Some("cpu"), Some("f32"))
    );
    let (orig, kept) = (v["original_words"].as_u64().unwrap(), v["kept_words"].as_u64().unwrap());
    assert!(kept < orig && orig >= 64 && t1 < t0);
    assert_eq!(v["compressed"].as_str().unwrap().split_whitespace().count() as u64, kept);
}

#[test]
fn plain_output_is_the_compressed_text() {
    let text = prose();
    for input in [text.clone(), format!("{text}\n"), format!("  {text}\r\n\r\n")] {
        let plain = ok(kompress(&[], input.as_bytes()));
        let v = json(kompress(&["--json"], input.as_bytes()));
        assert_eq!(plain, v["compressed"].as_str().unwrap(), "--json's compressed is what is printed");
        assert_eq!(plain.ends_with('\n'), input.ends_with('\n'));
    }
    // Headroom's output never ends with a line ending; the command adds one, as it always did.
    let plain = ok(kompress(&["--compat", "headroom"], text.as_bytes()));
    let v = json(kompress(&["--json", "--compat", "headroom"], text.as_bytes()));
    assert_eq!(
        (plain, v["compat"].as_str()),
        (format!("{}\n", v["compressed"].as_str().unwrap()), Some("headroom"))
    );
}

#[test]
fn several_files_are_one_batch_with_the_same_results() {
    let dir = std::env::temp_dir().join(format!("kompress-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.txt"), dir.join("b.txt"));
    std::fs::write(&a, prose()).unwrap();
    std::fs::write(&b, prose().replace("meeting", "review")).unwrap();
    let both = ok(kompress(&["--json", "--batch-size", "3", a.to_str().unwrap(), b.to_str().unwrap()], b""));
    let lines: Vec<Value> = both.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for (line, path) in lines.iter().zip([&a, &b]) {
        let alone = json(kompress(&["--json", "--batch-size", "1", path.to_str().unwrap()], b""));
        assert_eq!(line["compressed"], alone["compressed"]);
        assert_eq!(line["input"].as_str(), path.to_str());
    }
    let plain = ok(kompress(&[a.to_str().unwrap(), b.to_str().unwrap()], b""));
    assert!(plain.starts_with(&format!("==> {} <==\n", a.display())));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn jsonl_streams_one_result_per_line() {
    let long = prose();
    let corpus = format!(
        "{}\n{{\"text\": {}}}\nraw short line\r\n\n",
        serde_json::to_string(&long).unwrap(),
        serde_json::to_string(&long).unwrap()
    );
    let out = ok(kompress(&["--jsonl", "--batch-size", "2"], corpus.as_bytes()));
    let results: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["compressed"], results[1]["compressed"]);
    assert_eq!(results[0]["passthrough"], false);
    assert_eq!(
        (results[2]["compressed"].as_str(), results[2]["line"].as_u64()),
        (Some("raw short line"), Some(3))
    );
    assert_eq!(results[3]["original_words"], 0);
}

#[test]
fn explain_marks_dropped_words() {
    let text = prose();
    let marked = ok(kompress(&["--explain", "--mode", "threshold"], text.as_bytes()));
    let kept =
        json(kompress(&["--json", "--mode", "threshold"], text.as_bytes()))["kept_words"].as_u64().unwrap();
    let dropped = marked.split_whitespace().filter(|w| w.starts_with("[-") && w.ends_with("-]")).count();
    assert_eq!(marked.split_whitespace().count(), text.split_whitespace().count());
    assert_eq!(dropped as u64, text.split_whitespace().count() as u64 - kept);
    let v = json(kompress(&["--explain", "--json"], text.as_bytes()));
    let words = v["words"].as_array().unwrap();
    assert_eq!(words.len(), text.split_whitespace().count());
    assert!(
        words.iter().any(|w| w["reason"] == "protected")
            && words.iter().all(|w| w["reason"] != "passthrough")
    );
}

#[test]
fn empty_whitespace_and_one_word_pass_through() {
    for text in ["", "   \n\t", "word"] {
        let v = json(kompress(&["--json"], text.as_bytes()));
        assert_eq!((v["compressed"].as_str(), v["passthrough"].as_bool()), (Some(text), Some(true)));
    }
}

#[test]
fn non_utf8_is_an_error_unless_lossy() {
    let mut text = prose().into_bytes();
    text.extend_from_slice(b" caf\xe9");
    failure(kompress(&[], &text), "--lossy");
    let v = json(kompress(&["--json", "--explain", "--lossy"], &text));
    assert_eq!(v["words"].as_array().unwrap().last().unwrap()["word"], "caf\u{fffd}");
    failure(kompress(&["--jsonl"], b"caf\xe9\n"), "line 1");
}

#[test]
fn a_long_word_without_spaces_is_kept_whole() {
    let giant = "ab7-".repeat(25_000);
    let text = format!("{} {giant} {}", prose(), prose());
    let v = json(kompress(&["--json", "--explain", "--mode", "threshold"], text.as_bytes()));
    assert_eq!(v["unscored_words"], 1);
    assert!(v["compressed"].as_str().unwrap().contains(&giant));
    let alone = json(kompress(&["--json", "--min-words", "1"], giant.as_bytes()));
    assert_eq!(
        (alone["compressed"].as_str(), alone["unscored_words"].as_u64()),
        (Some(giant.as_str()), Some(1))
    );
}

#[test]
fn mixed_line_endings_are_kept() {
    let text: String =
        prose().split(". ").enumerate().map(|(i, s)| format!("{s}.{}", ["\r\n", "\n"][i % 2])).collect();
    let v = json(kompress(&["--json", "--explain", "--mode", "threshold"], text.as_bytes()));
    let endings: Vec<&str> =
        text.split_inclusive('\n').map(|l| if l.ends_with("\r\n") { "\r\n" } else { "\n" }).collect();
    let mut expected = String::new();
    let mut last_line: Option<usize> = None;
    for w in v["words"].as_array().unwrap().iter().filter(|w| w["kept"] == true) {
        let line = w["line"].as_u64().unwrap() as usize - 1;
        match last_line {
            Some(l) if l == line => expected.push(' '),
            Some(l) => expected.push_str(endings[l]),
            None => {}
        }
        expected.push_str(w["word"].as_str().unwrap());
        last_line = Some(line);
    }
    expected.push_str(endings[last_line.unwrap()]);
    assert!(text.contains("\r\n") && expected.contains("\r\n"));
    assert_eq!(v["compressed"].as_str().unwrap(), expected);
}

#[test]
fn bad_options_are_clear_errors() {
    let text = prose();
    failure(kompress(&["--mode", "ratio", "--threshold", "0.3"], text.as_bytes()), "--threshold");
    failure(kompress(&["--mode", "ratio"], text.as_bytes()), "--ratio");
    failure(kompress(&["--chunk-tokens", "100000"], text.as_bytes()), "maximum of 512");
    failure(kompress(&["--chunk-tokens", "2"], text.as_bytes()), "chunk_tokens 2");
    failure(kompress(&["missing-file.txt"], b""), "missing-file.txt");
    for (flag, value, says) in [
        ("--ratio", "1.5", "not in (0, 1]"),
        ("--ratio", "-1", "not in (0, 1]"),
        ("--ratio", "x", "not a number"),
        ("--threshold", "inf", "not in [0, 1]"),
        ("--threshold", "-1", "not in [0, 1]"),
        ("--threshold", "2", "not in [0, 1]"),
        ("--chunk-words", "0", "--chunk-words"),
        ("--batch-size", "0", "--batch-size"),
        ("--count-tokens", "gpt2", "cl100k, o200k or words"),
        ("--target-tokens", "-5", "--target-tokens"),
    ] {
        let out = kompress(&[flag, value], text.as_bytes());
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success() && err.contains(flag) && err.contains(says), "{flag} {value}: {err}");
        assert!(!err.contains("'-- "), "no advice to escape a negative number: {err}");
    }
    failure(
        kompress(&["--target-tokens", "10", "--compat", "headroom"], text.as_bytes()),
        "no Headroom 0.42 equivalent",
    );
}

#[test]
fn a_missing_file_is_named_and_the_others_are_still_compressed() {
    let dir = std::env::temp_dir().join(format!("kompress-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.txt");
    std::fs::write(&a, prose()).unwrap();
    let missing = dir.join("missing.txt");
    for extra in [&[][..], &["--json"][..], &["--jsonl"][..]] {
        let mut args = extra.to_vec();
        args.extend([missing.to_str().unwrap(), a.to_str().unwrap()]);
        let out = kompress(&args, b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?}");
        assert!(
            err.contains(missing.to_str().unwrap()) && err.contains("1 of 2 inputs could not be read"),
            "{err}"
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("scheduled"),
            "{extra:?}: a.txt is still compressed"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn jsonl_lines_without_a_text_string_are_errors_naming_the_line() {
    for (line, says) in
        [("{\"foo\": 1}", "without a \"text\" field"), ("{\"text\": 5}", "is a number, not a string")]
    {
        let corpus = format!("\"fine\"\n{line}\n");
        failure(
            kompress(&["--jsonl"], corpus.as_bytes()),
            &format!("-, line 2: a JSON object {says}").replace("a JSON object is", "its \"text\" field is"),
        );
    }
}

#[test]
fn token_counts_follow_count_tokens() {
    let text = prose();
    let counts = |counter: &str| {
        let v = json(kompress(&["--json", "--count-tokens", counter], text.as_bytes()));
        (
            v["token_counter"].as_str().unwrap().to_string(),
            v["original_tokens"].as_u64().unwrap(),
            v["original_words"].as_u64().unwrap(),
        )
    };
    let (cl, o, words) = (counts("cl100k"), counts("o200k"), counts("words"));
    assert_eq!((cl.0.as_str(), o.0.as_str(), words.0.as_str()), ("cl100k", "o200k", "words"));
    assert_eq!(words.1, words.2, "words count words");
    assert!(cl.1 > words.1 && o.1 > words.1);
}

#[test]
fn target_tokens_fit_or_say_why_not() {
    let text = prose();
    let v = json(kompress(&["--json", "--target-tokens", "100"], text.as_bytes()));
    assert!(
        v["compressed_tokens"].as_u64().unwrap() <= 100 && v["over_budget"] == false,
        "{}",
        v["compressed"]
    );
    let out = kompress(&["--target-tokens", "5"], text.as_bytes());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("more than --target-tokens 5"), "{err}");
    let fits = json(kompress(&["--json", "--target-tokens", "100000"], text.as_bytes()));
    assert_eq!(
        (fits["passthrough_reason"].as_str(), fits["compressed"].as_str()),
        (Some("fits_budget"), Some(text.as_str()))
    );
}

#[test]
fn json_input_passes_through_with_a_verbose_note() {
    let doc = format!("{{\"notes\": {}}}\n", serde_json::to_string(&prose()).unwrap());
    let out = kompress(&["-v"], doc.as_bytes());
    assert_eq!(String::from_utf8_lossy(&out.stdout), doc);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("passed through (the whole input is JSON; --no-protect-json compresses it)"));
    assert_ne!(ok(kompress(&["--no-protect-json"], doc.as_bytes())), doc);
}

#[test]
fn explain_json_lines_count_from_one() {
    let text = format!("first line here\n{}", prose());
    let v = json(kompress(&["--json", "--explain"], text.as_bytes()));
    let words = v["words"].as_array().unwrap();
    assert_eq!((words[0]["word"].as_str(), words[0]["line"].as_u64()), (Some("first"), Some(1)));
    assert_eq!(words.last().unwrap()["line"].as_u64(), Some(text.lines().count() as u64));
}

/// Runs the command on `input` and closes its output after reading `keep` bytes; returns its status,
/// its standard error and how long it ran.
fn closed_after(
    args: &[&str],
    input: &str,
    keep: usize,
) -> (std::process::ExitStatus, String, std::time::Duration) {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let model = model_dir("v5");
    let mut full = vec!["compress", "--device", "cpu", "--model", model.to_str().unwrap()];
    full.extend_from_slice(args);
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kompress"))
        .env("KOMPRESS_DTYPE", "f32")
        .args(&full)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut head = vec![0; keep];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // The read end is dropped here: the next write fails.
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    writer.join().unwrap();
    (status, err, started.elapsed())
}

#[test]
fn a_closed_output_ends_the_command_quietly_and_stops_the_model() {
    // 540,000 words: about 40 s of model work with this fixture model on 2 cores; the first batch
    // takes a fraction of a second.
    let big = format!("{}\n", prose()).repeat(4000);
    let (status, err, took) = closed_after(&["--batch-size", "1"], &big, 10);
    assert!(status.success() && err.is_empty(), "{status:?} {err}");
    assert!(took.as_secs() < 15, "the model work went on after the output closed: {took:?}");
    for mode in [&["--json"][..], &["--jsonl"][..]] {
        let input = if mode == ["--jsonl"] {
            format!("{}\n", serde_json::to_string(&prose()).unwrap()).repeat(3)
        } else {
            prose()
        };
        let (status, err, _) = closed_after(mode, &input, 5);
        assert!(status.success() && err.is_empty(), "{mode:?}: {status:?} {err}");
    }
}

/// The stderr lines of a run, after checking it succeeded with `expected` as its output.
fn stderr_of(out: Output, expected: &str) -> Vec<String> {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(ok(out), expected, "{err}");
    err.lines().map(String::from).collect()
}

#[test]
fn a_text_that_passes_through_says_so_in_one_line_unless_quiet() {
    let short = "Please do not delete the backup.\n";
    let doc = format!("{{\"notes\": {}}}\n", serde_json::to_string(&prose()).unwrap());
    let text = prose();
    let cases: [(&[&str], &str, &str); 3] = [
        (&[], short, "kompress: -: passed through unchanged: 6 words, fewer than --min-words 64"),
        (&[], &doc, "kompress: -: passed through unchanged: the whole input is JSON"),
        (&["--target-tokens", "100000"], &text, "tokens already fit --target-tokens 100000"),
    ];
    for (args, input, line) in cases {
        let err = stderr_of(kompress(args, input.as_bytes()), input);
        assert!(err.len() == 1 && err[0].contains(line), "{args:?}: {err:?}");
        let quiet = [args, &["-q"]].concat();
        assert_eq!(stderr_of(kompress(&quiet, input.as_bytes()), input), Vec::<String>::new());
    }
    // A compressed text says nothing; -q and -v do not go together.
    assert!(stderr_of(kompress(&[], text.as_bytes()), &ok(kompress(&[], text.as_bytes()))).is_empty());
    failure(kompress(&["-q", "-v"], b"x"), "cannot be used with");
    // A corpus says it once, counting by reason.
    let corpus = format!(
        "{}\n{}\n{}\n",
        serde_json::to_string(short).unwrap(),
        serde_json::to_string(&text).unwrap(),
        serde_json::to_string(short).unwrap()
    );
    let out = kompress(&["--jsonl"], corpus.as_bytes());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err,
        "kompress: 2 of 3 texts passed through unchanged (2 under --min-words; -q: say nothing)\n"
    );
}

#[test]
fn zero_counts_and_budgets_are_refused_in_plain_words() {
    for flag in ["--chunk-words", "--batch-size", "--target-tokens"] {
        let out = kompress(&[flag, "0"], b"x");
        failure(out, "must be at least 1");
    }
    let out = kompress(&["--chunk-words", "0"], b"x");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("non-zero type"));
}

#[test]
fn plain_explain_keeps_the_layout_and_headers_are_separated() {
    let text = format!("{}\n\n    indented   and   aligned\n\tend\n", prose());
    let shown = ok(kompress(&["--explain", "--threshold", "0.5"], text.as_bytes()));
    let unmarked = shown.replace("[-", "").replace("-]", "");
    assert_eq!(unmarked, text, "{shown}");
    let dir = tempfile_dir();
    let (a, b) = (dir.join("a.txt"), dir.join("b.txt"));
    std::fs::write(&a, "one two\n").unwrap();
    std::fs::write(&b, "three\n").unwrap();
    let out = ok(kompress(&[a.to_str().unwrap(), b.to_str().unwrap(), "-q"], b""));
    assert_eq!(out, format!("==> {} <==\none two\n\n==> {} <==\nthree\n", a.display(), b.display()));
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kompress-headers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn verbose_prints_the_device_line_once() {
    let out = kompress(&["-v", "-", "-"], b"a b c\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().filter(|l| l.starts_with("kompress: device ")).count(), 1, "{err}");
}

/// Markdown markup and unfenced code with prose around it, over `--min-words`.
fn structured_doc() -> String {
    let prose = "The service reads the settings file at start and then it waits for requests from \
                 the clients that are connected to it over the network for a long while.";
    [
        "# Install guide",
        prose,
        "- first item of the list explains the setup in some detail",
        "* second item of the list",
        "  + a nested item of the list",
        "1. numbered step to follow very carefully",
        "> a quoted remark from the maintainers of the project",
        "See [the manual](https://example.com/manual) and ![the logo](img/logo.png) for more.",
        prose,
        "    let total = items.iter().map(|x| x.len()).sum::<usize>();",
        "    if total > limit { return Err(error); }",
        "@@ -1,2 +1,2 @@",
        "-old_value = compute(a, b)",
        "+new_value = compute(a, c)",
        "2024-05-01T12:00:03Z INFO the server started and is listening for requests",
        prose,
    ]
    .join("\n")
}

#[test]
fn markdown_markers_and_code_lines_survive_by_default() {
    let doc = structured_doc();
    let strict = ["--mode", "threshold", "--threshold", "1"];
    let out = ok(kompress(&strict, doc.as_bytes()));
    let lines: Vec<&str> = out.lines().collect();
    // The model keeps no word at threshold 1: a marker line is its marker (and indentation) alone.
    for marker in ["#", "-", "*", "  +", "1.", ">"] {
        assert!(lines.contains(&marker), "{marker:?} lost:\n{out}");
    }
    assert!(out.contains("[the manual](https://example.com/manual)"), "{out}");
    assert!(out.contains("![the logo](img/logo.png)"), "{out}");
    for code in doc.lines().skip(9).take(6) {
        assert!(lines.contains(&code), "{code:?} not kept byte for byte:\n{out}");
    }
    let v = json(kompress(&[&strict[..], &["--json", "--explain"]].concat(), doc.as_bytes()));
    let reason = |word: &str| {
        let words = v["words"].as_array().unwrap();
        let d = words.iter().find(|d| d["word"] == word).unwrap();
        d["reason"].as_str().unwrap().to_string()
    };
    assert_eq!(
        (reason("#"), reason("1."), reason(">"), reason("[the")),
        ("markdown".into(), "markdown".into(), "markdown".into(), "markdown".into())
    );
    assert_eq!(
        (reason("let"), reason("@@"), reason("INFO")),
        ("code_line".into(), "code_line".into(), "code_line".into())
    );

    // Off by switch, and under --compat headroom (Headroom has neither rule).
    for off in [&["--no-protect-markdown", "--no-protect-code-lines"][..], &["--compat", "headroom"]] {
        let out = ok(kompress(&[&strict[..], off].concat(), doc.as_bytes()));
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            !lines.iter().any(|l| ["#", "-", "1."].contains(&l.split(' ').next().unwrap())),
            "{off:?}:\n{out}"
        );
        assert!(!lines.contains(&doc.lines().nth(9).unwrap()), "{off:?}:\n{out}");
    }
    let v = json(kompress(&["--json", "--explain", "--no-protect"], doc.as_bytes()));
    let reasons: Vec<&str> =
        v["words"].as_array().unwrap().iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert!(!reasons.iter().any(|r| ["markdown", "code_line"].contains(r)), "{reasons:?}");
    let only_code = ok(kompress(&[&strict[..], &["--no-protect-markdown"]].concat(), doc.as_bytes()));
    assert!(only_code.lines().any(|l| l == doc.lines().nth(10).unwrap()));
    assert!(!only_code.lines().any(|l| l == "#"), "{only_code}");
}
