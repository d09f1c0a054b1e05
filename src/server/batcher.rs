//! The model worker: one thread owns the forward passes of every model the server serves, and gathers
//! the chunks of concurrent requests into shared batches, bounded in padded tokens and in how long a
//! chunk waits for company. A batch holds one model's chunks; the oldest job goes first whatever its
//! model, so models share the thread pool in the order their work arrived and none starves another.
//!
//! Requests run the ordinary pipeline ([`crate::pipeline::compress_batch`]) on their own threads
//! with a [`RemoteScorer`]: tokenizing there, in parallel, and handing each batch of chunks to the
//! worker. Cancelled requests' chunks are dropped before they reach the model. The worker sleeps in
//! a channel receive when idle (no polling), and ends when the last sender is gone.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::admission::Ticket;
use super::metrics::Metrics;
use crate::pipeline::ChunkScorer;
use crate::{Error, Kompress, Result, TokenScores, WordEncoding};

/// How the worker forms batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most padded tokens (chunks x longest chunk) in one forward pass; a single request's batch
    /// larger than this still runs, alone.
    pub tokens: usize,
    /// How long the first chunk of a batch waits for other requests' chunks.
    pub wait: Duration,
}

/// One request's batch of chunks, waiting for the model.
struct Job {
    model: Arc<Kompress>,
    encodings: Vec<WordEncoding>,
    ticket: Arc<Ticket>,
    arrived: Instant,
    reply: SyncSender<Result<Vec<TokenScores>>>,
}

impl Job {
    fn longest(&self) -> usize {
        self.encodings.iter().map(WordEncoding::len).max().unwrap_or(0)
    }
}

/// The worker thread and the way to reach it.
pub(crate) struct Batcher {
    jobs: Mutex<Option<Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Batcher {
    pub(crate) fn start(limits: BatchLimits, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("kompress-model".into())
            .spawn(move || work(&rx, limits, &metrics))
            .expect("cannot start the model thread");
        Self { jobs: Mutex::new(Some(tx)), worker: Mutex::new(Some(worker)) }
    }

    /// A scorer for one request on `model`; `Err` once the server is stopping.
    pub(crate) fn scorer<'a>(
        &self,
        model: &'a Arc<Kompress>,
        ticket: Arc<Ticket>,
    ) -> Result<RemoteScorer<'a>> {
        let jobs = self.jobs.lock().expect("batcher lock").clone();
        let jobs = jobs.ok_or_else(|| Error::Unavailable("the server is shutting down".into()))?;
        Ok(RemoteScorer { model, jobs, ticket })
    }

    /// Refuses new work and waits for the worker to finish what it was given.
    pub(crate) fn stop(&self) {
        self.jobs.lock().expect("batcher lock").take();
        if let Some(worker) = self.worker.lock().expect("batcher lock").take() {
            // The worker only ends by its channel closing; a panic there was already reported.
            let _ = worker.join();
        }
    }
}

/// A [`ChunkScorer`] that tokenizes on the caller's thread and scores on the model worker.
pub(crate) struct RemoteScorer<'a> {
    model: &'a Arc<Kompress>,
    jobs: Sender<Job>,
    ticket: Arc<Ticket>,
}

impl ChunkScorer for RemoteScorer<'_> {
    fn encode(&self, words: &[&str]) -> Result<WordEncoding> {
        self.ticket.check()?;
        self.model.tokenizer().encode_words(words)
    }

    fn score(&self, chunks: &[WordEncoding]) -> Result<Vec<TokenScores>> {
        self.ticket.check()?;
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job {
            model: self.model.clone(),
            encodings: chunks.to_vec(),
            ticket: self.ticket.clone(),
            arrived: Instant::now(),
            reply,
        };
        let gone = || Error::Unavailable("the model worker has stopped".into());
        self.jobs.send(job).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    fn max_tokens(&self) -> usize {
        self.model.max_tokens()
    }

    fn max_token_bytes(&self) -> Option<usize> {
        self.model.tokenizer().max_token_bytes()
    }
}

fn work(jobs: &Receiver<Job>, limits: BatchLimits, metrics: &Metrics) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match jobs.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
        }
        gather(&mut pending, jobs, limits);
        pending.retain(|job| match job.ticket.is_cancelled() {
            true => {
                metrics.dropped_chunks(job.encodings.len());
                // The requester may be gone already; nobody else waits for this answer.
                let _ = job.reply.send(Err(Error::Unavailable("request cancelled".into())));
                false
            }
            false => true,
        });
        let batch = take_batch(&mut pending, limits.tokens);
        if let Some(first) = batch.first() {
            let model = first.model.clone();
            run(&model, batch, metrics);
        }
    }
}

