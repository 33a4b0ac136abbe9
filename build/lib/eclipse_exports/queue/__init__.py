"""The Redis side of exports: the request stream, the dead-letter stream, producers and job status hashes."""
