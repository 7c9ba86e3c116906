"""BLEU on token lists: sacrebleu's corpus BLEU and NLTK's smoothed sentence BLEU.

The ATL authors passed raw strings to NLTK's `sentence_bleu`, which iterates them character by
character: the "n-grams" were letters, so their scores measured spelling overlap, not words.
Here every function takes lists of tokens and refuses a string, so that mistake cannot happen.
sacrebleu runs with `tokenize="none"` on the space-joined tokens: its n-grams are our tokens.
NLTK's `word_tokenize` is not used (it needs a data download); the tokens come from the lyrics
cleaning, which already splits words.
"""

from __future__ import annotations

from collections.abc import Sequence

Tokens = Sequence[str]


def _check(tokens: object, what: str) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(
            f"{what} must be a list of tokens, got {type(tokens).__name__}: BLEU on a raw "
            "string compares characters (the ATL authors' bug); split it into words first"
        )
    if any(not isinstance(t, str) for t in tokens):
        raise TypeError(f"{what} must hold strings (tokens)")
    return list(tokens)


def corpus_bleu(hypotheses: Sequence[Tokens], references: Sequence[Sequence[Tokens]]) -> float:
    """sacrebleu corpus BLEU (0-100): `references[i]` holds the reference token lists of
    hypothesis i (any number per hypothesis)."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference sets")
    hyps = [" ".join(_check(h, "hypothesis")) for h in hypotheses]
    refs = [[" ".join(_check(r, "reference")) for r in refs] for refs in references]
    width = max((len(r) for r in refs), default=0)
    # sacrebleu wants one stream per reference position; a missing reference is None.
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
    return float(sacrebleu.corpus_bleu(hyps, streams, tokenize="none").score)


def sentence_bleu(hypothesis: Tokens, references: Sequence[Tokens]) -> float:
    """NLTK sentence BLEU-4 (0-1) with Chen and Cherry's smoothing method 1, so a sentence
    without a matching 4-gram scores above 0 when it shares words."""
    from nltk.translate.bleu_score import SmoothingFunction
    from nltk.translate.bleu_score import sentence_bleu as nltk_sentence_bleu

    return float(
        nltk_sentence_bleu(
            [_check(r, "reference") for r in references],
            _check(hypothesis, "hypothesis"),
            smoothing_function=SmoothingFunction().method1,
        )
    )


def mean_sentence_bleu(
    hypotheses: Sequence[Tokens], references: Sequence[Sequence[Tokens]]
) -> float:
    """The mean of `sentence_bleu` over hypotheses (0-1)."""
    if not hypotheses:
        return 0.0
    scores = [sentence_bleu(h, r) for h, r in zip(hypotheses, references, strict=True)]
    return sum(scores) / len(scores)
