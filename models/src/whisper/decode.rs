//! Decoding of one 30 s window: greedy, beam search and temperature sampling, with
//! Whisper's logit rules — following CTranslate2 (`src/decoding.cc` BeamSearch /
//! GreedySearch, `src/models/whisper.cc` WhisperReplica::generate and
//! ApplyTimestampRules), which is what faster-whisper runs.
//!
//! Behaviour kept from CTranslate2 on purpose (it decides parity with faster-whisper):
//! - the prompt is split at the last task token: everything before it is forwarded in
//!   one pass, decoding starts from it, and `max_length = min(448/2, 448 - start_step)`;
//! - no-speech probability = softmax of the raw logits at `<|startoftranscript|>`;
//! - logit rules in order: suppress tokens, suppress-at-begin (step 0), timestamp rules
//!   (no `<|notimestamps|>`; first token must be a timestamp ≤ max initial; pairs;
//!   monotonic; if the timestamp mass beats the best text token, force a timestamp);
//! - beam search keeps 2×beam candidates per step, registers candidates ending in EOT
//!   as finished (scored by cumulative log-prob) and refills the beam from the
//!   remaining candidates; it stops once `round(beam × patience)` hypotheses finished;
//!   final scores are divided by `length^length_penalty` (length without EOT);
//! - greedy scores are the sum of the chosen tokens' log-probs (EOT included), divided
//!   the same way.

use rand::Rng;

use super::error::{Result, WhisperError};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::model::{check_cancel, DecodeRows, DecoderState, WhisperModel};

/// Special token ids the decoder needs.
#[derive(Debug, Clone, Copy)]
pub struct SpecialTokens {
    /// `<|endoftext|>`
    pub eot: u32,
    /// `<|startoftranscript|>`
    pub sot: u32,
    /// `<|notimestamps|>`
    pub no_timestamps: u32,
    /// `<|nospeech|>` / `<|nocaptions|>`
    pub no_speech: u32,
    /// first timestamp token `<|0.00|>`
    pub timestamp_begin: u32,
    /// last token id (the last timestamp)
    pub timestamp_end: u32,
}

/// Options of one window's decoding (CTranslate2 `WhisperOptions` names).
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Beam width (1 = greedy).
    pub beam_size: usize,
    /// Beam patience factor.
    pub patience: f32,
    /// Length penalty exponent of the final score.
    pub length_penalty: f32,
    /// Sampling temperature (0 = deterministic).
    pub sampling_temperature: f32,
    /// Number of sampled hypotheses when `sampling_temperature > 0`.
    pub num_hypotheses: usize,
    /// Maximum total length (prompt + generated), 448.
    pub max_length: usize,
    /// At most this many tokens generated after the prompt and the forced prefix
    /// (faster-whisper's `max_new_tokens`); `None` = up to `max_length / 2`.
    pub max_new_tokens: Option<usize>,
    /// Token ids never generated.
    pub suppress_tokens: Vec<u32>,
    /// Token ids suppressed at the first step (`suppress_blank`).
    pub begin_suppress_tokens: Vec<u32>,
    /// Index of the largest allowed first timestamp (1.0 s / 0.02 = 50).
    pub max_initial_timestamp_index: u32,
    /// Seed of the sampler.
    pub seed: u64,
    /// Cancellation flag, read before every decoder step: once set, decoding stops
    /// with [`WhisperError::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            beam_size: 5,
            patience: 1.0,
            length_penalty: 1.0,
            sampling_temperature: 0.0,
            num_hypotheses: 1,
            max_length: 448,
            max_new_tokens: None,
            suppress_tokens: Vec::new(),
            begin_suppress_tokens: Vec::new(),
            max_initial_timestamp_index: 50,
            seed: 0,
            cancel: None,
        }
    }
}

/// Result of decoding one window.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated token ids (without the prompt and without EOT).
    pub tokens: Vec<u32>,
    /// Final score: cumulative log-prob / length^length_penalty (a forced prefix
    /// included: its tokens count in both).
    pub score: f32,
    /// Probability of the no-speech token at the start of the transcript.
    pub no_speech_prob: f32,
}

