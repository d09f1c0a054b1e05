//! Budgets that never block and budgets that say when they cannot be met: `time_budget` (library and
//! `kompress compress --time-budget-ms`), and `over_budget` with `min_ratio` / `min_target_tokens` when
//! the words kept whatever the model says exceed `--ratio` or `--target-tokens`.
//!
//! The time-budget tests do not race the clock: a scorer double that sleeps in `encode` (so the budget
//! is surely spent before the first forward pass) or in `score` (so it is surely spent after the first)
//! makes the documented rule observable: the clock is read before every forward pass, the first
//! included, and a pass already running finishes.

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use kompress::pipeline::words::words;
use kompress::pipeline::{
    compress, compress_batch, ChunkScorer, CompressOptions, Mode, Reason, TokenCounter, Unscored,
};
use kompress::{CompressResult, DTypeChoice, Kompress, LoadOptions, Result, TokenScores, WordEncoding};
use serde_json::Value;

fn model() -> Kompress {
    let opts = LoadOptions { device: test_device(), dtype: DTypeChoice::F32, ..Default::default() };
    Kompress::from_dir(model_dir("v5"), &opts).unwrap()
}

/// The fixture model, sleeping before every encoding or every forward pass.
struct Sleepy<'m> {
    model: &'m Kompress,
    encode: Duration,
    score: Duration,
}

impl ChunkScorer for Sleepy<'_> {
    fn encode(&self, words: &[&str]) -> Result<WordEncoding> {
        std::thread::sleep(self.encode);
        ChunkScorer::encode(self.model, words)
    }

    fn score(&self, chunks: &[WordEncoding]) -> Result<Vec<TokenScores>> {
        std::thread::sleep(self.score);
        ChunkScorer::score(self.model, chunks)
    }

    fn max_tokens(&self) -> usize {
        ChunkScorer::max_tokens(self.model)
    }

    fn max_token_bytes(&self) -> Option<usize> {
        ChunkScorer::max_token_bytes(self.model)
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("texts").join(name)).unwrap()
}

/// Prose of many small chunks (GPL-3's excerpt: 635 words, 80 chunks of 8 words).
fn prose() -> String {
    fixture("gpl3_excerpt.txt")
}

/// Many chunks, one per pass; word counts for tokens (no vocabulary to build inside the budget).
fn small_chunks() -> CompressOptions {
    CompressOptions {
        chunk_words: 8,
        batch_size: 1,
        count_tokens: TokenCounter::Words,
        explain: true,
        ..Default::default()
    }
}

/// The result's decisions agree with its output: the kept words, in order, are the output's words;
/// every word the time budget left unscored is kept; `scored_words` counts the words the model
/// scored.
fn check_cut(text: &str, r: &CompressResult) {
    let d = r.words.as_ref().unwrap();
    assert_eq!(d.len(), words(text).count());
    let kept: Vec<&str> = d.iter().filter(|d| d.kept).map(|d| d.word.as_str()).collect();
    let out: Vec<&str> = words(&r.compressed).map(|w| w.text).collect();
    assert_eq!(kept, out);
    let cut = d.iter().filter(|d| d.unscored == Some(Unscored::TimeBudget)).count();
    assert!(d
        .iter()
        .filter(|d| d.unscored == Some(Unscored::TimeBudget))
        .all(|d| d.kept && d.score.is_none()));
    let scored = d.iter().filter(|d| d.score.is_some()).count();
    assert_eq!(r.scored_words, scored);
    assert_eq!(r.unscored_reason, (cut > 0).then_some(Unscored::TimeBudget));
    assert_eq!(r.scored_words + cut, r.original_words, "prose: every word is scored or cut");
}

