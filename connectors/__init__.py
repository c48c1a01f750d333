"""I/O adapters: FIT files and archives, Strava, Garmin Connect. Vendor objects stop here."""
