//! `kompress score`: every token's scores, the raw view used to check parity with PyTorch.

use std::path::PathBuf;

use clap::Args;
use kompress::TokenScores;

use super::args::{print, read_text, ModelArgs};

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The text to score (a file, or `-`/nothing for standard input).
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print one JSON object {input_ids, word_ids, logits, token_prob, span_score, score}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let text = read_text(args.input.as_ref())?;
    let words = kompress::tokenize::words(&text);
    let model = args.model.load()?;
    // Empty input is not a sequence ([CLS] [SEP] alone would be scored): an empty result, whose
    // span scores are still an empty list for a model with a span head.
    let scores = match words.is_empty() {
        true => TokenScores { span_score: model.has_span_head().then(Vec::new), ..Default::default() },
        false => model.score_words(&words)?,
    };
    match args.json {
        true => print(&format!("{}\n", serde_json::to_string(&scores)?)),
        false => print(&table(&scores, &words)),
    }
}

fn table(s: &TokenScores, words: &[&str]) -> String {
    // `word_id` numbers the word a token belongs to; `word` is that word's text.
    let mut out = format!(
        "{:>5} {:>7} {:>7}  {:>7} {:>7} {:>7}  word\n",
        "token", "id", "word_id", "prob", "span", "score"
    );
    for i in 0..s.input_ids.len() {
        let word = s.word_ids[i].map_or("", |w| words[w as usize]);
        let word_id = s.word_ids[i].map_or("-".to_string(), |w| w.to_string());
        let span = s.span_score.as_ref().map_or("-".to_string(), |v| format!("{:.4}", v[i]));
        out.push_str(&format!(
            "{i:>5} {:>7} {word_id:>7}  {:>7.4} {span:>7} {:>7.4}  {word}\n",
            s.input_ids[i], s.token_prob[i], s.score[i]
        ));
    }
    out
}
