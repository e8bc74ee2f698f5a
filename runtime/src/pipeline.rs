//! The staged pipeline from image files to results, its stages overlapped on bounded queues:
//!
//! ```text
//! decode + resize (D threads) → infer (1 thread) → finish (W threads) → deliver (caller)
//! ```
//!
//! The decoders read each file within the pixel limit and prepare its graph input (§1: resize,
//! and for an `image` graph scale and normalise); the inference thread stacks a batch and runs
//! the graph; the finishers run the caller's `finish` on each scored image (overlays, maps, PNG
//! encoding and writing: the CPU work after the graph); the caller's thread gets every file's
//! result in file order. Batches are the files taken `batch` at a time in order, less the ones
//! that fail to decode — what a loop over [`Detector::detect_batch`] runs — so every number is
//! the serial path's. At most `window` batches are between the decoders and delivery, so memory
//! is bounded by the window (decoded images, their inputs and the finishers' work), not by the
//! number of files.
//!
//! **Tiled** ([`PipelineOptions::tiling`]): each file is its own batch of work — the decoders
//! decode it and scale it for tiling ([`crate::tiling`]), the inference thread runs its tiles
//! `batch` at a time and blends their maps, the finishers get the blended map at the image's size.
//! A tile batch is cut when it runs, so a frame's tiles are never all held at once; at most two
//! frames are between the decoders and delivery (a frame is the large thing here), so the next
//! one decodes while this one's tiles run and the last one's overlay is written.
//!
//! [`StageTimes`] says where the time went: each CPU stage's CPU time, the graph's time and the
//! wall time, so a user sees whether the files, the CPU stages or the model set the pace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;

use crate::detector::{DetectError, Detection, Detector};
use crate::preprocess::{load_rgb8_draft, load_rgb8_limited, prepare, stack, ImageError, Prepared};
use crate::tiling::{TileOptions, TileResult, TiledImage};

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Images per graph run.
    pub batch: usize,
    /// Larger images are refused from their header.
    pub max_pixels: u64,
    /// Decode-and-resize threads.
    pub decoders: usize,
    /// Threads running the caller's `finish`.
    pub finishers: usize,
    /// Batches between the decoders and delivery at most.
    pub window: usize,
    /// Whether `finish` gets each decoded image (overlays need it; scores alone do not, and the
    /// image is then dropped once its input is prepared).
    pub keep_images: bool,
    /// Decode large JPEGs at a reduced scale in the DCT domain, never below the graph's input
    /// size ([`crate::preprocess::decode_rgb8_draft`]): much faster on multi-megapixel frames,
    /// outside the Pillow parity; the image `finish` gets is then the reduced one.
    pub jpeg_draft: bool,
    /// Score each image tile by tile ([`crate::tiling`]), `batch` tiles per graph run, instead
    /// of resized whole, `batch` images per run.
    pub tiling: Option<TileOptions>,
}

impl PipelineOptions {
    /// `batch` images per run; decoders and finishers one per core each (a stage waiting on
    /// another costs nothing, so whichever is the bottleneck gets every core the backend leaves
    /// idle), a window of four batches.
    pub fn new(batch: usize, max_pixels: u64) -> PipelineOptions {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PipelineOptions {
            batch: batch.max(1),
            max_pixels,
            decoders: cores,
            finishers: cores,
            window: 4,
            keep_images: true,
            jpeg_draft: false,
            tiling: None,
        }
    }
}

/// One decoded and scored image, as `finish` gets it.
pub struct Scored<'a, L> {
    /// Its place in the file list.
    pub index: usize,
    pub path: &'a Path,
    /// What the caller's `label` said of it, in file order.
    pub label: L,
    /// The decoded image (RGB8, its own size); `None` unless [`PipelineOptions::keep_images`].
    pub image: Option<RgbImage>,
    /// The decoded image's width and height.
    pub size: (u32, u32),
    /// Whole: the map at the graph's size. Tiled: the largest tile score, the blended map at
    /// the image's size and the best tile's Top-K.
    pub detection: Detection,
    /// Tiled: every tile's place, score and Top-K.
    pub tiles: Option<Vec<TileResult>>,
}

