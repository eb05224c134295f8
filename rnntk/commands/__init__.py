"""One module per command group; each is a thin wrapper over a method and the engine."""
