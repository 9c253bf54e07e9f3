//! Optional CTC head: CTC prefix beam search + attention rescoring (WeNet's runtime mode).
//!
//! Follows WeNet `wenet/transformer/search.py` (`ctc_prefix_beam_search`,
//! `attention_rescoring`) and the CTC module `ctc.ctc_lo` of ESPnet/WeNet:
//! * the head is a Linear `[vocab × d]` + bias over the encoder output, then `log_softmax`;
//! * prefix beam search keeps, per prefix, the log-probabilities of the paths ending in blank
//!   (`s`) and in a non-blank (`ns`); each frame first keeps the `beam` most likely tokens,
//!   extends every kept prefix with them (blank: stays; repeat of the last token: stays via
//!   `ns`, extends via `s`; other tokens: extend), then keeps the `beam` best prefixes by
//!   `logaddexp(s, ns)`. New prefixes are ranked in first-touched order on ties (Python's
//!   stable sort over an insertion-ordered dict), which [`ctc_prefix_beam_search`] mirrors;
//! * attention rescoring feeds `<sos> + prefix` to the decoder (teacher forcing), sums the
//!   decoder's log-probabilities of the prefix tokens and of `<eos>`, and adds
//!   `ctc_weight × ctc score`; the best is the first maximum.
//!
//! Scores are accumulated in f64 as the reference's Python floats are.

use std::collections::HashMap;

use super::config::ConformerConfig;
use super::decoder::{CrossKv, SessionSteps, TransformerDecoder};
use super::encoder::load_linear;
use super::error::ConformerError;
use super::nn::{log_softmax, Linear};
use super::search::Hypothesis;
use super::weights::TensorStore;

/// The CTC output layer (`ctc.ctc_lo`).
#[derive(Debug, Clone)]
pub struct CtcHead {
    lo: Linear,
    blank: u32,
}

impl CtcHead {
    /// Takes `ctc.ctc_lo.{weight,bias}`.
    pub fn load(ws: &mut TensorStore, cfg: &ConformerConfig) -> Result<Self, ConformerError> {
        Ok(Self {
            lo: load_linear(ws, "ctc.ctc_lo", cfg.d_model, cfg.odim, true)?,
            blank: cfg.blank_id,
        })
    }

    /// Blank id.
    pub fn blank(&self) -> u32 {
        self.blank
    }

    /// `log_softmax(ctc_lo(enc))` of the first `frames` rows: `[frames × vocab]`.
    pub fn log_probs(&self, enc: &[f32], frames: usize) -> Vec<f32> {
        let d = self.lo.k;
        let logits = self.lo.forward(&enc[..frames * d]);
        logits
            .chunks_exact(self.lo.n)
            .flat_map(|row| log_softmax(row, 1.0))
            .collect()
    }
}

