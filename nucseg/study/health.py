"""Did a fold's model learn? A fold whose model predicts (almost) one class, or whose training
loss never left its starting value, is flagged, so that no table averages it silently as a real
score. (Before the warm-up and gradient clipping of `nucseg.training.optimizer.compile_model`, four TNBC
folds of PangNet ended with every ReLU dead: the loss stayed at ln 2 and the net said
"background" everywhere.)"""

from __future__ import annotations

ONE_CLASS_BELOW = 0.005  # fraction of pixels predicted nucleus: under this, (almost) all background
ONE_CLASS_ABOVE = 0.95  # over this, (almost) all nucleus
STUCK_RATIO = 0.9  # last epoch's mean loss above 90 % of the first epoch's: it never left its start


def fold_flags(scores: dict, epoch_losses: list[float]) -> str:
    """';'-joined flags ("empty", "one-class", "loss-stuck"), or "" for a fold that learned and
    had something to find."""
    flags = []
    if scores.get("tpr") is not None and scores["tpr"] != scores["tpr"]:  # NaN: nothing to find
        flags.append("empty")
    predicted = scores["predicted_fraction"]
    if predicted < ONE_CLASS_BELOW or predicted > ONE_CLASS_ABOVE:
        flags.append("one-class")
    if len(epoch_losses) >= 2 and epoch_losses[-1] > STUCK_RATIO * epoch_losses[0]:
        flags.append("loss-stuck")
    return ";".join(flags)


def describe_flags(flags: str) -> str:
    meanings = {
        "empty": "the held-out labels hold no nucleus: sensitivity (TPR) and Perf are undefined (NaN) and "
        "left out of the means",
        "one-class": f"predicts one class almost everywhere (nucleus fraction outside "
        f"{ONE_CLASS_BELOW}..{ONE_CLASS_ABOVE})",
        "loss-stuck": f"the training loss ended above {STUCK_RATIO:.0%} of its first epoch's",
    }
    return "; ".join(meanings[f] for f in flags.split(";") if f)
