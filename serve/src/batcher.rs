//! Dynamic batching: requests that arrive while the model is busy, or within
//! `--max-queue-delay-us` of the oldest waiting one, run as one batch of up to `--max-batch`
//! images, and each request gets its own slice of the outputs back.
//!
//! One worker thread owns the model run (inference is blocking CPU or GPU work; the async
//! servers never wait on it except through a reply channel). The queue is bounded
//! (`--max-queue` requests): a request that finds it full is refused at once
//! ([`Refused::QueueFull`] → HTTP 503 / gRPC UNAVAILABLE), never left in an unbounded backlog. A
//! request whose deadline passed, or whose client went away, while it waited is dropped before
//! the batch runs. When every [`Batcher`] handle is dropped (the servers have stopped accepting
//! and finished their requests) the worker answers what is still queued and exits.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dlvp_runtime::{GraphInput, Outputs};
use ndarray::{ArrayD, Axis, Slice};
use tokio::sync::oneshot;

/// Runs one batch on the model.
pub type Runner = dyn Fn(GraphInput) -> Result<Outputs, BatchError> + Send + Sync;

/// Why a batch gave no outputs; every request of the batch gets it (hence `Clone`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// The detector failed on the batch.
    #[error(transparent)]
    Detector(Arc<dlvp_runtime::DetectError>),
    /// The outputs broke the graph contract (their shapes).
    #[error("the model broke the graph contract: {0}")]
    Contract(String),
    /// Requests of both input kinds in one batch (each request is checked against the model's
    /// kind before it is queued, so this is a bug, reported rather than run).
    #[error("requests of different input kinds in one batch")]
    MixedKinds,
    /// The requests' images could not be joined into one batch.
    #[error("cannot join the requests into one batch: {0}")]
    Join(#[from] ndarray::ShapeError),
}

/// What a request gets back.
#[derive(Debug)]
pub struct Done {
    /// The outputs of this request's images only.
    pub outputs: Outputs,
    pub queued: Duration,
    pub compute: Duration,
    /// How many images the batch that ran this request held.
    pub batch: usize,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("the request waited longer than its timeout of {0:?} before it could run")]
    Timeout(Duration),
    #[error("inference failed: {0}")]
    Model(BatchError),
}

#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the server's queue is full ({0} requests waiting); retry later")]
    QueueFull(usize),
    #[error("the server is shutting down")]
    Stopped,
}

struct Job {
    input: GraphInput,
    enqueued: Instant,
    timeout: Duration,
    reply: oneshot::Sender<Result<Done, JobError>>,
}

/// What the batcher reports about each batch it ran (for metrics).
pub type OnBatch = dyn Fn(usize, Duration) + Send + Sync;

/// A handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    sender: SyncSender<Job>,
    capacity: usize,
}

pub struct Settings {
    pub max_batch: usize,
    pub max_delay: Duration,
    pub max_queue: usize,
}

impl Batcher {
    /// Starts the worker; it exits once every handle is dropped and the queue is empty.
    pub fn start(
        runner: Arc<Runner>,
        settings: Settings,
        on_batch: Arc<OnBatch>,
    ) -> (Batcher, JoinHandle<()>) {
        let (sender, receiver) = mpsc::sync_channel::<Job>(settings.max_queue);
        let capacity = settings.max_queue;
        let worker = std::thread::Builder::new()
            .name("dlvp-batcher".into())
            .spawn(move || work(receiver, &*runner, &settings, &*on_batch))
            .expect("spawning the batcher thread");
        (Batcher { sender, capacity }, worker)
    }

    /// Queues `input` (1 to max_batch images, already checked); the receiver gets the result.
    pub fn submit(
        &self,
        input: GraphInput,
        timeout: Duration,
    ) -> Result<oneshot::Receiver<Result<Done, JobError>>, Refused> {
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            input,
            enqueued: Instant::now(),
            timeout,
            reply,
        };
        match self.sender.try_send(job) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_)) => Err(Refused::QueueFull(self.capacity)),
            Err(TrySendError::Disconnected(_)) => Err(Refused::Stopped),
        }
    }
}

