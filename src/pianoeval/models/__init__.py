"""Models that map frame embeddings to the 19 perceptual ratings."""
