//! The model spec: the YAML file that fixes every open choice of DLVP-CLIP.
//!
//! Every field documented in `model-spec/README.md` is a field
//! here, with the paper configuration (OpenCLIP ViT-L/14 at 518 px) as its default, so a spec
//! file only needs the fields that differ. Unknown fields are rejected, so a typo never silently
//! falls back to a default. [`Spec::validate`] rejects combinations that cannot describe a model
//! and names the offending field; [`Spec::load`] parses and validates in one step.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest spec file we read; specs are a few hundred bytes, anything bigger is not a spec.
const MAX_SPEC_BYTES: u64 = 1 << 20;

/// A complete DLVP-CLIP model description (model-spec/README.md, "Fields").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// Free-form model name, written into the exported graph's metadata.
    pub name: String,
    /// Input side H = W in pixels (model-spec/README.md §1).
    pub image_size: usize,
    pub vision: VisionSpec,
    pub text: TextSpec,
    /// Joint embedding width D (`visual.proj` is [C, D], `text_projection` is [C_t, D]).
    pub embed_dim: usize,
    /// Feature layers 𝓛, 1-based block indices, strictly increasing (model-spec/README.md §4–§6).
    pub feature_layers: Vec<usize>,
    pub slfs: SlfsSpec,
    pub mlop: MlopSpec,
    pub hfd: HfdSpec,
    pub prompts: PromptsSpec,
    /// Softmax temperature; the similarity scale is τ = 1/temperature (model-spec/README.md §6, §7).
    pub temperature: f64,
    pub score: ScoreSpec,
    pub postprocess: PostprocessSpec,
    pub preprocess: PreprocessSpec,
}

/// The CLIP image tower (model-spec/README.md §2, notation table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisionSpec {
    /// Patch size p; `image_size` must be a multiple of it.
    pub patch_size: usize,
    /// Width C.
    pub width: usize,
    /// Number of residual blocks L.
    pub layers: usize,
    pub heads: usize,
    /// MLP hidden width = width × mlp_ratio (OpenCLIP's `mlp_ratio`).
    pub mlp_ratio: f64,
    pub act: Activation,
}

/// The CLIP text tower (model-spec/README.md §4, text side).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextSpec {
    /// Token sequence length (rows of `positional_embedding`).
    pub context_length: usize,
    /// Rows of `token_embedding.weight`; CLIP's BPE has 49408.
    pub vocab_size: usize,
    /// Width C_t.
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub mlp_ratio: f64,
    pub act: Activation,
}

/// The MLP activation of a tower's residual blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// GELU, erf form (OpenCLIP-trained weights).
    Gelu,
    /// x·σ(1.702x) (OpenAI-trained weights).
    QuickGelu,
}

/// SLFS: selection of the K key patches by CLS attention (model-spec/README.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlfsSpec {
    /// K = M: patches selected, and prompt tokens made from them.
    pub top_k: usize,
}

/// MLoP: where the local prompts are injected (model-spec/README.md §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlopSpec {
    /// J: visual blocks after which the prompt slots are reset to P' (0 = they evolve from the start).
    pub visual_static_layers: usize,
    /// d_t: text blocks that receive injected prompts (1 = only the input).
    pub text_depth: usize,
}

/// HFD: the wavelet decomposition of the feature maps (model-spec/README.md §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HfdSpec {
    pub wavelet: Wavelet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wavelet {
    /// Orthonormal one-level 2-D Haar.
    Haar,
}

/// Text templates per class; each is tokenized after M placeholder tokens (model-spec/README.md §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptsSpec {
    pub normal: Vec<String>,
    pub anomaly: Vec<String>,
}

/// Image score (model-spec/README.md §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreSpec {
    /// w in score = (1−w)·S[anomaly] + w·max(map).
    pub map_max_weight: f64,
}

/// Map post-processing inside the graph (model-spec/README.md §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostprocessSpec {
    /// σ of the Gaussian blur of the final map, in pixels; 0 turns it off.
    pub gaussian_sigma: f64,
}

/// Image preprocessing, done by the runtime before the graph (model-spec/README.md §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessSpec {
    /// Per-channel (R, G, B) mean of the [0, 1]-scaled image.
    pub mean: [f64; 3],
    /// Per-channel (R, G, B) standard deviation.
    pub std: [f64; 3],
    /// Resampling filter to H×W, as PIL computes it (antialiased when shrinking).
    pub resize: ResizeFilter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    Bicubic,
    Bilinear,
}

