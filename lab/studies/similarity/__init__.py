"""How alike two latent spaces are: linear CKA between models and training corpora, with bootstrap intervals."""
