//! Keep agreement of kompress's forms (bf16, int8-wo, int8) with its f32 under ctxprune's rule: each text's
//! atoms scored by [`Ctxprune::atom_scores`] in every form, kept by [`keep_mask`] at `rate` 0.5 (chars,
//! nothing forced: `compress`'s defaults), and the share of atoms whose decision equals f32's. Used by
//! `scripts/ctxprune_bench.py` (issue 29's measure).
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run --release --example ctxprune_agreement -- MODEL_DIR [--json OUT] TEXT...
//! ```
//!
//! `--json OUT` writes `{text: {form: {keep: [bool...], scores: [f64...]}}}`. The timings printed are the
//! library's (this example has none of the CLI's allocator settings), for orientation only.

use std::collections::BTreeMap;
use std::time::Instant;

use kompress::ctxprune::{keep_mask, Ctxprune, Options};
use kompress::{DTypeChoice, LoadOptions};

const FORMS: [&str; 4] = ["f32", "bf16", "int8-wo", "int8"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: ctxprune_agreement MODEL_DIR [--json OUT] TEXT...")?;
    let (mut json, mut texts) = (None, Vec::new());
    while let Some(a) = args.next() {
        if a == "--json" {
            json = Some(args.next().ok_or("--json needs a path")?);
        } else {
            texts.push(a);
        }
    }
    let contents: Vec<String> = texts.iter().map(std::fs::read_to_string).collect::<Result<_, _>>()?;
    let opts = Options::default();
    // text -> form -> (keep, scores)
    let mut all: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
    let mut reference: Vec<(Vec<bool>, Vec<f64>)> = Vec::new();
    for form in FORMS {
        let load = LoadOptions { dtype: form.parse::<DTypeChoice>()?, ..LoadOptions::default() };
        let start = Instant::now();
        let model = Ctxprune::from_dir(&dir, &load)?;
        let loaded = start.elapsed().as_secs_f64();
        for (i, (path, text)) in texts.iter().zip(&contents).enumerate() {
            let start = Instant::now();
            let scored = model.atom_scores(text)?;
            let keep = keep_mask(&scored, &opts);
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(
                kompress::ctxprune::atoms::detok(&scored.atoms, &keep),
                model.compress(text, &opts)?.text,
                "keep_mask differs from compress"
            );
            let line = match reference.get(i) {
                None => {
                    reference.push((keep.clone(), scored.scores.clone()));
                    String::new()
                }
                Some((k0, s0)) => {
                    let same = k0.iter().zip(&keep).filter(|(a, b)| a == b).count();
                    let dev: f64 = s0.iter().zip(&scored.scores).map(|(a, b)| (a - b).abs()).sum::<f64>()
                        / s0.len() as f64;
                    format!(
                        "  agreement with f32 {:.2}% ({same}/{}), mean |score - f32's| {dev:.2e}",
                        100.0 * same as f64 / k0.len() as f64,
                        k0.len()
                    )
                }
            };
            println!(
                "{form:8} {path}: load {loaded:.2} s, scores + keep {secs:.2} s, {} atoms{line}",
                keep.len()
            );
            all.entry(path.clone())
                .or_default()
                .insert(form.to_string(), serde_json::json!({ "keep": keep, "scores": scored.scores }));
        }
    }
    if let Some(out) = json {
        std::fs::write(out, serde_json::to_string(&all)?)?;
    }
    Ok(())
}
