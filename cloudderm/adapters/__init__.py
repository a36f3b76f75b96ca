"""One module per provider; each imports its SDK lazily so ``import cloudderm`` stays light."""
