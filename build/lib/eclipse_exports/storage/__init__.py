"""Object storage: the one key builder and its parser, the S3 client, presigning, listings, deletes,
multipart upload."""
