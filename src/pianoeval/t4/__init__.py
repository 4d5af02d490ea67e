"""Tier T4: unlabeled piano audio, clean/augmented pairs, and the robustness of the quality model."""
