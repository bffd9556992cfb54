"""The taggers' own tag predictions per clip (experiment=tags)."""