impl ResizeFilter {
    /// The name in the spec's YAML and in the graph's `dlvp.preprocess.resize` metadata.
    pub fn name(self) -> &'static str {
        match self {
            ResizeFilter::Bicubic => "bicubic",
            ResizeFilter::Bilinear => "bilinear",
        }
    }
}

/// CLIP's normalisation constants (OpenAI/OpenCLIP `OPENAI_DATASET_MEAN/STD`).
pub const CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
pub const CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

impl Default for Spec {
    fn default() -> Self {
        Spec {
            name: "dlvp-clip".to_string(),
            image_size: 518,
            vision: VisionSpec::default(),
            text: TextSpec::default(),
            embed_dim: 768,
            feature_layers: vec![6, 12, 18, 24],
            slfs: SlfsSpec::default(),
            mlop: MlopSpec::default(),
            hfd: HfdSpec::default(),
            prompts: PromptsSpec::default(),
            temperature: 0.07,
            score: ScoreSpec::default(),
            postprocess: PostprocessSpec::default(),
            preprocess: PreprocessSpec::default(),
        }
    }
}

impl Default for VisionSpec {
    fn default() -> Self {
        VisionSpec {
            patch_size: 14,
            width: 1024,
            layers: 24,
            heads: 16,
            mlp_ratio: 4.0,
            act: Activation::Gelu,
        }
    }
}

impl Default for TextSpec {
    fn default() -> Self {
        TextSpec {
            context_length: 77,
            vocab_size: 49408,
            width: 768,
            layers: 12,
            heads: 12,
            mlp_ratio: 4.0,
            act: Activation::Gelu,
        }
    }
}

impl Default for SlfsSpec {
    fn default() -> Self {
        SlfsSpec { top_k: 4 }
    }
}

impl Default for MlopSpec {
    fn default() -> Self {
        MlopSpec {
            visual_static_layers: 9,
            text_depth: 9,
        }
    }
}

impl Default for HfdSpec {
    fn default() -> Self {
        HfdSpec {
            wavelet: Wavelet::Haar,
        }
    }
}

impl Default for PromptsSpec {
    /// AnomalyCLIP's object-agnostic templates: "X X X X object." / "X X X X damaged object.".
    fn default() -> Self {
        PromptsSpec {
            normal: vec!["object.".to_string()],
            anomaly: vec!["damaged object.".to_string()],
        }
    }
}

impl Default for ScoreSpec {
    fn default() -> Self {
        ScoreSpec {
            map_max_weight: 0.0,
        }
    }
}

impl Default for PostprocessSpec {
    fn default() -> Self {
        PostprocessSpec {
            gaussian_sigma: 4.0,
        }
    }
}

impl Default for PreprocessSpec {
    fn default() -> Self {
        PreprocessSpec {
            mean: CLIP_MEAN,
            std: CLIP_STD,
            resize: ResizeFilter::Bicubic,
        }
    }
}

/// One reason a spec cannot describe a model, tied to the field that has to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Dotted path of the field, as written in the YAML (`vision.heads`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{}: cannot read spec: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {size} bytes is too large for a spec (limit {MAX_SPEC_BYTES})", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{origin}: the spec is empty")]
    Empty { origin: String },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {}", join_problems(problems))]
    Invalid {
        origin: String,
        problems: Vec<FieldProblem>,
    },
}