#[test]
fn a_budget_spent_before_the_first_pass_scores_nothing() {
    let model = model();
    let text = prose();
    // Planning the first chunk alone takes 5 ms, past the 1 ms budget.
    let slow = Sleepy { model: &model, encode: Duration::from_millis(5), score: Duration::ZERO };
    let opts = CompressOptions { time_budget: Some(Duration::from_millis(1)), ..small_chunks() };
    let r = compress(&slow, &text, &opts).unwrap();
    assert_eq!((r.chunks, r.scored_words), (0, 0));
    assert_eq!(r.unscored_reason, Some(Unscored::TimeBudget));
    assert_eq!((r.kept_words, r.passthrough, r.over_budget), (r.original_words, false, false));
    check_cut(&text, &r);
    // Every word is there, in order, on its own line.
    let d = r.words.as_ref().unwrap();
    assert!(d.iter().all(|d| d.reason == Reason::Unscored));
    let lines = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect()
    };
    assert_eq!(lines(&text), lines(&r.compressed));
}

#[test]
fn the_first_pass_runs_when_the_budget_is_not_spent_and_no_pass_starts_after() {
    let model = model();
    let text = prose();
    // The budget is not spent before the first pass (setup takes well under 200 ms), and is spent by
    // its end (it takes 300 ms): exactly one chunk is scored, the pass that was running finishing.
    let slow = Sleepy { model: &model, encode: Duration::ZERO, score: Duration::from_millis(300) };
    let opts = CompressOptions { time_budget: Some(Duration::from_millis(200)), ..small_chunks() };
    let r = compress(&slow, &text, &opts).unwrap();
    assert_eq!(r.chunks, 1);
    assert!(r.scored_words > 0 && r.scored_words <= 8, "{}", r.scored_words);
    assert!(r.scored_words < r.original_words);
    check_cut(&text, &r);
    // The scored chunk is the text's first words.
    let d = r.words.as_ref().unwrap();
    assert!(d[..r.scored_words].iter().all(|d| d.score.is_some()));
}

#[test]
fn a_budget_larger_than_the_work_changes_nothing() {
    let model = model();
    let text = prose();
    for mode in [Mode::Card, Mode::Ratio(0.4), Mode::TargetTokens(200)] {
        let opts = CompressOptions { mode, ..small_chunks() };
        let plain = compress(&model, &text, &opts).unwrap();
        let budget = CompressOptions { time_budget: Some(Duration::from_secs(3600)), ..opts.clone() };
        let budgeted = compress(&model, &text, &budget).unwrap();
        assert_eq!(plain, budgeted, "{mode}");
        assert_eq!((budgeted.unscored_reason, budgeted.scored_words), (None, budgeted.original_words));
    }
}

#[test]
fn one_budget_covers_a_batch_of_texts() {
    let model = model();
    let texts = [prose(), prose(), prose()];
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let slow = Sleepy { model: &model, encode: Duration::ZERO, score: Duration::from_millis(300) };
    let opts = CompressOptions { time_budget: Some(Duration::from_millis(200)), ..small_chunks() };
    let results = compress_batch(&slow, &refs, &opts).unwrap();
    assert_eq!(results.iter().map(|r| r.chunks).collect::<Vec<_>>(), [1, 0, 0]);
    for (text, r) in texts.iter().zip(&results) {
        check_cut(text, r);
    }
}

#[test]
fn bad_time_budgets_are_refused_by_the_library() {
    let model = model();
    for ms in [0, 86_400_001] {
        let opts = CompressOptions { time_budget: Some(Duration::from_millis(ms)), ..Default::default() };
        let e = compress(&model, &prose(), &opts).unwrap_err();
        assert!(matches!(e, kompress::Error::Invalid(_)), "{e:?}");
        assert!(e.to_string().starts_with("time_budget_ms: "), "{e}");
    }
    let micro = CompressOptions { time_budget: Some(Duration::from_micros(500)), ..Default::default() };
    assert!(compress(&model, &prose(), &micro).is_err());
}

