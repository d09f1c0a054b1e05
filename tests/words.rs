//! `Methods::words`: the per-word view of every method agrees with the method's own result (the
//! dropped words it counts, the text it outputs) and changes no decision.

mod common;

use std::sync::Arc;

use common::*;
use kompress::ctxprune::atoms::{detok, Atom};
use kompress::method::{Call, Methods, Output, WordView};
use kompress::pipeline::{Compat, Mode};
use kompress::{ctxprune, llmlingua2, CompressOptions, Kompress, LoadOptions};

/// A prose text of one line, long enough (over `min_words`) for the pipeline to score it.
fn prose() -> String {
    let sentence = "The committee met on Tuesday to review the budget, and after a long discussion \
                    about the new roads the members agreed that the town would fund repairs next spring";
    [sentence; 4].join(". ")
}

fn methods(model: &str) -> Methods {
    let opts = LoadOptions { device: test_device(), ..LoadOptions::default() }.for_parity();
    Methods::new(Arc::new(Kompress::from_dir(model_dir(model), &opts).unwrap()))
}

fn dropped(views: &[WordView]) -> usize {
    views.iter().filter(|w| !w.kept).count()
}

/// Some words dropped and some kept, so that the comparisons below can fail.
fn mixed(views: &[WordView]) {
    assert!(dropped(views) > 0, "no word dropped: {views:?}");
    assert!(views.iter().any(|w| w.kept), "no word kept");
}

#[test]
fn pipeline_views_count_the_dropped_words_and_rebuild_the_output() {
    let m = methods("v5");
    let text = prose();
    for compat in [Compat::Off, Compat::Headroom] {
        let options = CompressOptions { mode: Mode::Ratio(0.5), compat, ..Default::default() };
        let (out, views) = m.words(Call::Pipeline { texts: &[&text], options: &options }).unwrap();
        let Output::Pipeline(results) = out else { panic!("not the pipeline's output") };
        let r = &results[0];
        mixed(&views);
        assert_eq!(views.len(), r.original_words);
        assert_eq!(dropped(&views), r.original_words - r.kept_words, "{compat:?}");
        let kept: Vec<&str> = views.iter().filter(|w| w.kept).map(|w| w.text.as_str()).collect();
        assert_eq!(kept.join(" "), r.compressed, "{compat:?}");
        assert!(views.iter().any(|w| w.score.is_some()), "the model's scores are shown");
        // The view changes no decision: the same call without it gives the same output.
        let plain = m.compress(Call::Pipeline { texts: &[&text], options: &options }).unwrap();
        assert_eq!(plain.texts(), [r.compressed.as_str()]);
        // The whitespace before each word rebuilds the input.
        let rebuilt: String = views.iter().map(|w| format!("{}{}", w.ws, w.text)).collect();
        assert_eq!(rebuilt, text);
    }
}

#[test]
fn pipeline_views_name_the_protections() {
    let m = methods("v5");
    let text = format!("{} Read /etc/hosts at 10.5 seconds.\n\n| a | b |\n| - | - |\n| 1 | 2 |\n", prose());
    let options = CompressOptions { mode: Mode::Ratio(0.3), ..Default::default() };
    let (_, views) = m.words(Call::Pipeline { texts: &[&text], options: &options }).unwrap();
    let reason = |w: &str| views.iter().find(|v| v.text == w).and_then(|v| v.reason);
    assert_eq!(reason("/etc/hosts"), Some("path"));
    assert_eq!(reason("10.5"), Some("number"));
    assert_eq!(reason("|"), Some("table"));
    assert!(views.iter().filter(|v| v.reason.is_some()).all(|v| v.kept), "protected words are kept");
}

#[test]
fn llmlingua2_views_are_its_word_labels() {
    let m = methods("llmlingua-2-bert-base-multilingual-cased-tiny");
    let text = prose();
    let options = llmlingua2::Options::default();
    let (out, views) = m.words(Call::LlmLingua2 { contexts: &[&text], options: &options }).unwrap();
    let Output::LlmLingua2(r) = out else { panic!("not LLMLingua-2's output") };
    mixed(&views);
    // llmlingua's own labels, as `return_word_label` prints them.
    let labels = r.fn_labeled_original_prompt.as_deref().expect("labels asked for");
    let pairs: Vec<&str> = labels.split(&options.word_sep).collect();
    assert_eq!(views.len(), pairs.len());
    assert_eq!(dropped(&views), pairs.iter().filter(|p| p.ends_with(" 0")).count());
    for (v, p) in views.iter().zip(&pairs) {
        assert_eq!(format!("{} {}", v.text, u8::from(v.kept)), *p);
    }
    assert!(views.iter().all(|w| w.score.is_some_and(|s| (0.0..=1.0).contains(&s))));
    // The view changes no decision.
    let plain = m.compress(Call::LlmLingua2 { contexts: &[&text], options: &options }).unwrap();
    assert_eq!(plain.texts(), [r.compressed_prompt.as_str()]);
    // Its words are found in the text: the whitespace rebuilds it.
    let rebuilt: String = views.iter().map(|w| format!("{}{}", w.ws, w.text)).collect();
    assert_eq!(rebuilt, text);
}

#[test]
fn ctxprune_views_are_its_atoms_and_rebuild_its_output() {
    let m = methods("ctxprune-tiny");
    let text = format!("{}\nSee /etc/hosts and {{\"port\": 8080}}.  ", prose());
    for options in [
        ctxprune::Options::default(),
        ctxprune::Options { force_protected: true, keep_structure: true, ..Default::default() },
        ctxprune::Options {
            rate: Some(0.4),
            target_tokens: None,
            measure: Some(Default::default()),
            ..Default::default()
        },
    ] {
        let (out, views) = m.words(Call::Ctxprune { text: &text, options: &options }).unwrap();
        let Output::Ctxprune(r) = out else { panic!("not ctxprune's output") };
        mixed(&views);
        let atoms: Vec<Atom> = views.iter().map(|w| Atom { ws: &w.ws, text: &w.text }).collect();
        let keep: Vec<bool> = views.iter().map(|w| w.kept).collect();
        assert_eq!(detok(&atoms, &keep), r.text, "{options:?}");
        let plain = m.compress(Call::Ctxprune { text: &text, options: &options }).unwrap();
        assert_eq!(plain.texts(), [r.text.as_str()], "{options:?}");
        // Dropped atoms that are words (not punctuation) are dropped words of the text.
        let dropped_words =
            views.iter().filter(|w| !w.kept && w.text.chars().any(char::is_alphanumeric)).count();
        assert!(dropped_words > 0);
        let rebuilt: String = views.iter().map(|w| format!("{}{}", w.ws, w.text)).collect();
        assert_eq!(rebuilt, text.trim_end());
        if options.force_protected {
            let reason = |w: &str| views.iter().find(|v| v.text == w).and_then(|v| v.reason);
            assert_eq!(reason("/etc/hosts"), Some("path"));
            assert_eq!(reason("{"), Some("structure"));
            assert!(views.iter().filter(|v| v.reason.is_some()).all(|v| v.kept));
        } else {
            assert!(views.iter().all(|v| v.reason.is_none()));
        }
    }
}