/// Where the time went, summed over each stage's threads: the CPU time of the decoding, resizing,
/// finishing and delivering threads (where the system reports a thread's CPU time, as Linux
/// does; else their busy wall time), and the wall time of the graph runs (the backend's own
/// threads do that work).
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    /// Reading and decoding files.
    pub decode: Duration,
    /// Resizing (and normalising) to the graph input.
    pub resize: Duration,
    /// Stacking batches and running the graph.
    pub infer: Duration,
    /// The caller's `finish`.
    pub finish: Duration,
    /// The caller's `deliver`.
    pub deliver: Duration,
    /// From the start to the last delivery.
    pub wall: Duration,
    /// Images scored, files that failed to decode, graph runs, tiles scored (tiled runs).
    pub images: usize,
    pub failed: usize,
    pub batches: usize,
    pub tiles: usize,
}

impl StageTimes {
    /// Images scored per second of wall time.
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Milliseconds per scored image of each stage's time, in pipeline order.
    pub fn ms_per_image(&self) -> [(&'static str, f64); 5] {
        let per = |d: Duration| d.as_secs_f64() * 1e3 / self.images.max(1) as f64;
        [
            ("decode", per(self.decode)),
            ("resize", per(self.resize)),
            ("infer", per(self.infer)),
            ("finish", per(self.finish)),
            ("deliver", per(self.deliver)),
        ]
    }
}

/// This thread's CPU time, where the system reports it.
fn thread_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to fill.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    None
}

/// The CPU time this thread spends from `start` on (its wall time where there is no CPU clock):
/// a stage's cost, not what it waited for the cores the others held.
struct Stopwatch {
    cpu: Option<Duration>,
    wall: Instant,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            cpu: thread_cpu(),
            wall: Instant::now(),
        }
    }

    fn elapsed(&self) -> Duration {
        match (self.cpu, thread_cpu()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => self.wall.elapsed(),
        }
    }
}

/// `N images in S s, R images/s; ms per image (…): decode a, resize b, infer c, finish d,
/// deliver e`.
impl std::fmt::Display for StageTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stages: Vec<String> = self
            .ms_per_image()
            .iter()
            .map(|(stage, ms)| format!("{stage} {ms:.2}"))
            .collect();
        write!(
            f,
            "{} images{} in {:.2} s, {:.1} images/s; ms per image (CPU time of decode, resize, \
             finish, deliver; time of the graph runs): {}",
            self.images,
            if self.tiles > 0 {
                format!(" ({} tiles)", self.tiles)
            } else {
                String::new()
            },
            self.wall.as_secs_f64(),
            self.images_per_second(),
            stages.join(", ")
        )
    }
}

/// `D decode, F finish threads, batches of B`.
impl std::fmt::Display for PipelineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} decode, {} finish threads, batches of {}{}{}",
            self.decoders,
            self.finishers,
            self.batch,
            if self.tiling.is_some() { " tiles" } else { "" },
            if self.jpeg_draft { ", JPEG draft" } else { "" }
        )?;
        match &self.tiling {
            Some(t) => write!(f, ", tiled ({})", t.describe()),
            None => Ok(()),
        }
    }
}

/// What the graph gets of one file: its input resized whole, or its frame to tile.
enum Input {
    Whole {
        image: Option<RgbImage>,
        prepared: Prepared,
    },
    /// The frame itself travels inside (handed back at the end when kept).
    Tiled(TiledImage<'static>),
}

/// One file as the decoders leave it: its image's size and input.
struct Decoded {
    index: usize,
    outcome: Result<((u32, u32), Input), ImageError>,
}

/// One file as the inference thread leaves it.
struct Inferred<L> {
    image: Option<RgbImage>,
    size: (u32, u32),
    detection: Detection,
    tiles: Option<Vec<TileResult>>,
    label: L,
}

/// One file as the inference thread leaves it: its result and label.
type ScoredFile<L> = (usize, Result<Inferred<L>, ImageError>);

/// One file as the finishers leave it.
type Finished<T> = (usize, Result<T, ImageError>);

/// Batches delivered so far, and whether the run stopped; decoders wait on it to stay within
/// the window.
struct Gate {
    state: Mutex<(usize, bool)>,
    moved: Condvar,
}

impl Gate {
    /// Waits until batch `chunk` is within `window` of delivery; false when the run stopped.
    fn admit(&self, chunk: usize, window: usize) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !state.1 && chunk >= state.0 + window {
            state = self.moved.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        !state.1
    }

    fn delivered(&self, chunks: usize) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0 = chunks;
        self.moved.notify_all();
    }

    fn stop(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.moved.notify_all();
    }
}

/// Takes messages `(chunk, payload)` from `receiver` and returns them in chunk order.
struct InOrder<M> {
    receiver: Receiver<(usize, M)>,
    waiting: BTreeMap<usize, M>,
    next: usize,
}