#[test]
fn protections_over_the_ratio_say_so_with_the_smallest_ratio() {
    let model = model();
    let code = fixture("sample.py");
    let opts = CompressOptions { mode: Mode::Ratio(0.4), ..Default::default() };
    let r = compress(&model, &code, &opts).unwrap();
    let kept_share = r.kept_words as f64 / r.original_words as f64;
    assert!(r.over_budget && kept_share > 0.4, "{kept_share}");
    assert_eq!(r.min_ratio, Some(kept_share));
    assert_eq!(r.min_target_tokens, None);
    // At that ratio, the budget is met.
    let at_min = CompressOptions { mode: Mode::Ratio(r.min_ratio.unwrap()), ..Default::default() };
    assert!(!compress(&model, &code, &at_min).unwrap().over_budget);

    let tokens = CompressOptions { mode: Mode::TargetTokens(20), ..Default::default() };
    let t = compress(&model, &code, &tokens).unwrap();
    assert!(t.over_budget && t.compressed_tokens > 20);
    assert_eq!((t.min_target_tokens, t.min_ratio), (Some(t.compressed_tokens), None));
    let at_min = CompressOptions { mode: Mode::TargetTokens(t.compressed_tokens), ..Default::default() };
    assert!(!compress(&model, &code, &at_min).unwrap().over_budget);

    for mode in [Mode::Ratio(0.4), Mode::TargetTokens(300)] {
        let r = compress(&model, &prose(), &CompressOptions { mode, ..Default::default() }).unwrap();
        assert!(!r.over_budget && r.min_ratio.is_none() && r.min_target_tokens.is_none(), "{mode}");
    }
    // A JSON input passes through whole: over any ratio below 1.
    let json = format!("{{\"items\": [{}]}}", vec!["\"a b c\""; 40].join(", "));
    let j = compress(&model, &json, &opts).unwrap();
    assert!(j.passthrough && j.over_budget && j.min_ratio == Some(1.0), "{j:?}");
}

// The CLI.