fn log_add(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

#[derive(Debug, Clone, Copy)]
struct PrefixScore {
    s: f64,
    ns: f64,
}

impl PrefixScore {
    fn score(&self) -> f64 {
        log_add(self.s, self.ns)
    }
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
fn top_k(x: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[b].total_cmp(&x[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// CTC prefix beam search over `[frames × vocab]` log-probabilities: the `beam` best
/// prefixes with their CTC scores (log-probability), best first.
pub fn ctc_prefix_beam_search(
    log_probs: &[f32],
    vocab: usize,
    beam: usize,
    blank: u32,
) -> Result<Vec<Hypothesis>, ConformerError> {
    if beam == 0 || beam > vocab || vocab == 0 || !log_probs.len().is_multiple_of(vocab) {
        return Err(ConformerError::Input(format!(
            "ctc prefix beam search: beam {beam} must be in 1..={vocab} and {} log-probabilities a whole number of frames",
            log_probs.len()
        )));
    }
    let mut cur: Vec<(Vec<u32>, PrefixScore)> = vec![(
        Vec::new(),
        PrefixScore {
            s: 0.0,
            ns: f64::NEG_INFINITY,
        },
    )];
    for logp in log_probs.chunks_exact(vocab) {
        let mut next: Vec<(Vec<u32>, PrefixScore)> = Vec::new();
        let mut index: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut slot = |prefix: Vec<u32>, next: &mut Vec<(Vec<u32>, PrefixScore)>| -> usize {
            *index.entry(prefix.clone()).or_insert_with(|| {
                next.push((
                    prefix,
                    PrefixScore {
                        s: f64::NEG_INFINITY,
                        ns: f64::NEG_INFINITY,
                    },
                ));
                next.len() - 1
            })
        };
        for u in top_k(logp, beam) {
            let u = u as u32;
            let prob = logp[u as usize] as f64;
            for (prefix, ps) in &cur {
                let last = prefix.last().copied();
                if u == blank {
                    let i = slot(prefix.clone(), &mut next);
                    next[i].1.s = log_add(next[i].1.s, ps.score() + prob);
                } else if Some(u) == last {
                    let i = slot(prefix.clone(), &mut next);
                    next[i].1.ns = log_add(next[i].1.ns, ps.ns + prob);
                    let mut np = prefix.clone();
                    np.push(u);
                    let j = slot(np, &mut next);
                    next[j].1.ns = log_add(next[j].1.ns, ps.s + prob);
                } else {
                    let mut np = prefix.clone();
                    np.push(u);
                    let j = slot(np, &mut next);
                    next[j].1.ns = log_add(next[j].1.ns, ps.score() + prob);
                }
            }
        }
        // Stable sort: ties keep first-touched order.
        next.sort_by(|a, b| b.1.score().total_cmp(&a.1.score()));
        next.truncate(beam);
        cur = next;
    }
    Ok(cur
        .into_iter()
        .map(|(tokens, ps)| Hypothesis {
            tokens,
            score: ps.score() as f32,
        })
        .collect())
}

/// Attention rescoring of CTC n-best `hyps` (scores = CTC log-probabilities): returns them
/// with `decoder score + ctc_weight × ctc score`, best first (ties: CTC order). The
/// decoder runs on the CPU, one teacher-forced position at a time.
pub fn attention_rescoring(
    dec: &TransformerDecoder,
    cross: &CrossKv,
    hyps: &[Hypothesis],
    sos: u32,
    eos: u32,
    ctc_weight: f32,
) -> Result<Vec<Hypothesis>, ConformerError> {
    rescore(hyps, sos, eos, dec.vocab(), ctc_weight, |prefix| {
        let mut state = dec.new_state_with_capacity(1, prefix.len());
        let mut out = Vec::with_capacity(prefix.len() * dec.vocab());
        for &t in prefix {
            out.extend(dec.step(&[t], &mut state, cross)?);
        }
        Ok(out)
    })
}

/// [`attention_rescoring`] with the decoder on a delegate's session: each hypothesis is
/// one shared prompt step (`<sos>` + its tokens) whose rows' logits score it.
pub fn attention_rescoring_with_session(
    steps: &mut SessionSteps,
    vocab: usize,
    hyps: &[Hypothesis],
    sos: u32,
    eos: u32,
    ctc_weight: f32,
) -> Result<Vec<Hypothesis>, ConformerError> {
    rescore(hyps, sos, eos, vocab, ctc_weight, |prefix| {
        steps.prompt_logits(prefix)
    })
}

/// The rescoring itself: `logits_of(<sos> + tokens)` gives the teacher-forced logits
/// `[len × vocab]`, row `i` predicting token `i` of `tokens + <eos>`.
fn rescore(
    hyps: &[Hypothesis],
    sos: u32,
    eos: u32,
    v: usize,
    ctc_weight: f32,
    mut logits_of: impl FnMut(&[u32]) -> Result<Vec<f32>, ConformerError>,
) -> Result<Vec<Hypothesis>, ConformerError> {
    let mut out = Vec::with_capacity(hyps.len());
    for h in hyps {
        if let Some(&w) = h.tokens.iter().find(|&&w| w as usize >= v) {
            return Err(ConformerError::Input(format!(
                "attention rescoring: token id {w} outside the vocabulary ({v})"
            )));
        }
        let prefix: Vec<u32> = std::iter::once(sos)
            .chain(h.tokens.iter().copied())
            .collect();
        let logits = logits_of(&prefix)?;
        let mut score = 0.0f64;
        for (i, &w) in h.tokens.iter().chain(std::iter::once(&eos)).enumerate() {
            let lp = log_softmax(&logits[i * v..(i + 1) * v], 1.0);
            score += lp[w as usize] as f64;
        }
        score += h.score as f64 * ctc_weight as f64;
        out.push((h.tokens.clone(), score));
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(out
        .into_iter()
        .map(|(tokens, s)| Hypothesis {
            tokens,
            score: s as f32,
        })
        .collect())
}