impl<M> InOrder<M> {
    fn new(receiver: Receiver<(usize, M)>) -> Self {
        InOrder {
            receiver,
            waiting: BTreeMap::new(),
            next: 0,
        }
    }

    /// The next chunk's payload; `None` once the senders are gone without it.
    fn next(&mut self) -> Option<M> {
        loop {
            if let Some(m) = self.waiting.remove(&self.next) {
                self.next += 1;
                return Some(m);
            }
            let (chunk, m) = self.receiver.recv().ok()?;
            self.waiting.insert(chunk, m);
        }
    }
}

/// Runs `files` through `detector` as the module header says. `label` runs on the inference
/// thread for every file that decoded, in file order (names that depend on the files before,
/// say); `finish` runs on the finisher threads for every scored image, with its label;
/// `deliver` runs on this thread for every file, in file order,
/// with `finish`'s result or the file's decoding error, and returns whether to go on (`false`
/// stops the run: nothing after that file is delivered). An error of the graph stops the run
/// and is returned (files already delivered stay delivered).
pub fn run<L: Send, T: Send>(
    detector: &Detector,
    files: &[PathBuf],
    options: &PipelineOptions,
    mut label: impl FnMut(usize, &Path) -> L + Send,
    finish: impl Fn(Scored<L>) -> T + Sync,
    mut deliver: impl FnMut(usize, &Path, Result<T, ImageError>) -> bool,
) -> Result<StageTimes, DetectError> {
    let started = Instant::now();
    let info = detector.info();
    let (size, kind) = (info.spec.image_size, info.input);
    let batch = options.batch.max(1);
    // Tiled, a chunk is one file (the batch counts its tiles) and the window holds two frames.
    let (per_chunk, window) = match options.tiling {
        None => (batch, options.window.max(1)),
        Some(_) => (1, options.window.clamp(1, 2)),
    };
    let chunks = files.len().div_ceil(per_chunk);
    let next_chunk = AtomicUsize::new(0);
    let gate = Gate {
        state: Mutex::new((0, false)),
        moved: Condvar::new(),
    };
    let busy = Mutex::new(StageTimes::default());
    let add = |f: &dyn Fn(&mut StageTimes)| f(&mut busy.lock().unwrap_or_else(|p| p.into_inner()));
    let mut error = None;
    let (to_infer, decoded) = sync_channel::<(usize, Vec<Decoded>)>(window);
    let (to_finish, scored) = sync_channel::<(usize, Vec<ScoredFile<L>>)>(window);
    let (to_deliver, finished) = sync_channel::<(usize, Vec<Finished<T>>)>(window);
    let scored = Mutex::new(scored);
    std::thread::scope(|scope| {
        for _ in 0..options.decoders.max(1) {
            let to_infer = to_infer.clone();
            let (next_chunk, gate, add) = (&next_chunk, &gate, &add);
            scope.spawn(move || loop {
                let chunk = next_chunk.fetch_add(1, Ordering::Relaxed);
                if chunk >= chunks || !gate.admit(chunk, window) {
                    return;
                }
                let (mut decode, mut resize) = (Duration::ZERO, Duration::ZERO);
                let range = chunk * per_chunk..((chunk + 1) * per_chunk).min(files.len());
                let items = range
                    .map(|index| {
                        let t = Stopwatch::start();
                        let loaded = if options.jpeg_draft {
                            load_rgb8_draft(&files[index], options.max_pixels, size as u32)
                        } else {
                            load_rgb8_limited(&files[index], options.max_pixels)
                        };
                        decode += t.elapsed();
                        let t = Stopwatch::start();
                        let outcome = loaded.map(|img| {
                            let dims = img.dimensions();
                            let keep = options.keep_images;
                            let input = match &options.tiling {
                                None => Input::Whole {
                                    prepared: prepare(&img, size, &info.spec.preprocess, kind),
                                    image: keep.then_some(img),
                                },
                                Some(t) => Input::Tiled(TiledImage::owning(
                                    img,
                                    keep,
                                    size,
                                    t,
                                    info.spec.preprocess.resize,
                                )),
                            };
                            (dims, input)
                        });
                        resize += t.elapsed();
                        Decoded { index, outcome }
                    })
                    .collect();
                add(&|s| {
                    s.decode += decode;
                    s.resize += resize;
                });
                if to_infer.send((chunk, items)).is_err() {
                    return;
                }
            });
        }
        drop(to_infer);
        {
            let (gate, add, error, label) = (&gate, &add, &mut error, &mut label);
            scope.spawn(move || {
                let mut decoded = InOrder::new(decoded);
                for chunk in 0..chunks {
                    let Some(items) = decoded.next() else { break };
                    let t = Instant::now();
                    let (scored, runs, tiles) = match infer(detector, items, batch, label, files) {
                        Ok(done) => done,
                        Err(e) => {
                            *error = Some(e);
                            gate.stop();
                            return;
                        }
                    };
                    add(&|s| {
                        s.infer += t.elapsed();
                        s.batches += runs;
                        s.tiles += tiles;
                    });
                    if to_finish.send((chunk, scored)).is_err() {
                        return;
                    }
                }
            });
        }
        for _ in 0..options.finishers.max(1) {
            let to_deliver = to_deliver.clone();
            let (scored, finish, add) = (&scored, &finish, &add);
            scope.spawn(move || loop {
                let next = scored.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok((chunk, items)) = next else { return };
                let t = Stopwatch::start();
                let done = items
                    .into_iter()
                    .map(|(index, outcome)| {
                        let result = outcome.map(|inferred| {
                            finish(Scored {
                                index,
                                path: &files[index],
                                label: inferred.label,
                                image: inferred.image,
                                size: inferred.size,
                                detection: inferred.detection,
                                tiles: inferred.tiles,
                            })
                        });
                        (index, result)
                    })
                    .collect();
                add(&|s| s.finish += t.elapsed());
                if to_deliver.send((chunk, done)).is_err() {
                    return;
                }
            });
        }
        drop(to_deliver);
        let mut finished = InOrder::new(finished);
        'chunks: for chunk in 0..chunks {
            let Some(items) = finished.next() else { break };
            let t = Stopwatch::start();
            let (mut images, mut failures, mut go_on) = (0, 0, true);
            for (index, result) in items {
                match &result {
                    Ok(_) => images += 1,
                    Err(_) => failures += 1,
                }
                go_on = deliver(index, &files[index], result);
                if !go_on {
                    break;
                }
            }
            add(&|s| {
                s.deliver += t.elapsed();
                s.images += images;
                s.failed += failures;
            });
            if !go_on {
                break 'chunks;
            }
            gate.delivered(chunk + 1);
        }
        // Unblocks decoders still waiting when the run stopped early; the other stages stop
        // when their next send finds no receiver.
        gate.stop();
        drop(finished);
    });
    if let Some(e) = error {
        return Err(e);
    }
    let mut times = busy.into_inner().unwrap_or_else(|p| p.into_inner());
    times.wall = started.elapsed();
    Ok(times)
}

