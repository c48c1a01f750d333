"""stridewise core: records, schema, store, features, model and plans."""

__version__ = "0.1.0"