fn join_problems(problems: &[FieldProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Spec {
    /// Reads, parses and validates a spec file.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let read_err = |error| SpecError::Read {
            path: path.to_path_buf(),
            error,
        };
        let size = std::fs::metadata(path).map_err(read_err)?.len();
        if size > MAX_SPEC_BYTES {
            return Err(SpecError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Spec::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates spec YAML; `origin` names where it came from in error messages.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Spec, SpecError> {
        let spec = Spec::parse_unvalidated(text, origin)?;
        spec.validate().map_err(|problems| SpecError::Invalid {
            origin: origin.to_string(),
            problems,
        })?;
        Ok(spec)
    }

    /// Parses spec YAML without checking that the values fit together.
    pub fn parse_unvalidated(text: &str, origin: &str) -> Result<Spec, SpecError> {
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Err(SpecError::Empty {
                origin: origin.to_string(),
            });
        }
        serde_yaml::from_str(text).map_err(|e| SpecError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })
    }

    /// The resolved spec (every default filled in) as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a Spec always serialises: it holds only plain data")
    }

    /// Patch grid side g = H / p.
    pub fn grid(&self) -> usize {
        self.image_size / self.vision.patch_size
    }

    /// Patch tokens N = g².
    pub fn num_patches(&self) -> usize {
        self.grid().saturating_mul(self.grid())
    }

    /// Every reason the spec cannot describe a model; empty when it can.
    pub fn validate(&self) -> Result<(), Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let mut bad = |field: &str, message: String| {
            problems.push(FieldProblem {
                field: field.to_string(),
                message,
            })
        };

        if self.name.trim().is_empty() {
            bad("name", "must not be empty".into());
        }
        if self.image_size == 0 {
            bad("image_size", "must be at least 1".into());
        }
        at_most("image_size", self.image_size, MAX_IMAGE_SIZE, &mut bad);
        let v = &self.vision;
        if v.patch_size == 0 {
            bad("vision.patch_size", "must be at least 1".into());
        } else if !self.image_size.is_multiple_of(v.patch_size) {
            bad(
                "image_size",
                format!(
                    "{} is not a multiple of vision.patch_size {}",
                    self.image_size, v.patch_size
                ),
            );
        }
        check_tower("vision", v.width, v.layers, v.heads, v.mlp_ratio, &mut bad);
        let t = &self.text;
        check_tower("text", t.width, t.layers, t.heads, t.mlp_ratio, &mut bad);
        if t.vocab_size == 0 {
            bad("text.vocab_size", "must be at least 1".into());
        }
        at_most("text.vocab_size", t.vocab_size, MAX_VOCAB, &mut bad);
        at_most(
            "text.context_length",
            t.context_length,
            MAX_CONTEXT,
            &mut bad,
        );
        if self.embed_dim == 0 {
            bad("embed_dim", "must be at least 1".into());
        }
        at_most("embed_dim", self.embed_dim, MAX_WIDTH, &mut bad);

        if self.feature_layers.is_empty() {
            bad("feature_layers", "must list at least one layer".into());
        }
        for (i, &layer) in self.feature_layers.iter().enumerate() {
            if layer == 0 || layer > v.layers {
                bad(
                    "feature_layers",
                    format!(
                        "layer {layer} is outside 1..={} (1-based block index, vision.layers = {})",
                        v.layers, v.layers
                    ),
                );
            }
            if i > 0 && layer <= self.feature_layers[i - 1] {
                bad(
                    "feature_layers",
                    format!(
                        "must be strictly increasing, found {} then {layer}",
                        self.feature_layers[i - 1]
                    ),
                );
            }
        }

        let k = self.slfs.top_k;
        let patches = if v.patch_size > 0 {
            self.num_patches()
        } else {
            0
        };
        if k == 0 {
            bad("slfs.top_k", "must be at least 1".into());
        } else if v.patch_size > 0 && self.image_size.is_multiple_of(v.patch_size) && k > patches {
            bad(
                "slfs.top_k",
                format!(
                    "{k} exceeds the {patches} patch tokens of a {g}×{g} grid",
                    g = self.grid()
                ),
            );
        }
        if self.mlop.visual_static_layers > v.layers {
            bad(
                "mlop.visual_static_layers",
                format!(
                    "{} exceeds vision.layers {}",
                    self.mlop.visual_static_layers, v.layers
                ),
            );
        }
        if self.mlop.text_depth == 0 {
            bad(
                "mlop.text_depth",
                "must be at least 1 (the prompts enter at the text input)".into(),
            );
        } else if self.mlop.text_depth > t.layers {
            bad(
                "mlop.text_depth",
                format!("{} exceeds text.layers {}", self.mlop.text_depth, t.layers),
            );
        }

        for (class, templates) in [
            ("prompts.normal", &self.prompts.normal),
            ("prompts.anomaly", &self.prompts.anomaly),
        ] {
            if templates.is_empty() {
                bad(class, "must list at least one template".into());
            }
            for template in templates.iter() {
                // Every word is at least one BPE token: a necessary condition the tokenizer can only tighten.
                let words = template.split_whitespace().count();
                if words == 0 {
                    bad(class, "a template is empty".into());
                } else if words.saturating_add(k).saturating_add(2) > t.context_length {
                    bad(
                        class,
                        format!(
                            "template {template:?} needs at least {} tokens (SOT + {k} prompts + {words} words + EOT) \
                             but text.context_length is {}",
                            words.saturating_add(k).saturating_add(2),
                            t.context_length
                        ),
                    );
                }
            }
        }
        if t.context_length < k.saturating_add(2) {
            bad(
                "text.context_length",
                format!(
                    "{} cannot hold SOT, {k} prompt tokens and EOT",
                    t.context_length
                ),
            );
        }

        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            bad(
                "temperature",
                format!("must be a positive number, found {}", self.temperature),
            );
        }
        let w = self.score.map_max_weight;
        if !(0.0..=1.0).contains(&w) {
            bad(
                "score.map_max_weight",
                format!("must lie in [0, 1], found {w}"),
            );
        }
        let sigma = self.postprocess.gaussian_sigma;
        if !(sigma.is_finite() && sigma >= 0.0) {
            bad(
                "postprocess.gaussian_sigma",
                format!("must be 0 (off) or a positive number of pixels, found {sigma}"),
            );
        } else if sigma > 0.0
            && self.image_size > 1
            && (4.0 * sigma).ceil() as usize >= self.image_size
        {
            // Reflect padding needs the kernel radius below the image side.
            bad(
                "postprocess.gaussian_sigma",
                format!(
                    "kernel radius ⌈4σ⌉ = {} must be below image_size {}",
                    (4.0 * sigma).ceil(),
                    self.image_size
                ),
            );
        }
        for (c, &m) in self.preprocess.mean.iter().enumerate() {
            if !m.is_finite() {
                bad(
                    "preprocess.mean",
                    format!("channel {c} is {m}, expected a finite number"),
                );
            }
        }
        for (c, &s) in self.preprocess.std.iter().enumerate() {
            if !(s.is_finite() && s > 0.0) {
                bad(
                    "preprocess.std",
                    format!("channel {c} is {s}, expected a positive number"),
                );
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl VisionSpec {
    pub fn mlp_width(&self) -> usize {
        mlp_width(self.width, self.mlp_ratio)
    }
}

impl TextSpec {
    pub fn mlp_width(&self) -> usize {
        mlp_width(self.width, self.mlp_ratio)
    }
}

fn mlp_width(width: usize, ratio: f64) -> usize {
    (width as f64 * ratio).round() as usize
}

// Upper bounds far above any CLIP (ViT-bigG: width 1664, 48 layers; 518 px inputs): a value past
// them is a typo, and refusing it keeps every size computed from the spec far from overflow and
// from allocations the machine cannot make.
const MAX_IMAGE_SIZE: usize = 8192;
const MAX_WIDTH: usize = 16384;
const MAX_LAYERS: usize = 512;
const MAX_MLP_RATIO: f64 = 64.0;
const MAX_VOCAB: usize = 1 << 20;
const MAX_CONTEXT: usize = 8192;

fn at_most(field: &str, value: usize, max: usize, bad: &mut impl FnMut(&str, String)) {
    if value > max {
        bad(
            field,
            format!("{value} is above the largest supported, {max}"),
        );
    }
}

fn check_tower(
    tower: &str,
    width: usize,
    layers: usize,
    heads: usize,
    mlp_ratio: f64,
    bad: &mut impl FnMut(&str, String),
) {
    if width == 0 {
        bad(&format!("{tower}.width"), "must be at least 1".into());
    }
    at_most(&format!("{tower}.width"), width, MAX_WIDTH, bad);
    if layers == 0 {
        bad(&format!("{tower}.layers"), "must be at least 1".into());
    }
    at_most(&format!("{tower}.layers"), layers, MAX_LAYERS, bad);
    if heads == 0 {
        bad(&format!("{tower}.heads"), "must be at least 1".into());
    } else if !width.is_multiple_of(heads) {
        bad(
            &format!("{tower}.heads"),
            format!("{heads} does not divide {tower}.width {width}"),
        );
    }
    let hidden = width as f64 * mlp_ratio;
    if !(mlp_ratio.is_finite() && mlp_ratio > 0.0) {
        bad(
            &format!("{tower}.mlp_ratio"),
            format!("must be a positive number, found {mlp_ratio}"),
        );
    } else if mlp_ratio > MAX_MLP_RATIO {
        bad(
            &format!("{tower}.mlp_ratio"),
            format!("{mlp_ratio} is above the largest supported, {MAX_MLP_RATIO}"),
        );
    } else if (hidden - hidden.round()).abs() > 1e-6 {
        bad(
            &format!("{tower}.mlp_ratio"),
            format!("{tower}.width {width} × {mlp_ratio} = {hidden} is not a whole number of hidden units"),
        );
    }
}
