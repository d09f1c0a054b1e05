//! `kompress compress` end to end on a fixture model: output forms, several files, corpus mode,
//! explain, and bad input (empty, non-UTF-8, giant words, mixed CRLF) handled without a panic.

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
    for key in ["compressed", "original_words", "kept_words", "compression_ratio", "tokens_saved", "chunks"] {
        assert!(!v[key].is_null(), "{key}");
    }
    assert_eq!(
        (v["mode"].as_str(), v["device"].as_str(), v["dtype"].as_str()),
        (Some("threshold:0.5"), Some("cpu"), Some("f32"))
    );
    let (orig, kept) = (v["original_words"].as_u64().unwrap(), v["kept_words"].as_u64().unwrap());
    assert!(kept < orig && orig >= 64);
    assert_eq!(v["tokens_saved"].as_u64().unwrap(), orig - kept);
    assert_eq!(v["compressed"].as_str().unwrap().split_whitespace().count() as u64, kept);
}

#[test]
fn plain_output_is_the_compressed_text() {
    let text = prose();
    let plain = ok(kompress(&[], text.as_bytes()));
    let v = json(kompress(&["--json"], text.as_bytes()));
    assert_eq!(plain, format!("{}\n", v["compressed"].as_str().unwrap()));
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
        let line = w["line"].as_u64().unwrap() as usize;
        match last_line {
            Some(l) if l == line => expected.push(' '),
            Some(l) => expected.push_str(endings[l]),
            None => {}
        }
        expected.push_str(w["word"].as_str().unwrap());
        last_line = Some(line);
    }
    assert!(text.contains("\r\n") && expected.contains("\r\n"));
    assert_eq!(v["compressed"].as_str().unwrap(), expected);
}

#[test]
fn bad_options_are_clear_errors() {
    let text = prose();
    failure(kompress(&["--mode", "ratio", "--threshold", "0.3"], text.as_bytes()), "--threshold");
    failure(kompress(&["--mode", "ratio"], text.as_bytes()), "--ratio");
    failure(kompress(&["--ratio", "1.5"], text.as_bytes()), "ratio 1.5");
    failure(kompress(&["--chunk-tokens", "100000"], text.as_bytes()), "maximum of 512");
    failure(kompress(&["--chunk-tokens", "2"], text.as_bytes()), "chunk_tokens 2");
    failure(kompress(&["missing-file.txt"], b""), "missing-file.txt");
}