fn work(receiver: mpsc::Receiver<Job>, runner: &Runner, settings: &Settings, on_batch: &OnBatch) {
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match receiver.recv() {
                Ok(job) => job,
                Err(_) => return, // every handle dropped and nothing queued
            },
        };
        let mut images = first.input.batch();
        let window_end = first.enqueued + settings.max_delay;
        let mut jobs = vec![first];
        // Gather what is queued, and what arrives before the oldest request's delay runs out.
        while images < settings.max_batch {
            let next = match window_end.checked_duration_since(Instant::now()) {
                // A timeout or a closed queue both end the gathering.
                Some(left) if !left.is_zero() => receiver.recv_timeout(left).ok(),
                _ => receiver.try_recv().ok(),
            };
            let Some(job) = next else { break };
            if images + job.input.batch() > settings.max_batch {
                carried = Some(job); // the next batch starts with it
                break;
            }
            images += job.input.batch();
            jobs.push(job);
        }
        let now = Instant::now();
        let mut live = Vec::with_capacity(jobs.len());
        for job in jobs {
            if job.reply.is_closed() {
                continue; // the client went away: nothing to compute for
            }
            if now.duration_since(job.enqueued) > job.timeout {
                let _ = job.reply.send(Err(JobError::Timeout(job.timeout)));
                continue;
            }
            live.push(job);
        }
        if !live.is_empty() {
            run_batch(live, runner, on_batch);
        }
    }
}

fn run_batch(jobs: Vec<Job>, runner: &Runner, on_batch: &OnBatch) {
    let counts: Vec<usize> = jobs.iter().map(|j| j.input.batch()).collect();
    let total: usize = counts.iter().sum();
    let input = match concatenate(jobs.iter().map(|j| &j.input)) {
        Ok(input) => input,
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(JobError::Model(e.clone())));
            }
            return;
        }
    };
    let started = Instant::now();
    let result = runner(input);
    let compute = started.elapsed();
    on_batch(total, compute);
    let mut offset = 0;
    for (job, n) in jobs.into_iter().zip(counts) {
        let reply = match &result {
            Ok(outputs) => Ok(Done {
                outputs: slice(outputs, offset, n),
                queued: started.duration_since(job.enqueued),
                compute,
                batch: total,
            }),
            Err(e) => Err(JobError::Model(e.clone())),
        };
        offset += n;
        let _ = job.reply.send(reply);
    }
}

fn concatenate<'a>(inputs: impl Iterator<Item = &'a GraphInput>) -> Result<GraphInput, BatchError> {
    let inputs: Vec<&GraphInput> = inputs.collect();
    if inputs.len() == 1 {
        return Ok(inputs[0].clone());
    }
    fn join<T: Clone>(parts: Vec<&ArrayD<T>>) -> Result<ArrayD<T>, BatchError> {
        let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
        Ok(ndarray::concatenate(Axis(0), &views)?)
    }
    match inputs[0] {
        GraphInput::Image(_) => join(
            inputs
                .iter()
                .map(|i| match i {
                    GraphInput::Image(a) => Ok(a),
                    GraphInput::ImageU8(_) => Err(BatchError::MixedKinds),
                })
                .collect::<Result<_, _>>()?,
        )
        .map(GraphInput::Image),
        GraphInput::ImageU8(_) => join(
            inputs
                .iter()
                .map(|i| match i {
                    GraphInput::ImageU8(a) => Ok(a),
                    GraphInput::Image(_) => Err(BatchError::MixedKinds),
                })
                .collect::<Result<_, _>>()?,
        )
        .map(GraphInput::ImageU8),
    }
}

