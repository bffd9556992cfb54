"""Pitch and tempo in the latent space (the study's Table 2): shift engines, linear maps between original and shifted embeddings."""