/// Waits for more jobs until the batch is full or the oldest job has waited `limits.wait`.
fn gather(pending: &mut VecDeque<Job>, jobs: &Receiver<Job>, limits: BatchLimits) {
    let until = pending[0].arrived + limits.wait;
    while padded_tokens(pending.iter()) < limits.tokens {
        let left = until.saturating_duration_since(Instant::now());
        let next = match left.is_zero() {
            true => jobs.try_recv().ok(),
            false => jobs.recv_timeout(left).ok(),
        };
        match next {
            Some(job) => pending.push_back(job),
            None => return,
        }
    }
}

fn padded_tokens<'a>(jobs: impl Iterator<Item = &'a Job>) -> usize {
    let (chunks, longest) = jobs.fold((0, 0), |(n, l), j| (n + j.encodings.len(), l.max(j.longest())));
    chunks * longest
}

/// The oldest job, and the next oldest of its model's that fit in `tokens` padded tokens together
/// (up to the first that does not); other models' jobs keep their places.
fn take_batch(pending: &mut VecDeque<Job>, tokens: usize) -> Vec<Job> {
    let Some(first) = pending.pop_front() else { return Vec::new() };
    let mut batch = vec![first];
    let mut i = 0;
    while let Some(next) = pending.get(i) {
        if !Arc::ptr_eq(&next.model, &batch[0].model) {
            i += 1;
            continue;
        }
        if padded_tokens(batch.iter().chain(std::iter::once(next))) > tokens {
            break;
        }
        batch.push(pending.remove(i).expect("index in range"));
    }
    batch
}

/// One forward pass over every job's chunks; each job gets its own results back.
fn run(model: &Kompress, mut batch: Vec<Job>, metrics: &Metrics) {
    let counts: Vec<usize> = batch.iter().map(|j| j.encodings.len()).collect();
    let encodings: Vec<WordEncoding> =
        batch.iter_mut().flat_map(|j| std::mem::take(&mut j.encodings)).collect();
    let tokens: usize = encodings.iter().map(WordEncoding::len).sum();
    let started = Instant::now();
    let scored = model.score_encodings(&encodings);
    metrics.batch(encodings.len(), tokens, started.elapsed());
    match scored {
        Ok(scores) => {
            let mut scores = scores.into_iter();
            for (job, n) in batch.into_iter().zip(counts) {
                let _ = job.reply.send(Ok(scores.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            // A failed forward pass is the device's failure, not the requests' (a 500, not a 400).
            let message = e.to_string();
            for job in batch {
                let _ = job.reply.send(Err(Error::Device(message.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn model() -> Arc<Kompress> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/v5");
        Arc::new(Kompress::from_dir(dir, &crate::LoadOptions::default()).expect("fixture model"))
    }

    fn job_of(model: &Arc<Kompress>, chunks: usize, len: usize) -> Job {
        let ticket =
            Arc::new(Ticket::new(Instant::now() + Duration::from_secs(60), Arc::new(AtomicBool::new(false))));
        let enc = WordEncoding { input_ids: vec![0; len], word_ids: vec![None; len] };
        let reply = mpsc::sync_channel(1).0;
        Job { model: model.clone(), encodings: vec![enc; chunks], ticket, arrived: Instant::now(), reply }
    }

    #[test]
    fn batches_take_the_oldest_jobs_that_fit_in_padded_tokens() {
        let m = model();
        let job = |chunks, len| job_of(&m, chunks, len);
        let mut pending: VecDeque<Job> = [job(1, 500), job(1, 100), job(2, 512), job(1, 10)].into();
        // 2 x 500 fits in 1024; adding 2 chunks of 512 would pad 4 x 512.
        assert_eq!(take_batch(&mut pending, 1024).len(), 2);
        assert_eq!(pending.len(), 2);
        // A job larger than the bound still runs, alone.
        assert_eq!(take_batch(&mut pending, 100).len(), 1);
        assert_eq!(take_batch(&mut pending, 100).len(), 1);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_batch_holds_one_models_jobs_and_the_oldest_goes_first() {
        let (a, b) = (model(), model());
        let mut pending: VecDeque<Job> =
            [job_of(&a, 1, 10), job_of(&b, 1, 10), job_of(&a, 1, 10), job_of(&b, 1, 10)].into();
        let first = take_batch(&mut pending, 1024);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|j| Arc::ptr_eq(&j.model, &a)));
        // The other model's jobs kept their order, and go next.
        let second = take_batch(&mut pending, 1024);
        assert_eq!(second.len(), 2);
        assert!(second.iter().all(|j| Arc::ptr_eq(&j.model, &b)));
        assert!(pending.is_empty());
    }
}
