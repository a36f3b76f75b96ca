"""Provider adapters: one module per provider, each importing its SDK lazily on first use."""
