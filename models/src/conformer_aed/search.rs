//! Beam search with FireRedASR's scoring.
//!
//! Follows `TransformerDecoder.batch_beam_search` in FireRedASR
//! `fireredasr/models/module/transformer_decoder.py`: all beams advance together as rows of
//! one decoder step; per-step scores are `log_softmax(logits / softmax_smoothing)` with the
//! `<eos>` score multiplied by `eos_penalty`; every beam proposes its top `beam_size`
//! tokens, finished beams propose only `<eos>` at no cost; the best `beam_size` of the
//! `beam_size²` candidates survive. The search stops when every beam has finished or after
//! `decode_max_len` steps (default: the number of encoder frames). Final scores are divided
//! by the GNMT length penalty `((5 + len) / 6)^length_penalty`, where `len` counts `<sos>`
//! and the hypothesis tokens, as the reference does.

use super::decoder::{CpuSteps, CrossKv, DecoderSteps, TransformerDecoder};
use super::error::ConformerError;
use super::nn::log_softmax;

/// The reference's stand-in for -∞ in beam scores.
const INF: f32 = 1e10;

/// Decoding options, named after FireRedASR's `transcribe` arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct BeamSearchOptions {
    /// Beams kept per step (`beam_size`).
    pub beam_size: usize,
    /// Hypotheses returned (`nbest`, ≤ `beam_size`).
    pub nbest: usize,
    /// Maximum steps; 0 = number of encoder frames (`decode_max_len`).
    pub decode_max_len: usize,
    /// Logit temperature (`softmax_smoothing`).
    pub softmax_smoothing: f32,
    /// GNMT length-penalty exponent (`aed_length_penalty`); 0 disables it.
    pub length_penalty: f32,
    /// Multiplier of the `<eos>` log-probability, in (0, 1] (`eos_penalty`).
    pub eos_penalty: f32,
}

impl Default for BeamSearchOptions {
    fn default() -> Self {
        Self {
            beam_size: 1,
            nbest: 1,
            decode_max_len: 0,
            softmax_smoothing: 1.0,
            length_penalty: 0.0,
            eos_penalty: 1.0,
        }
    }
}

/// One n-best entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Token ids without `<sos>` and `<eos>`.
    pub tokens: Vec<u32>,
    /// Accumulated log-probability after the length penalty (higher is better).
    pub score: f32,
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
fn top_k(x: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[b].total_cmp(&x[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Rejects beam sizes the vocabulary cannot fill and penalties outside their range.
fn check_options(dec: &TransformerDecoder, opts: &BeamSearchOptions) -> Result<(), ConformerError> {
    let b = opts.beam_size;
    if b == 0 || opts.nbest == 0 || opts.nbest > b || b > dec.vocab() {
        return Err(ConformerError::Input(format!(
            "beam_size {b} / nbest {} invalid (need 1 <= nbest <= beam_size <= vocabulary {})",
            opts.nbest,
            dec.vocab()
        )));
    }
    if !(opts.eos_penalty > 0.0 && opts.eos_penalty <= 1.0) || opts.softmax_smoothing <= 0.0 {
        return Err(ConformerError::Input(format!(
            "eos_penalty {} must be in (0, 1] and softmax_smoothing {} > 0",
            opts.eos_penalty, opts.softmax_smoothing
        )));
    }
    Ok(())
}

/// Runs the beam search over one utterance's cross-attention K/V on the CPU.
pub fn beam_search(
    dec: &TransformerDecoder,
    cross: &CrossKv,
    frames: usize,
    sos: u32,
    eos: u32,
    opts: &BeamSearchOptions,
) -> Result<Vec<Hypothesis>, ConformerError> {
    check_options(dec, opts)?;
    let state = dec.new_state_with_capacity(opts.beam_size, max_steps(dec, frames, opts) + 1);
    let mut steps = CpuSteps { dec, state, cross };
    beam_search_with(&mut steps, dec, frames, sos, eos, opts)
}

/// Steps the search takes at most: `decode_max_len`, or the encoder frames, capped by the
/// positional table (`<sos>` takes one position).
pub fn max_steps(dec: &TransformerDecoder, frames: usize, opts: &BeamSearchOptions) -> usize {
    let maxlen = if opts.decode_max_len > 0 {
        opts.decode_max_len
    } else {
        frames
    };
    maxlen.min(dec.max_positions().saturating_sub(1))
}

/// Runs the beam search stepping `steps` (the CPU decoder, or a delegate's session with
/// room for `opts.beam_size` rows and [`max_steps`] + 1 positions).
pub fn beam_search_with(
    steps: &mut dyn DecoderSteps,
    dec: &TransformerDecoder,
    frames: usize,
    sos: u32,
    eos: u32,
    opts: &BeamSearchOptions,
) -> Result<Vec<Hypothesis>, ConformerError> {
    check_options(dec, opts)?;
    let b = opts.beam_size;
    let maxlen = max_steps(dec, frames, opts);
    let mut ys: Vec<Vec<u32>> = vec![vec![sos]; b];
    let mut scores: Vec<f32> = (0..b).map(|i| if i == 0 { 0.0 } else { -INF }).collect();
    let mut finished = vec![false; b];
    let v = dec.vocab();
    for _ in 0..maxlen {
        let last: Vec<u32> = ys.iter().map(|y| y[y.len() - 1]).collect();
        let logits = steps.step(&last)?;
        // (score, source beam, token), candidate index = beam * b + rank.
        let mut cand: Vec<(f32, usize, u32)> = Vec::with_capacity(b * b);
        for i in 0..b {
            if finished[i] {
                for r in 0..b {
                    let s = if r == 0 { 0.0 } else { -INF };
                    cand.push((scores[i] + s, i, eos));
                }
                continue;
            }
            let mut t = log_softmax(&logits[i * v..][..v], opts.softmax_smoothing);
            t[eos as usize] *= opts.eos_penalty;
            for tok in top_k(&t, b) {
                cand.push((scores[i] + t[tok], i, tok as u32));
            }
        }
        let cs: Vec<f32> = cand.iter().map(|c| c.0).collect();
        let pick = top_k(&cs, b);
        let src: Vec<usize> = pick.iter().map(|&c| cand[c].1).collect();
        steps.reorder(&src)?;
        ys = pick
            .iter()
            .map(|&c| {
                let mut y = ys[cand[c].1].clone();
                y.push(cand[c].2);
                y
            })
            .collect();
        scores = pick.iter().map(|&c| cand[c].0).collect();
        finished = pick.iter().map(|&c| cand[c].2 == eos).collect();
        if finished.iter().all(|&f| f) {
            break;
        }
    }
    // Length penalty (GNMT) and n-best selection.
    let lens: Vec<usize> = ys
        .iter()
        .map(|y| y.iter().filter(|&&t| t != eos).count())
        .collect();
    if opts.length_penalty > 0.0 {
        for (s, &l) in scores.iter_mut().zip(&lens) {
            *s /= ((5.0 + l as f32) / 6.0).powf(opts.length_penalty);
        }
    }
    Ok(top_k(&scores, opts.nbest)
        .into_iter()
        .map(|i| Hypothesis {
            tokens: ys[i][1..lens[i]].to_vec(),
            score: scores[i],
        })
        .collect())
}
