"""How much genre is linearly readable: a cross-validated logistic-regression probe beside clustering."""
