"""One module per provider; each imports its cloud SDK lazily, only when the adapter is first used."""
