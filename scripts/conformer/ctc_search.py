"""Reference CTC decoding for hark's parity checks: WeNet's CTC prefix beam search and attention
rescoring (wenet/transformer/search.py), re-implemented from their description.

Used by scripts/conformer/make_wenet_fixtures.py (golden fixtures) and scripts/an4/ref_decode.py
(reference decode of the built-in an4-conformer). hark's counterpart is
models/src/conformer_aed/ctc.rs.
"""

import math
from collections import defaultdict


def log_add(*args):
    m = max(args)
    if m == -float("inf"):
        return m
    return m + math.log(sum(math.exp(a - m) for a in args))


def ctc_prefix_beam_search(logp, beam, blank=0):
    """CTC prefix beam search over one utterance's [frames x vocab] log-probabilities (a torch
    tensor): the `beam` best prefixes as [(token list, CTC log-probability)], best first."""
    cur = [((), (0.0, -float("inf")))]
    for t in range(logp.shape[0]):
        nxt = defaultdict(lambda: [-float("inf"), -float("inf")])
        _, top = logp[t].topk(beam)
        for u in top.tolist():
            p = logp[t][u].item()
            for prefix, (s, ns) in cur:
                last = prefix[-1] if prefix else None
                tot = log_add(s, ns)
                if u == blank:
                    nxt[prefix][0] = log_add(nxt[prefix][0], tot + p)
                elif u == last:
                    nxt[prefix][1] = log_add(nxt[prefix][1], ns + p)
                    q = prefix + (u,)
                    nxt[q][1] = log_add(nxt[q][1], s + p)
                else:
                    q = prefix + (u,)
                    nxt[q][1] = log_add(nxt[q][1], tot + p)
        items = sorted(nxt.items(), key=lambda kv: log_add(*kv[1]), reverse=True)[:beam]
        cur = [(k, tuple(v)) for k, v in items]
    return [(list(k), log_add(*v)) for k, v in cur]


def attention_rescoring(score_fn, nbest, ctc_weight):
    """WeNet's attention rescoring (no right-to-left decoder): every CTC prefix gets
    `score_fn(prefix)` (the decoder's log-probability of prefix + <eos> after <sos>) plus
    ctc_weight x its CTC score; returns [(prefix, score)] in the CTC order."""
    return [(hyp, score_fn(hyp) + ctc_score * ctc_weight) for hyp, ctc_score in nbest]


def best(rescored):
    """Index of the best rescored hypothesis (ties: the earlier, i.e. better CTC, one)."""
    return max(range(len(rescored)), key=lambda i: (rescored[i][1], -i))