/// What [`apply_rules`] knows about a row after applying the rules: every entry
/// outside `lo..hi` is `-inf`, and `lse` is the row's log-sum-exp when the rules
/// already computed it (the timestamp-mass check, when it masked nothing).
#[derive(Debug, Clone, Copy)]
struct Ruled {
    lo: usize,
    hi: usize,
    lse: Option<f32>,
}

impl Ruled {
    /// The log-sum-exp of the ruled `row` (`max + ln Σ exp(x - max)`, the operations
    /// and summation order of [`row_lse`]): reused when known, else computed
    /// over `lo..hi` only. Skipping the `-inf` entries outside the range is exact:
    /// their `exp` is `+0`, and adding `+0` to a partial sum (or a partial sum to `±0`)
    /// changes nothing. A row with no finite entry falls back to the whole row.
    fn lse(&self, row: &[f32]) -> f32 {
        if let Some(l) = self.lse {
            return l;
        }
        let l = row_lse(&row[self.lo..self.hi]);
        if l.is_nan() || self.lo >= self.hi {
            row_lse(row)
        } else {
            l
        }
    }
}

/// `max + ln Σ exp(x - max)` of a row (max-shifted, f32, scalar `exp`, summed in
/// order: the operations CTranslate2's CPU `log_softmax` performs, which keeps beam
/// scores identical to faster-whisper's). A token's log-prob is `x - lse`.
fn row_lse(row: &[f32]) -> f32 {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
    max + sum.ln()
}

/// Applies the Whisper logit rules to one row of logits (in place; disabled entries are
/// set to -inf). `seq` = tokens generated so far by this row, `step` = its length.
///
/// The timestamp-mass rule compares log-probabilities of the row; it needs only the
/// row's log-sum-exp `lse` (one pass with `exp`), since `max_i (x_i - lse)` equals
/// `max_i x_i - lse` in floating point (subtracting a constant is monotonic), and the
/// timestamp entries' log-probs `x_i - lse` are recomputed as the full log-softmax
/// would have stored them. When the rule masks nothing, `lse` is handed back so the
/// search does not compute it again.
fn apply_rules(
    logits: &mut [f32],
    seq: &[u32],
    opts: &GenerateOptions,
    sp: &SpecialTokens,
    timestamps: bool,
) -> Ruled {
    let n = logits.len();
    let mut ruled = Ruled {
        lo: 0,
        hi: n,
        lse: None,
    };
    let step = seq.len();
    for &t in &opts.suppress_tokens {
        if let Some(v) = logits.get_mut(t as usize) {
            *v = f32::NEG_INFINITY;
        }
    }
    if step == 0 {
        for &t in &opts.begin_suppress_tokens {
            if let Some(v) = logits.get_mut(t as usize) {
                *v = f32::NEG_INFINITY;
            }
        }
    }
    if !timestamps {
        return ruled;
    }
    let tb = sp.timestamp_begin as usize;
    let te = (sp.timestamp_end as usize).min(n - 1);
    logits[sp.no_timestamps as usize] = f32::NEG_INFINITY;
    let mut check_prob = false;
    if step == 0 {
        logits[..tb].fill(f32::NEG_INFINITY);
        ruled.lo = tb;
        let maxi = tb + opts.max_initial_timestamp_index as usize;
        if maxi < te {
            logits[maxi + 1..=te].fill(f32::NEG_INFINITY);
            if te + 1 == n {
                ruled.hi = maxi + 1;
            }
        }
    } else {
        let last = seq[step - 1] as usize;
        if last >= tb {
            let penult = if step >= 2 {
                seq[step - 2] as usize
            } else {
                last
            };
            if penult >= tb {
                logits[tb..=te].fill(f32::NEG_INFINITY);
                if te + 1 == n {
                    ruled.hi = tb;
                }
            } else {
                let eot = (sp.eot as usize).min(n);
                logits[..eot].fill(f32::NEG_INFINITY);
                ruled.lo = eot;
                check_prob = true;
            }
        } else {
            check_prob = true;
        }
        if let Some(&lastts) = seq.iter().rev().find(|&&t| t as usize >= tb) {
            logits[tb..lastts as usize].fill(f32::NEG_INFINITY);
        }
    }
    if check_prob {
        let lse = ruled.lse(logits);
        // log-probs are `x - lse`: the best text token's is `max(x) - lse`
        let text = &logits[ruled.lo.min(tb)..ruled.hi.min(tb)];
        let max_text = text.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) - lse;
        let max_text = if max_text.is_nan() {
            f32::NEG_INFINITY
        } else {
            max_text
        };
        let ts = &logits[tb..=te];
        let m = ts
            .iter()
            .map(|&v| v - lse)
            .fold(f32::NEG_INFINITY, |a, b| a.max(b));
        let ts_lse = if m == f32::NEG_INFINITY {
            m
        } else {
            m + ts.iter().map(|&v| ((v - lse) - m).exp()).sum::<f32>().ln()
        };
        if ts_lse > max_text {
            logits[..tb].fill(f32::NEG_INFINITY);
            ruled.lo = ruled.lo.max(tb);
        } else if lse.is_finite() {
            ruled.lse = Some(lse);
        }
    }
    ruled
}

