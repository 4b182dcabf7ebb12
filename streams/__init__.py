"""The stream processors: verify, sequence and project. All I/O of the pipeline lives here."""
