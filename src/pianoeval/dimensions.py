"""The 19 PercePiano perceptual dimensions and their 8 categories, in label order."""

from __future__ import annotations

DIMENSIONS: tuple[str, ...] = (
    "timing",
    "articulation_length",
    "articulation_touch",
    "pedal_amount",
    "pedal_clarity",
    "timbre_variety",
    "timbre_depth",
    "timbre_brightness",
    "timbre_loudness",
    "dynamic_range",
    "tempo",
    "space",
    "balance",
    "drama",
    "mood_valence",
    "mood_energy",
    "mood_imagination",
    "sophistication",
    "interpretation",
)
N_DIMENSIONS = len(DIMENSIONS)

CATEGORIES: dict[str, tuple[str, ...]] = {
    "timing": ("timing",),
    "articulation": ("articulation_length", "articulation_touch"),
    "pedal": ("pedal_amount", "pedal_clarity"),
    "timbre": ("timbre_variety", "timbre_depth", "timbre_brightness", "timbre_loudness"),
    "dynamics": ("dynamic_range",),
    "tempo_space": ("tempo", "space", "balance", "drama"),
    "emotion": ("mood_valence", "mood_energy", "mood_imagination"),
    "interpretation": ("sophistication", "interpretation"),
}

# Column names in labels.csv: mean ratings, rating std, annotator counts.
MEAN_COLUMNS = tuple(f"mean_{d}" for d in DIMENSIONS)
STD_COLUMNS = tuple(f"std_{d}" for d in DIMENSIONS)


def category_indices() -> dict[str, list[int]]:
    """Category name -> indices into DIMENSIONS."""
    return {c: [DIMENSIONS.index(d) for d in dims] for c, dims in CATEGORIES.items()}
