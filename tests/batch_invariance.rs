//! A text's scores are the same bits whatever else shares its forward pass: alone, first or last in a
//! batch, padded to a longer neighbour or not, on every CPU kernel path (`KOMPRESS_CPU_KERNELS`) and in
//! every numeric form. The pipeline batches chunks (`--batch-size`) and the server batches requests,
//! so without this a word's score, and so its keep decision, would depend on what was sent with it.
//!
//! The kernel level is fixed once per process, so the test runs itself once per level, as a child
//! process with the variable set, and the child does the checking.

mod common;

use std::process::Command;

use candle_core::Device;
use common::*;
use kompress::weights::Weights;
use kompress::{Config, DTypeChoice, DeviceChoice, Kompress, LoadOptions, Scorer, TokenScores, WordEncoding};

/// Every level of this architecture that the variable names (a level this CPU lacks runs the best one
/// below it).
#[cfg(target_arch = "x86_64")]
const LEVELS: [&str; 5] = ["portable", "avx2", "avxvnni", "avx512", "amx"];
#[cfg(not(target_arch = "x86_64"))]
const LEVELS: [&str; 2] = ["portable", "neon"];

const DTYPES: [DTypeChoice; 5] =
    [DTypeChoice::F32, DTypeChoice::BF16, DTypeChoice::Int8Wo, DTypeChoice::Int8WoG128, DTypeChoice::Int8];

#[test]
fn scores_do_not_depend_on_the_batch_at_any_kernel_level() {
    for level in LEVELS {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_checks_batch_invariance",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("KOMPRESS_CPU_KERNELS", level)
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "KOMPRESS_CPU_KERNELS={level}:\n{stdout}\n{stderr}");
        // The child really ran the check (a filter that matched nothing would pass too).
        assert!(stdout.contains("1 passed"), "KOMPRESS_CPU_KERNELS={level}: {stdout}");
    }
}

/// The check, run by the test above under each level.
#[test]
#[ignore = "run by scores_do_not_depend_on_the_batch_at_any_kernel_level, once per kernel level"]
fn child_checks_batch_invariance() {
    let texts = [
        "Do not delete /etc/hosts unless the backup finished; version 2.4.1 fixed it.",
        "A much longer neighbour, so that the others are padded in the batch: the quick brown fox jumps \
         over the lazy dog, again and again, while the build at commit 9f3c2a1 keeps failing on step -6 \
         of 12, and nobody knows why the cache at ~/.cache/huggingface/hub is empty.",
        "short",
    ];
    let mut models: Vec<(String, Scorer, Vec<WordEncoding>)> = Vec::new();
    for dtype in DTYPES {
        for name in MODELS.iter().copied().chain([
            "llmlingua-2-bert-base-multilingual-cased-tiny",
            "llmlingua-2-xlm-roberta-large-tiny",
            "ctxprune-tiny",
        ]) {
            let opts = LoadOptions { device: DeviceChoice::Cpu, dtype, ..Default::default() };
            let model = Kompress::from_dir(model_dir(name), &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            let encodings = texts
                .iter()
                .map(|t| model.tokenizer().encode_words(&kompress::tokenize::words(t)).unwrap())
                .collect();
            models.push((format!("{name} {dtype:?}"), model.into_scorer(), encodings));
        }
        // Heads 64 wide, as in the published models: attention runs on the panel kernels.
        let cfg = Config::from_json(
            r#"{"hidden_size": 128, "num_attention_heads": 2, "intermediate_size": 96, "num_hidden_layers": 3,
                "vocab_size": 300, "local_attention": 16, "global_attn_every_n_layers": 2}"#,
        )
        .unwrap();
        let precision = dtype.precision(&Device::Cpu).unwrap();
        let scorer = Scorer::new(&cfg, &Weights::random(3, &Device::Cpu), precision).unwrap();
        let encodings = [19, 150, 3].map(|len| WordEncoding {
            input_ids: (0..len).map(|i| (i * 37 % 290 + 5) as u32).collect(),
            word_ids: vec![None; len],
        });
        models.push((format!("random 64-wide heads {dtype:?}"), scorer, encodings.to_vec()));
    }
    for (name, scorer, encodings) in &models {
        let alone: Vec<TokenScores> = encodings
            .iter()
            .map(|e| scorer.score_encodings(std::slice::from_ref(e)).unwrap().remove(0))
            .collect();
        let orders: [&[usize]; 3] = [&[0, 1, 2], &[2, 0], &[1, 2, 0, 1]];
        for order in orders {
            let batch: Vec<WordEncoding> = order.iter().map(|&i| encodings[i].clone()).collect();
            for (got, &i) in scorer.score_encodings(&batch).unwrap().iter().zip(order) {
                let want = &alone[i];
                assert!(
                    bits(&got.score) == bits(&want.score) && bits(&got.token_prob) == bits(&want.token_prob),
                    "{name}: text {i} in batch {order:?} scored otherwise than alone:\n{:?}\n{:?}",
                    got.score,
                    want.score
                );
            }
        }
    }
    println!("{} models checked", models.len());
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