fn no_speech_prob(logits: &[f32], id: u32) -> f32 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let sum: f32 = logits.iter().map(|&v| (v - max).exp()).sum();
    logits
        .get(id as usize)
        .map_or(0.0, |&v| (v - max).exp() / sum)
}

/// Decodes one window whose audio was set with [`WhisperModel::set_audio`].
/// `prompt` = `[<|startofprev|> previous text…] <|startoftranscript|> [lang task]
/// [<|notimestamps|>] [forced prefix…]`.
///
/// Tokens after the task tokens are a forced decoder prefix (CTranslate2's
/// `prefix_ids`, faster-whisper's `prefix`: with timestamps it starts with
/// `<|0.00|>`): the decoder follows them, then continues on its own. They are
/// forwarded with the prompt in one pass, the search starts after them, and the logit
/// rules see them as already generated (so the step-0 rules do not apply after a
/// prefix, and timestamp pairing counts its timestamps). [`Generation::tokens`] holds
/// only what follows the prefix; [`Generation::score`] covers the whole sequence, the
/// prefix's log-probs and length included (as CTranslate2 scores a forced prefix).
pub fn generate(
    model: &WhisperModel,
    st: &mut DecoderState,
    prompt: &[u32],
    sp: &SpecialTokens,
    opts: &GenerateOptions,
) -> Result<Generation> {
    let sot_index = prompt.iter().position(|&t| t == sp.sot).ok_or_else(|| {
        WhisperError::Invalid("the prompt has no <|startoftranscript|> token".into())
    })?;
    let mut prompt_length = sot_index;
    while prompt_length < prompt.len()
        && prompt[prompt_length] >= sp.sot
        && prompt[prompt_length] <= sp.no_timestamps
    {
        prompt_length += 1;
    }
    let forced = &prompt[prompt_length..];
    let timestamps = prompt[prompt_length - 1] != sp.no_timestamps;
    // Forwarded in one shared pass: the prompt up to the token the search feeds first
    // (the last task token, or the last token of a forced prefix).
    let (before, start_token) = match forced.split_last() {
        None => (&prompt[..prompt_length - 1], prompt[prompt_length - 1]),
        Some((&last, _)) => (&prompt[..prompt.len() - 1], last),
    };
    let rows_needed = opts.beam_size.max(opts.num_hypotheses).max(1);
    if rows_needed > st.max_beams() {
        return Err(WhisperError::Invalid(format!(
            "{rows_needed} decoder rows requested but the state holds {}",
            st.max_beams()
        )));
    }
    st.reset();
    let mut nsp = None;
    if !before.is_empty() {
        model.decode_step(st, before, DecodeRows::Shared)?;
        if sot_index < before.len() {
            let lg = model.step_logits(st, sot_index, 1)?;
            nsp = Some(no_speech_prob(lg, sp.no_speech));
        }
    }
    // The forced tokens' log-probs (after the logit rules, as the search would have
    // scored them) start every hypothesis's score, so that length normalisation ranks
    // whole sequences as a decode without the prefix does. One projection for all rows.
    let mut forced_score = 0f32;
    if !forced.is_empty() {
        let v = model.dims().n_vocab;
        let logits = model.step_logits(st, prompt_length - 1, forced.len())?;
        let scored = par_rows(logits, v, forced.len(), |i, row| {
            let t = forced[i] as usize;
            // The raw distribution is needed only when the rules forbid the token: keep
            // a copy of the row (cheaper than its log-sum-exp; once per prefix token and
            // decode) and compute that lse only then.
            let raw_row = row.to_vec();
            let ruled = apply_rules(row, &forced[..i], opts, sp, timestamps);
            let x = row.get(t).copied().unwrap_or(f32::NEG_INFINITY);
            let ruled = x - ruled.lse(row);
            // A prefix token the rules forbid is scored by the raw distribution.
            if ruled.is_finite() {
                ruled
            } else {
                let x = raw_row.get(t).copied().unwrap_or(f32::NEG_INFINITY);
                x - row_lse(&raw_row)
            }
        });
        forced_score = scored.into_iter().fold(0f32, |a, b| a + b);
    }
    let start_step = st.len();
    let max_steps = (opts.max_length / 2).min(opts.max_length.saturating_sub(start_step));
    let max_steps = opts
        .max_new_tokens
        .map_or(max_steps, |n| max_steps.min(n.max(1)));
    if max_steps == 0 {
        return Err(WhisperError::Invalid(
            "the prompt fills the whole decoder context".into(),
        ));
    }
    if opts.sampling_temperature > 0.0 || opts.beam_size <= 1 {
        let n = if opts.sampling_temperature > 0.0 {
            opts.num_hypotheses.max(1)
        } else {
            1
        };
        greedy(
            model,
            st,
            (start_token, forced, forced_score),
            sp,
            opts,
            timestamps,
            n,
            max_steps,
            nsp,
        )
    } else {
        beam_search(
            model,
            st,
            (start_token, forced, forced_score),
            sp,
            opts,
            timestamps,
            max_steps,
            nsp,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn greedy(
    model: &WhisperModel,
    st: &mut DecoderState,
    (start, forced, forced_score): (u32, &[u32], f32),
    sp: &SpecialTokens,
    opts: &GenerateOptions,
    timestamps: bool,
    n: usize,
    max_steps: usize,
    mut nsp: Option<f32>,
) -> Result<Generation> {
    let v = model.dims().n_vocab;
    let mut rng = rand::rngs::StdRng::seed_from_u64_compat(opts.seed);
    // Sequences include the forced prefix (the logit rules see it), stripped at the end.
    let mut seqs: Vec<Vec<u32>> = vec![forced.to_vec(); n];
    let mut scores = vec![forced_score; n];
    let mut done = vec![false; n];
    let mut next = vec![start; n];
    let mut lp = vec![0f32; v];
    let mut active: Vec<usize> = Vec::with_capacity(n);
    let mut toks: Vec<u32> = Vec::with_capacity(n);
    for step in 0..max_steps {
        active.clear();
        active.extend((0..n).filter(|&i| !done[i]));
        if active.is_empty() {
            break;
        }
        toks.clear();
        toks.extend(active.iter().map(|&i| next[i]));
        check_cancel(opts.cancel.as_deref())?;
        model.decode_step(st, &toks, DecodeRows::Beams(&active))?;
        let logits = model.step_logits(st, 0, active.len())?;
        let picked = par_rows(logits, v, active.len(), |r, row| {
            let i = active[r];
            let nsp_row =
                (step == 0 && r == 0 && nsp.is_none()).then(|| no_speech_prob(row, sp.no_speech));
            let ruled = apply_rules(row, &seqs[i], opts, sp, timestamps);
            let lse = ruled.lse(row);
            (nsp_row, ruled, lse)
        });
        for (r, &i) in active.iter().enumerate() {
            let row = &logits[r * v..(r + 1) * v];
            let (nsp_row, ruled, lse) = picked[r];
            if nsp_row.is_some() && nsp.is_none() {
                nsp = nsp_row;
            }
            let (tok, tok_lp) = if opts.sampling_temperature > 0.0 {
                for (o, &x) in lp.iter_mut().zip(row) {
                    *o = x - lse;
                }
                let tok = sample(&lp, opts.sampling_temperature, &mut rng);
                (tok, lp[tok])
            } else {
                argmax_lp(row, ruled, lse)
            };
            scores[i] += tok_lp;
            let tok = tok as u32;
            let last = step + 1 == max_steps;
            if tok == sp.eot {
                done[i] = true;
            } else {
                seqs[i].push(tok);
                next[i] = tok;
                if last {
                    done[i] = true;
                }
            }
        }
    }
    // finalize: normalized score, best first
    let mut best = 0;
    let mut best_score = f32::NEG_INFINITY;
    let mut finals = Vec::with_capacity(n);
    for i in 0..n {
        let len = seqs[i].len().max(1) as f32;
        let s = scores[i] / len.powf(opts.length_penalty);
        finals.push(s);
        if s > best_score {
            best_score = s;
            best = i;
        }
    }
    let mut tokens = std::mem::take(&mut seqs[best]);
    tokens.drain(..forced.len());
    Ok(Generation {
        tokens,
        score: finals[best],
        no_speech_prob: nsp.unwrap_or(0.0),
    })
}

fn argmax(x: &[f32]) -> usize {
    let mut bi = 0;
    let mut bv = f32::NEG_INFINITY;
    for (i, &v) in x.iter().enumerate() {
        if v > bv {
            bv = v;
            bi = i;
        }
    }
    bi
}

fn sample(lp: &[f32], temperature: f32, rng: &mut impl Rng) -> usize {
    let max = lp.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let w: Vec<f32> = lp
        .iter()
        .map(|&v| ((v - max) / temperature).exp())
        .collect();
    let total: f32 = w.iter().sum();
    let mut r = rng.gen::<f32>() * total;
    for (i, &x) in w.iter().enumerate() {
        if r < x {
            return i;
        }
        r -= x;
    }
    argmax(lp)
}

trait SeedCompat {
    fn seed_from_u64_compat(seed: u64) -> Self;
}

impl SeedCompat for rand::rngs::StdRng {
    fn seed_from_u64_compat(seed: u64) -> Self {
        use rand::SeedableRng;
        rand::rngs::StdRng::seed_from_u64(seed)
    }
}

#[allow(clippy::too_many_arguments)]
fn beam_search(
    model: &WhisperModel,
    st: &mut DecoderState,
    (start, forced, forced_score): (u32, &[u32], f32),
    sp: &SpecialTokens,
    opts: &GenerateOptions,
    timestamps: bool,
    max_steps: usize,
    mut nsp: Option<f32>,
) -> Result<Generation> {
    let v = model.dims().n_vocab;
    let beam = opts.beam_size;
    let ncand = 2 * beam;
    let max_candidates = ((beam as f32) * opts.patience).round().max(1.0) as usize;
    // alive beams: sequences and cumulative scores; step 0 has one row.
    // Sequences include the forced prefix (the logit rules see it), stripped at the end.
    let mut seqs: Vec<Vec<u32>> = vec![forced.to_vec()];
    let mut scores: Vec<f32> = vec![forced_score];
    let mut inputs: Vec<u32> = vec![start];
    let mut finished: Vec<(Vec<u32>, f32)> = Vec::new();
    let mut cand: Vec<(f32, usize, u32)> = Vec::with_capacity(beam * v / 64);
    let all_beams: Vec<usize> = (0..beam).collect();
    for step in 0..max_steps {
        let rows = seqs.len();
        // The first step has one row, shared by every beam until they diverge.
        let layout = if step == 0 {
            DecodeRows::Shared
        } else {
            DecodeRows::Beams(&all_beams[..rows])
        };
        check_cancel(opts.cancel.as_deref())?;
        model.decode_step(st, &inputs, layout)?;
        let logits = model.step_logits(st, 0, rows)?;
        cand.clear();
        let tops = par_rows(logits, v, rows, |r, row| {
            let nsp_row =
                (step == 0 && r == 0 && nsp.is_none()).then(|| no_speech_prob(row, sp.no_speech));
            let ruled = apply_rules(row, &seqs[r], opts, sp, timestamps);
            (nsp_row, top_candidates(row, ruled, scores[r], r, ncand))
        });
        for (nsp_row, top) in tops {
            if nsp_row.is_some() && nsp.is_none() {
                nsp = nsp_row;
            }
            cand.extend(top);
        }
        // global top-k over (row, token), ties by flat index as a stable order
        cand.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        cand.truncate(ncand);
        let last_step = step + 1 == max_steps;
        let mut next: Vec<(f32, usize, u32)> = Vec::with_capacity(beam);
        let mut secondary = beam;
        for k in 0..beam.min(cand.len()) {
            let (s, r, t) = cand[k];
            let mut pick = k;
            if t == sp.eot || last_step {
                let mut hyp = seqs[r].clone();
                if t != sp.eot {
                    hyp.push(t);
                }
                finished.push((hyp, s));
                for (j, c) in cand.iter().enumerate().skip(secondary) {
                    if c.2 != sp.eot {
                        pick = j;
                        secondary = j + 1;
                        break;
                    }
                }
            }
            next.push(cand[pick]);
        }
        if last_step || finished.len() >= max_candidates {
            break;
        }
        let src: Vec<usize> = next.iter().map(|c| c.1).collect();
        st.reorder(&src)?;
        seqs = next
            .iter()
            .map(|&(_, r, t)| {
                let mut s = seqs[r].clone();
                s.push(t);
                s
            })
            .collect();
        scores = next.iter().map(|c| c.0).collect();
        inputs = next.iter().map(|c| c.2).collect();
    }
    let mut best: Option<(Vec<u32>, f32)> = None;
    for (mut hyp, s) in finished {
        let len = hyp.len() as f32;
        let norm = s / len.max(1.0).powf(opts.length_penalty);
        hyp.drain(..forced.len().min(hyp.len()));
        if best.as_ref().is_none_or(|b| norm > b.1) {
            best = Some((hyp, norm));
        }
    }
    let (tokens, score) = best.unwrap_or_default();
    Ok(Generation {
        tokens,
        score,
        no_speech_prob: nsp.unwrap_or(0.0),
    })
}

/// Runs `f(r, row)` on each of the first `rows` rows (`v` values each) of `logits` in
/// parallel on the engine's thread pool, results in row order (each row's work is
/// independent, so they do not depend on the number of threads).
fn par_rows<T: Send, F: Fn(usize, &mut [f32]) -> T + Sync>(
    logits: &mut [f32],
    v: usize,
    rows: usize,
    f: F,
) -> Vec<T> {
    hark_engine::threads::pool().map_chunks_mut(logits, v, rows, f)
}

/// The entries a scan of the row's log-probs must visit: `lo..hi` (outside it every
/// log-prob is `-inf`), or the whole row when its log-sum-exp is NaN (a fully masked
/// row, whose log-probs are all NaN).
fn scan_range(ruled: Ruled, lse: f32, n: usize) -> (usize, usize) {
    if lse.is_nan() {
        (0, n)
    } else {
        (ruled.lo, ruled.hi)
    }
}

/// The first token with the largest log-prob `x - lse` of a ruled row and that
/// log-prob (as `argmax` over the full log-softmax would pick it: entries outside
/// `lo..hi` are `-inf`, and the log-probs are compared, not the logits, since two
/// logits may round to the same log-prob).
fn argmax_lp(row: &[f32], ruled: Ruled, lse: f32) -> (usize, f32) {
    let mut bi = 0;
    let mut bv = f32::NEG_INFINITY;
    let (lo, hi) = scan_range(ruled, lse, row.len());
    for (t, &x) in row.iter().enumerate().take(hi).skip(lo) {
        let lp = x - lse;
        if lp > bv {
            bv = lp;
            bi = t;
        }
    }
    (bi, row[bi] - lse)
}

/// The `ncand` best `(score + log-prob, row, token)` candidates of one ruled row, best
/// first (ties: lower token first), without writing the row's log-softmax: each
/// log-prob `x - lse` is formed as the full log-softmax would store it and added to the
/// row's cumulative `score`.
fn top_candidates(
    row: &[f32],
    ruled: Ruled,
    score: f32,
    r: usize,
    ncand: usize,
) -> Vec<(f32, usize, u32)> {
    let lse = ruled.lse(row);
    let mut top: Vec<(f32, usize, u32)> = Vec::with_capacity(ncand + 1);
    let (lo, hi) = scan_range(ruled, lse, row.len());
    for (t, &x) in row.iter().enumerate().take(hi).skip(lo) {
        let lp = x - lse;
        if lp == f32::NEG_INFINITY {
            continue;
        }
        let s = score + lp;
        if top.len() < ncand || s > top[top.len() - 1].0 {
            let at = top.partition_point(|e| e.0 >= s);
            top.insert(at, (s, r, t as u32));
            top.truncate(ncand);
        }
    }
    top
}