fn kompress(args: &[&str], stdin: &[u8]) -> Output {
    let model = model_dir("v5");
    let mut full = vec!["compress", "--device", "cpu", "--model", model.to_str().unwrap()];
    full.extend_from_slice(args);
    run_kompress(&full, &[], stdin)
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_lines(out: &Output) -> Vec<Value> {
    stdout(out).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn path(name: &str) -> String {
    fixtures().join("texts").join(name).to_str().unwrap().to_string()
}

#[test]
fn cli_a_tiny_budget_scores_little_and_says_so_once() {
    let gpl = path("gpl3_excerpt.txt");
    let args = ["--json", "--explain", "--time-budget-ms", "1", "--chunk-words", "8", "--batch-size", "1"];
    let out = kompress(&[&args[..], &[gpl.as_str(), gpl.as_str()]].concat(), b"");
    let results = json_lines(&out);
    assert_eq!(results.len(), 2);
    let text = prose();
    for v in &results {
        let (scored, total) = (v["scored_words"].as_u64().unwrap(), v["original_words"].as_u64().unwrap());
        assert!(scored < total, "{scored} of {total}");
        assert_eq!(
            (v["unscored_reason"].as_str(), v["time_budget_ms"].as_u64()),
            (Some("time_budget"), Some(1))
        );
        // The words left unscored are all in the output, in order.
        let decisions = v["words"].as_array().unwrap();
        let kept: Vec<&str> =
            decisions.iter().filter(|d| d["kept"] == true).map(|d| d["word"].as_str().unwrap()).collect();
        let out: Vec<&str> = words(v["compressed"].as_str().unwrap()).map(|w| w.text).collect();
        assert_eq!(kept, out);
        let cut: Vec<&Value> = decisions.iter().filter(|d| d["unscored"] == "time_budget").collect();
        assert_eq!(cut.len() as u64, total - scored);
        assert!(cut.iter().all(|d| d["kept"] == true && d["reason"] == "unscored"));
        assert_eq!(decisions.len(), words(&text).count());
    }
    let err = stderr(&out);
    assert_eq!(err.lines().filter(|l| l.contains("--time-budget-ms 1 ran out")).count(), 1, "{err}");
    // -v says it per text; -q says nothing.
    let verbose = kompress(&["-v", "--time-budget-ms", "1", "--chunk-words", "8", &gpl], b"");
    assert!(stderr(&verbose).contains("words scored, the time budget ran out"), "{}", stderr(&verbose));
    let quiet = kompress(&["-q", "--time-budget-ms", "1", "--chunk-words", "8", &gpl], b"");
    assert!(quiet.status.success() && quiet.stderr.is_empty(), "{}", stderr(&quiet));
}

#[test]
fn cli_a_budget_larger_than_the_work_changes_nothing() {
    let gpl = path("gpl3_excerpt.txt");
    for extra in [&[][..], &["--ratio", "0.4"], &["--json"]] {
        let plain = kompress(&[extra, &["--chunk-words", "8", gpl.as_str()]].concat(), b"");
        let budget = kompress(
            &[extra, &["--chunk-words", "8", "--time-budget-ms", "3600000", gpl.as_str()]].concat(),
            b"",
        );
        if extra == ["--json"] {
            let (mut a, mut b) = (json_lines(&plain), json_lines(&budget));
            assert_eq!(b[0]["time_budget_ms"], 3_600_000);
            b[0].as_object_mut().unwrap().remove("time_budget_ms");
            assert!(a[0].get("unscored_reason").is_none());
            assert_eq!(a.remove(0), b.remove(0));
        } else {
            assert_eq!(stdout(&plain), stdout(&budget), "{extra:?}");
        }
        assert_eq!(stderr(&plain), stderr(&budget));
    }
}

#[test]
fn cli_bad_time_budgets_are_one_line_errors_naming_the_flag() {
    for bad in ["0", "-5", "abc", "1.5", "86400001"] {
        let out = kompress(&["--time-budget-ms", bad], b"some words");
        assert!(!out.status.success(), "{bad}");
        let err = stderr(&out);
        let first = err.lines().next().unwrap();
        assert!(first.contains("--time-budget-ms") && !err.contains("panicked"), "{bad}: {err}");
        assert!(err.lines().filter(|l| !l.trim().is_empty() && !l.contains("--help")).count() == 1, "{err}");
    }
}

#[test]
fn cli_over_budget_says_so_with_the_smallest_ratio_once_per_run() {
    let code = path("sample.py");
    let out = kompress(&["--json", "--ratio", "0.4", &code], b"");
    let v = &json_lines(&out)[0];
    let share = v["kept_words"].as_f64().unwrap() / v["original_words"].as_f64().unwrap();
    assert_eq!((v["over_budget"].as_bool(), v["min_ratio"].as_f64()), (Some(true), Some(share)));
    assert!(share > 0.4);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("more than --ratio 0.4") && err.contains(&format!("min_ratio {share:.3}")), "{err}");

    // Three files over it: still one line.
    let out = kompress(&["--ratio", "0.4", &code, &code, &code], b"");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("and 2 more of 3 texts"), "{err}");

    let out = kompress(&["--json", "--target-tokens", "20", &code], b"");
    let v = &json_lines(&out)[0];
    assert_eq!(v["over_budget"], true);
    assert_eq!(v["min_target_tokens"], v["compressed_tokens"]);
    assert!(v.get("min_ratio").is_none());
    assert!(stderr(&out).contains("more than --target-tokens 20"), "{}", stderr(&out));

    let gpl = path("gpl3_excerpt.txt");
    let out = kompress(&["--json", "--ratio", "0.4", &gpl], b"");
    let v = &json_lines(&out)[0];
    assert_eq!(v["over_budget"], false);
    assert!(v.get("min_ratio").is_none() && v.get("min_target_tokens").is_none());
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}