/// Images `offset .. offset + n` of every output.
fn slice(outputs: &Outputs, offset: usize, n: usize) -> Outputs {
    let take = |a: &ArrayD<f32>| {
        a.slice_axis(Axis(0), Slice::from(offset..offset + n))
            .to_owned()
    };
    Outputs {
        anomaly_score: take(&outputs.anomaly_score),
        anomaly_map: take(&outputs.anomaly_map),
        topk_indices: outputs
            .topk_indices
            .slice_axis(Axis(0), Slice::from(offset..offset + n))
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A stand-in model: score = the first pixel of each image, map = the image's first plane,
    /// topk = [index of the image in the batch]; records the batch sizes it saw.
    fn fake(seen: Arc<Mutex<Vec<usize>>>, pause: Duration) -> Arc<Runner> {
        Arc::new(move |input: GraphInput| {
            std::thread::sleep(pause);
            let GraphInput::Image(x) = input else {
                return Err(BatchError::MixedKinds);
            };
            let b = x.shape()[0];
            seen.lock().unwrap().push(b);
            let scores: Vec<f32> = (0..b).map(|i| x[[i, 0, 0, 0]]).collect();
            Ok(Outputs {
                anomaly_score: ArrayD::from_shape_vec(vec![b], scores).unwrap(),
                anomaly_map: x.slice_axis(Axis(1), Slice::from(0..1)).to_owned(),
                topk_indices: ArrayD::from_shape_fn(vec![b, 1], |i| i[0] as i64),
            })
        })
    }

    fn image(value: f32, n: usize) -> GraphInput {
        GraphInput::Image(ArrayD::from_elem(vec![n, 3, 2, 2], value))
    }

    fn settings(max_batch: usize, delay_ms: u64, queue: usize) -> Settings {
        Settings {
            max_batch,
            max_delay: Duration::from_millis(delay_ms),
            max_queue: queue,
        }
    }

    fn quiet() -> Arc<OnBatch> {
        Arc::new(|_, _| {})
    }

    #[tokio::test]
    async fn concurrent_requests_run_together_and_get_their_own_rows_back() {
        let seen = Arc::new(Mutex::new(vec![]));
        let (batcher, worker) = Batcher::start(
            fake(seen.clone(), Duration::ZERO),
            settings(8, 200, 16),
            quiet(),
        );
        let receivers: Vec<_> = (0..4)
            .map(|i| {
                batcher
                    .submit(image(i as f32, 1 + i % 2), Duration::from_secs(5))
                    .unwrap()
            })
            .collect();
        for (i, r) in receivers.into_iter().enumerate() {
            let done = r.await.unwrap().unwrap();
            let n = 1 + i % 2;
            assert_eq!(done.outputs.anomaly_score.len(), n);
            assert!(done.outputs.anomaly_score.iter().all(|&s| s == i as f32));
            assert_eq!(done.outputs.anomaly_map.shape(), &[n, 1, 2, 2]);
            assert_eq!(done.batch, 6);
        }
        drop(batcher);
        worker.join().unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![6]);
    }

    #[tokio::test]
    async fn a_batch_never_exceeds_max_batch() {
        let seen = Arc::new(Mutex::new(vec![]));
        let (batcher, worker) = Batcher::start(
            fake(seen.clone(), Duration::ZERO),
            settings(4, 100, 16),
            quiet(),
        );
        let receivers: Vec<_> = (0..5)
            .map(|i| {
                batcher
                    .submit(image(i as f32, 3), Duration::from_secs(5))
                    .unwrap()
            })
            .collect();
        for r in receivers {
            assert_eq!(r.await.unwrap().unwrap().outputs.anomaly_score.len(), 3);
        }
        drop(batcher);
        worker.join().unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![3, 3, 3, 3, 3]);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let seen = Arc::new(Mutex::new(vec![]));
        let (batcher, worker) = Batcher::start(
            fake(seen, Duration::from_millis(300)),
            settings(1, 0, 2),
            quiet(),
        );
        let first = batcher
            .submit(image(0.0, 1), Duration::from_secs(5))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50)); // the worker is busy with it
        let queued: Vec<_> = (0..2)
            .map(|_| {
                batcher
                    .submit(image(1.0, 1), Duration::from_secs(5))
                    .unwrap()
            })
            .collect();
        assert!(matches!(
            batcher.submit(image(2.0, 1), Duration::from_secs(5)),
            Err(Refused::QueueFull(2))
        ));
        first.await.unwrap().unwrap();
        for r in queued {
            r.await.unwrap().unwrap();
        }
        drop(batcher);
        worker.join().unwrap();
    }

    #[tokio::test]
    async fn a_request_that_waited_past_its_timeout_is_not_run() {
        let seen = Arc::new(Mutex::new(vec![]));
        let (batcher, worker) = Batcher::start(
            fake(seen.clone(), Duration::from_millis(200)),
            settings(1, 0, 4),
            quiet(),
        );
        let slow = batcher
            .submit(image(0.0, 1), Duration::from_secs(5))
            .unwrap();
        let late = batcher
            .submit(image(1.0, 1), Duration::from_millis(50))
            .unwrap();
        slow.await.unwrap().unwrap();
        assert!(matches!(late.await.unwrap(), Err(JobError::Timeout(_))));
        drop(batcher);
        worker.join().unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![1]);
    }
}
