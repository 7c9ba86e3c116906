"""SED recipe (Boes & Van hamme): train CRNNs on DCASE 2018 task 4 features, evaluate, tabulate.

`train_sed` trains one input setting of Table 3 (spectral log-mel, VGGish, VGG16, or a fusion)
for N seeds (`seed-XX/` each) with mean teacher: batches of 24 weak + 24 unlabeled clips,
EMA 0.999, BCE + 2 x (clip MSE + frame MSE), Adam ramped up to 1e-3 over 12,500 steps then
x 0.99995 a step, 50,000 steps (the paper's 200 epochs x 250 batches). Log-mel features are
standardised per frequency bin with statistics of the training clips (`scaler.json`).
`evaluate_run` scores each seed's student (as the paper does, after the last step) on the
validation split (DCASE 2018 "test", 259 clips in the paper) and the test split ("eval", 779):
frame probabilities > 0.5, median filter over 7 frames (~0.46 s), events kept only for
classes whose clip probability is > 0.5, scored by `avtool.metrics.sed`. §5's protocol: the
`best` (5) seeds on validation, their test scores averaged. `report_sed` lays every evaluated
setting out as Table 3, with per-class F1 bars and event timelines for chosen clips.

Where avtool departs from the paper: the sampling rate is 22,100 Hz, the paper's "22.1 kHz"
read literally: it is what gives 604 frames for 10 s with hop 366 (22,050 Hz gives 603).
"Best on validation" is by the mean of the three F1 scores (the paper does not say which).
Masking frame decisions by clip decisions follows the DCASE 2018 winner the baseline adapts.
"""

from avtool.recipes.sed.data import (
    CLIP_SECONDS,
    HEADLINE,
    PAPER,
    SED_LOGMEL,
    SPECTRAL_FRAMES,
    STEP_SECONDS,
    STEPS,
    STREAMS,
    ClipInputs,
    fit_length,
    spectral_frames,
)
from avtool.recipes.sed.evaluate import (
    SedEvaluateConfig,
    decode_events,
    evaluate_run,
    predict,
    select_seeds,
)
from avtool.recipes.sed.report import find_evaluated_runs, report_sed
from avtool.recipes.sed.train import SedTrainConfig, train_sed

__all__ = [
    "CLIP_SECONDS", "HEADLINE", "PAPER", "SED_LOGMEL", "SPECTRAL_FRAMES", "STEPS", "STEP_SECONDS",
    "STREAMS", "ClipInputs", "SedEvaluateConfig", "SedTrainConfig", "decode_events",
    "evaluate_run", "find_evaluated_runs", "fit_length", "predict", "report_sed",
    "select_seeds", "spectral_frames", "train_sed",
]  # fmt: skip
