"""The web face of ``stridewise serve``: routes and their guard; the logic is in services."""