/// Scores one chunk's decoded files on the inference thread: the whole images in one graph run,
/// each tiled frame in runs of `batch` tiles. Returns them in order with their labels, the graph
/// runs made and the tiles scored.
fn infer<L>(
    detector: &Detector,
    items: Vec<Decoded>,
    batch: usize,
    label: &mut impl FnMut(usize, &Path) -> L,
    files: &[PathBuf],
) -> Result<(Vec<ScoredFile<L>>, usize, usize), DetectError> {
    let info = detector.info();
    let (size, kind) = (info.spec.image_size, info.input);
    let whole: Vec<&Prepared> = items
        .iter()
        .filter_map(|d| match &d.outcome {
            Ok((_, Input::Whole { prepared, .. })) => Some(prepared),
            _ => None,
        })
        .collect();
    let mut runs = usize::from(!whole.is_empty());
    let mut detections = if whole.is_empty() {
        Vec::new()
    } else {
        detector.detections(stack(&whole, size, kind), whole.len())?
    }
    .into_iter();
    let mut tiles = 0;
    let mut scored = Vec::with_capacity(items.len());
    for d in items {
        let outcome = match d.outcome {
            Err(e) => Err(e),
            Ok((dims, Input::Whole { image, .. })) => {
                let detection = detections.next().expect("one detection per input");
                Ok((image, dims, detection, None))
            }
            Ok((dims, Input::Tiled(mut tiled))) => {
                runs += tiled.score(detector, batch)?;
                tiles += tiled.len();
                let (result, image) = tiled.finish_with_image();
                let detection = Detection {
                    score: result.score,
                    topk: result.best_topk(),
                    map: result.map,
                };
                Ok((image, dims, detection, Some(result.tiles)))
            }
        };
        let outcome = outcome.map(|(image, size, detection, tiles)| Inferred {
            image,
            size,
            detection,
            tiles,
            label: label(d.index, &files[d.index]),
        });
        scored.push((d.index, outcome));
    }
    Ok((scored, runs, tiles))
}
