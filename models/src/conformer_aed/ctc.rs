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
    ctc_prefix_beam_search_forced(log_probs, vocab, beam, blank, &[])
}

/// [`ctc_prefix_beam_search`] constrained to hypotheses that start with `forced` (hark's
/// extension for live dictation: text already shown as final is kept while the rest of
/// the utterance is decoded). A prefix shorter than `forced` may only grow by the next
/// forced token, which is a candidate at every frame even outside the frame's `beam`
/// best tokens; other tokens extend only complete prefixes. Hypotheses hold `forced`
/// followed by the continuation; their scores are the CTC log-probabilities of the
/// whole sequences. With `forced` empty this is exactly [`ctc_prefix_beam_search`].
/// Fails when no path through the audio emits all of `forced`.
pub fn ctc_prefix_beam_search_forced(
    log_probs: &[f32],
    vocab: usize,
    beam: usize,
    blank: u32,
    forced: &[u32],
) -> Result<Vec<Hypothesis>, ConformerError> {
    if beam == 0 || beam > vocab || vocab == 0 || !log_probs.len().is_multiple_of(vocab) {
        return Err(ConformerError::Input(format!(
            "ctc prefix beam search: beam {beam} must be in 1..={vocab} and {} log-probabilities a whole number of frames",
            log_probs.len()
        )));
    }
    if let Some(&t) = forced.iter().find(|&&t| t == blank || t as usize >= vocab) {
        return Err(ConformerError::Input(format!(
            "ctc prefix beam search: forced token {t} is the blank or outside the vocabulary ({vocab})"
        )));
    }
    let mut cur: Vec<(Vec<u32>, PrefixScore)> = vec![(
        Vec::new(),
        PrefixScore {
            s: 0.0,
            ns: f64::NEG_INFINITY,
        },
    )];
    // May `prefix` grow by `u`? Only by the next forced token while it is incomplete.
    let may_extend = |prefix: &[u32], u: u32| forced.get(prefix.len()).is_none_or(|&f| f == u);
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
        let mut tokens = top_k(logp, beam);
        for (prefix, _) in &cur {
            if let Some(&f) = forced.get(prefix.len()) {
                if !tokens.contains(&(f as usize)) {
                    tokens.push(f as usize);
                }
            }
        }
        for u in tokens {
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
                    if may_extend(prefix, u) {
                        let mut np = prefix.clone();
                        np.push(u);
                        let j = slot(np, &mut next);
                        next[j].1.ns = log_add(next[j].1.ns, ps.s + prob);
                    }
                } else if may_extend(prefix, u) {
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
    let hyps: Vec<Hypothesis> = cur
        .into_iter()
        .filter(|(tokens, _)| tokens.len() >= forced.len())
        .map(|(tokens, ps)| Hypothesis {
            tokens,
            score: ps.score() as f32,
        })
        .collect();
    if hyps.is_empty() {
        return Err(ConformerError::Input(format!(
            "ctc prefix beam search: no path through {} frames emits the {} forced tokens",
            log_probs.len() / vocab,
            forced.len()
        )));
    }
    Ok(hyps)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `[frames × vocab]` log-probabilities from per-frame probabilities.
    fn log_probs(frames: &[&[f32]]) -> Vec<f32> {
        frames
            .iter()
            .flat_map(|f| {
                let sum: f32 = f.iter().sum();
                f.iter().map(move |p| (p / sum).ln())
            })
            .collect()
    }

    /// Exact CTC log-probability of `labels` (forward algorithm over the blank-extended
    /// sequence), the reference for the search's scores.
    fn ctc_forward(lp: &[f32], vocab: usize, blank: u32, labels: &[u32]) -> f64 {
        let mut ext = vec![blank];
        for &l in labels {
            ext.extend([l, blank]);
        }
        let mut alpha = vec![f64::NEG_INFINITY; ext.len()];
        for (t, row) in lp.chunks_exact(vocab).enumerate() {
            let mut next = vec![f64::NEG_INFINITY; ext.len()];
            for s in 0..ext.len() {
                let p = row[ext[s] as usize] as f64;
                let mut a = if t == 0 {
                    if s < 2 {
                        0.0
                    } else {
                        f64::NEG_INFINITY
                    }
                } else {
                    alpha[s]
                };
                if t > 0 && s >= 1 {
                    a = log_add(a, alpha[s - 1]);
                }
                if t > 0 && s >= 2 && ext[s] != blank && ext[s] != ext[s - 2] {
                    a = log_add(a, alpha[s - 2]);
                }
                next[s] = a + p;
            }
            alpha = next;
        }
        let n = ext.len();
        log_add(alpha[n - 1], alpha[n - 2])
    }

    // vocab: 0 = blank, 1 = a, 2 = b, 3 = c. Clear audio: "a b c" with blanks between.
    fn abc() -> Vec<f32> {
        log_probs(&[
            &[0.1, 0.8, 0.05, 0.05],
            &[0.8, 0.1, 0.05, 0.05],
            &[0.1, 0.05, 0.8, 0.05],
            &[0.8, 0.05, 0.1, 0.05],
            &[0.1, 0.05, 0.05, 0.8],
            &[0.8, 0.05, 0.05, 0.1],
        ])
    }

    #[test]
    fn forced_prefix_agreeing_with_the_audio_gives_the_unconstrained_best() {
        let lp = abc();
        let free = ctc_prefix_beam_search(&lp, 4, 3, 0).unwrap();
        assert_eq!(free[0].tokens, vec![1, 2, 3]);
        for k in 0..=3 {
            let forced = &free[0].tokens[..k];
            let hyps = ctc_prefix_beam_search_forced(&lp, 4, 3, 0, forced).unwrap();
            assert_eq!(hyps[0].tokens, free[0].tokens, "forced {forced:?}");
            // Pruning makes beam scores lower bounds of the exact probability; the
            // constraint leaves more of the beam to the forced paths, never less.
            let exact = ctc_forward(&lp, 4, 0, &free[0].tokens);
            assert!(hyps[0].score >= free[0].score - 1e-5, "forced {forced:?}");
            assert!(hyps[0].score as f64 <= exact + 1e-5, "forced {forced:?}");
            assert!(hyps.iter().all(|h| h.tokens.starts_with(forced)));
        }
    }

    #[test]
    fn forced_prefix_against_the_audio_is_kept_and_the_rest_decoded() {
        // The audio says "a b c"; the prefix says "c": the continuation still reads "b c"
        // or similar, every hypothesis starts with "c", scores are (pruned) CTC
        // probabilities of their sequences: never above the exact ones.
        let lp = abc();
        let hyps = ctc_prefix_beam_search_forced(&lp, 4, 3, 0, &[3]).unwrap();
        assert!(!hyps.is_empty());
        for h in &hyps {
            assert_eq!(h.tokens[0], 3, "{:?}", h.tokens);
            let exact = ctc_forward(&lp, 4, 0, &h.tokens);
            assert!(
                h.score as f64 <= exact + 1e-4,
                "{:?}: {} > exact {exact}",
                h.tokens,
                h.score
            );
        }
        assert_eq!(hyps[0].tokens, vec![3, 2, 3]);
    }

    #[test]
    fn forced_prefix_with_a_repeated_token_needs_a_blank_between() {
        // "a a" must be emitted as a, blank, a: frames 0 and 2 say "a", frame 1 blank.
        let lp = log_probs(&[
            &[0.1, 0.8, 0.05, 0.05],
            &[0.8, 0.1, 0.05, 0.05],
            &[0.1, 0.8, 0.05, 0.05],
        ]);
        let hyps = ctc_prefix_beam_search_forced(&lp, 4, 2, 0, &[1, 1]).unwrap();
        assert_eq!(hyps[0].tokens, vec![1, 1]);
        let exact = ctc_forward(&lp, 4, 0, &[1, 1]);
        assert!((hyps[0].score as f64 - exact).abs() < 1e-4);
    }

    #[test]
    fn forced_prefix_longer_than_the_audio_allows_is_an_error() {
        let lp = abc();
        let err = ctc_prefix_beam_search_forced(&lp, 4, 3, 0, &[1, 1, 1, 1]).unwrap_err();
        assert!(err.to_string().contains("forced tokens"), "{err}");
        let err = ctc_prefix_beam_search_forced(&lp, 4, 3, 0, &[0]).unwrap_err();
        assert!(err.to_string().contains("blank"), "{err}");
    }
}
