//! Prompt templates → CLIP token ids (model-spec/README.md §4, text side):
//! `[SOT] + [id("X")]×M + BPE(template) + [EOT]`, zero-padded to `text.context_length`.
//!
//! CLIP's BPE (OpenAI vocabulary, lower-cased) via `instant-clip-tokenizer`; the golden
//! `fixtures/tokens.json` written by the reference (open_clip's tokenizer) proves the two agree.

use instant_clip_tokenizer::{Token, Tokenizer};

use crate::spec::Spec;

/// The placeholder word whose token fills the M prompt positions.
pub const PLACEHOLDER: &str = "X";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("prompts.{class}: template {template:?} needs {needed} tokens; text.context_length is {context_length}")]
pub struct TokenizeError {
    pub class: &'static str,
    pub template: String,
    pub needed: usize,
    pub context_length: usize,
}

/// The token ids of every template: (class index 0 normal / 1 anomaly, template, padded ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateTokens {
    pub class: usize,
    pub template: String,
    /// `context_length` ids, zero after EOT.
    pub ids: Vec<u32>,
    /// Index of the EOT token.
    pub eot: usize,
}

/// Unpadded ids of one template.
pub fn template_ids(tokenizer: &Tokenizer, top_k: usize, template: &str) -> Vec<u32> {
    let mut placeholder = Vec::new();
    tokenizer.encode(PLACEHOLDER, &mut placeholder);
    let mut tokens: Vec<Token> = vec![tokenizer.start_of_text()];
    for _ in 0..top_k {
        tokens.extend_from_slice(&placeholder);
    }
    tokenizer.encode(template, &mut tokens);
    tokens.push(tokenizer.end_of_text());
    tokens.into_iter().map(|t| u32::from(t.to_u16())).collect()
}

/// Every template of `spec`, normal first, in spec order.
pub fn tokenize_prompts(spec: &Spec) -> Result<Vec<TemplateTokens>, TokenizeError> {
    let tokenizer = Tokenizer::new();
    let ctx = spec.text.context_length;
    let classes = [
        ("normal", &spec.prompts.normal),
        ("anomaly", &spec.prompts.anomaly),
    ];
    let mut out = Vec::new();
    for (class, (name, templates)) in classes.into_iter().enumerate() {
        for template in templates.iter() {
            let mut ids = template_ids(&tokenizer, spec.slfs.top_k, template);
            if ids.len() > ctx {
                return Err(TokenizeError {
                    class: name,
                    template: template.clone(),
                    needed: ids.len(),
                    context_length: ctx,
                });
            }
            let eot = ids.len() - 1;
            ids.resize(ctx, 0);
            out.push(TemplateTokens {
                class,
                template: template.clone(),
                ids,
                eot,
            });
        }
    }
    Ok(out)
}
