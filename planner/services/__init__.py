"""Use cases that wire the store, the pure core, delivery and the connectors together."""
