"""What the command-line tests share: the environment of a product on the tests' own Redis and S3."""

import pytest


@pytest.fixture
def env(tmp_path, redis_url, s3_endpoint, bucket, redis_client) -> dict:
    """The settings a second shell would take from the running product's env file."""
    return {"ECLIPSE_DATA_DIR": str(tmp_path / "data"), "ECLIPSE_REDIS_URL": redis_url,
            "AWS_ENDPOINT_URL": s3_endpoint, "ECLIPSE_S3_BUCKET": bucket, "ECLIPSE_S3_PREFIX": "tenant-files"}
