//! Parity with the PyTorch reference `supercompress==0.5.0`, on outputs recorded by
//! `scripts/supercompress_fixtures.py` with a seeded, PyTorch-initialised network (never the
//! published checkpoint).

use std::path::PathBuf;

use kompress::evict::{
    compress_context, generate_long_context, oracle_labels, run_benchmark, split_lines, EvictionNetwork,
    Metrics, PolicyKind, PyRandom, Records,
};
use serde_json::Value;

/// Reads one float field of a token record.
type RecordField = fn(&kompress::evict::TokenRecord) -> f64;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/evict").join(name)
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn net() -> EvictionNetwork {
    EvictionNetwork::load(&fixture_path("net.safetensors")).expect("fixture network loads")
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Expands `[start, end)` runs back into positions.
fn unruns(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r[0].as_u64().unwrap() as usize..r[1].as_u64().unwrap() as usize)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn logits_match_pytorch_from_pt_and_safetensors() {
    let nets = fixture("network.json");
    let records = fixture("records.json");
    let from_pt = EvictionNetwork::load(&fixture_path("net.pt")).unwrap();
    let from_st = net();
    let random = f32s(&nets["random_features"]);
    let real = f32s(&records[1]["features"]);
    for (name, n) in [("pt", &from_pt), ("safetensors", &from_st)] {
        let d_random = max_abs_diff(&n.logits(&random).unwrap(), &f32s(&nets["random_logits"]));
        let d_real = max_abs_diff(&n.logits(&real).unwrap(), &f32s(&nets["real_logits"]));
        println!("{name}: max |logit - torch| random {d_random:e}, real {d_real:e}");
        assert!(d_random < 1e-5 && d_real < 1e-5, "{name}: {d_random} {d_real}");
    }
    // One stacked pass: the matmul blocks differently, so equal up to float rounding only.
    let batched = from_st.logits_batch(&[&random, &real]).unwrap();
    assert!(max_abs_diff(&batched[0], &from_st.logits(&random).unwrap()) < 1e-6);
    assert!(max_abs_diff(&batched[1], &from_st.logits(&real).unwrap()) < 1e-6);
}

#[test]
fn records_and_features_match_the_reference() {
    for dump in fixture("records.json").as_array().unwrap() {
        let text = dump["text"].as_str().unwrap();
        let question = dump["question"].as_str().unwrap();
        let lines = split_lines(text);
        let r = Records::for_inference(&lines, question);
        let tokens: Vec<&str> =
            dump["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(r.tokens, tokens);
        let expected_lines: Vec<usize> =
            dump["lines"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        assert_eq!(r.records.iter().map(|x| x.line).collect::<Vec<_>>(), expected_lines);
        let semantic: Vec<u64> =
            dump["semantic"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
        assert_eq!(r.records.iter().map(|x| x.semantic as u64).collect::<Vec<_>>(), semantic);
        let fields: [(&str, RecordField); 5] = [
            ("attention_mass", |x| x.attention_mass),
            ("layer_attention_mean", |x| x.layer_attention_mean),
            ("entity_match", |x| x.entity_match),
            ("h2o", |x| x.h2o_score),
            ("snapkv", |x| x.snapkv_score),
        ];
        for (key, get) in fields {
            let ours: Vec<f64> = r.records.iter().map(get).collect();
            let want = f64s(&dump[key]);
            assert_eq!(ours.len(), want.len(), "{key}: record count");
            for (i, (a, b)) in ours.iter().zip(want).enumerate() {
                assert!((a - b).abs() <= 1e-12, "{key}[{i}] ({}): {a} vs {b}", r.tokens[i]);
            }
        }
        assert_eq!(r.features(), f32s(&dump["features"]), "feature matrix");
        let labels = oracle_labels(&lines, question);
        let important: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
        assert_eq!(important, unruns(&dump["oracle"]), "oracle labels");
    }
}

#[test]
fn every_policy_keeps_the_reference_positions_and_lines() {
    let net = net();
    let cases = fixture("cases.json");
    let (mut total, mut ties) = (0, Vec::new());
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let text = case["text"].as_str().unwrap();
        let question = case["question"].as_str().unwrap();
        let budget = case["budget"].as_f64().unwrap();
        let lines = split_lines(text);
        for (policy_name, expected) in case["policies"].as_object().unwrap() {
            let kind: PolicyKind = policy_name.parse().unwrap();
            let policy = kind.build(question, &net, 0);
            let r = compress_context(text, question, budget, policy.as_ref()).unwrap();
            let at = format!("{name} / {policy_name}");
            assert_eq!(r.kept_positions, unruns(&expected["kept_positions"]), "{at}: kept positions");
            total += 1;
            if expected["ties_at_cut"].as_bool() == Some(true) {
                ties.push(at.clone());
            }
            if kind == PolicyKind::Oracle {
                continue; // recorded as a selection on labelled records, see the fixture script
            }
            assert_eq!(r.kept_lines, unruns(&expected["kept_lines"]), "{at}: kept lines");
            assert_eq!(r.original_tokens as u64, expected["original_tokens"].as_u64().unwrap(), "{at}");
            assert_eq!(r.kept_tokens as u64, expected["kept_tokens"].as_u64().unwrap(), "{at}");
            assert!((r.kv_savings_pct - expected["kv_savings_pct"].as_f64().unwrap()).abs() < 1e-9, "{at}");
            if let Some(t) = expected["compressed_text"].as_str() {
                assert_eq!(r.compressed_text, t, "{at}: text");
            }
            let m = Metrics::new(&lines, &r, question);
            assert!((m.entity_recall - expected["entity_recall"].as_f64().unwrap()).abs() < 1e-12, "{at}");
            assert!((m.oracle_recall - expected["oracle_recall"].as_f64().unwrap()).abs() < 1e-12, "{at}");
            // The reference rounds answer quality to 4 decimals.
            assert!((m.answer_quality - expected["answer_quality"].as_f64().unwrap()).abs() <= 5e-5, "{at}");
        }
    }
    println!("{total} context x policy pairs match exactly; stable-order ties at the cut: {ties:?}");
    // Every pair asserted above; this guards against a fixture that lost cases.
    assert_eq!(total, 352, "context x policy pairs in the fixture");
}

#[test]
fn simulator_reproduces_the_reference_contexts() {
    let sim = fixture("simulator.json");
    for c in sim["contexts"].as_array().unwrap() {
        let seed = c["seed"].as_u64().unwrap();
        let (lines, q) = generate_long_context(&mut PyRandom::new(seed), 600);
        assert_eq!(q, c["question"].as_str().unwrap(), "seed {seed}");
        assert_eq!(lines.len() as u64, c["n_lines"].as_u64().unwrap());
        if seed == 0 {
            assert_eq!(lines.join("\n"), sim["seed0_text"].as_str().unwrap());
        }
        let mut rng = PyRandom::new(seed);
        let target = 600 + rng.randint(0, 400);
        assert_eq!(target as u64, c["train_target"].as_u64().unwrap());
        let (train_lines, train_q) = generate_long_context(&mut rng, target);
        assert_eq!(train_q, c["train_question"].as_str().unwrap());
        assert_eq!(train_lines.len() as u64, c["train_n_lines"].as_u64().unwrap());
    }
}

#[test]
fn benchmark_matches_the_reference_runner() {
    let sim = fixture("simulator.json");
    let kinds = [
        PolicyKind::Fifo,
        PolicyKind::Truncation,
        PolicyKind::Summarization,
        PolicyKind::H2o,
        PolicyKind::Learned,
    ];
    let names = ["FIFO", "Truncation", "Summarization", "H2O", "SuperCompress"];
    let rows = run_benchmark(8, 0.35, &kinds, &net()).unwrap();
    for (row, name) in rows.iter().zip(names) {
        let reference = &sim["benchmark"][name];
        // The reference rounds every run to 4 decimals before averaging.
        for (ours, key) in [
            (row.oracle_recall, "avg_oracle_recall"),
            (row.entity_recall, "avg_entity_recall"),
            (row.answer_quality, "avg_answer_quality"),
        ] {
            let theirs = reference[key].as_f64().unwrap();
            assert!((ours - theirs).abs() <= 1.5e-4, "{name} {key}: {ours} vs {theirs}");
        }
        let theirs = reference["avg_kv_savings_pct"].as_f64().unwrap();
        assert!(
            (row.kv_savings_pct - theirs).abs() <= 0.01,
            "{name} kv savings: {} vs {theirs}",
            row.kv_savings_pct
        );
    }
}
