"""Fills a moto S3 server for tests/remote.rs (run with target/remote-venv's python).

    s3_setup.py ENDPOINT put BUCKET KEY=FILE [KEY=FILE ...]
        Creates BUCKET (if it is not there yet) and uploads each FILE as KEY,
        then checks with HEAD that each object has the file's size. Prints
        "ok N" (N objects).

    s3_setup.py ENDPOINT auth BUCKET KEY=FILE [KEY=FILE ...]
        The same, then makes the server check credentials: creates an IAM
        user with an inline policy allowing s3:* and an access key for it,
        switches moto's authentication on (POST /moto-api/reset-auth with
        "0": from then on every request must be signed by a key of a user
        that moto knows; this is the endpoint moto's own
        set_initial_no_auth_action_count uses in server mode, and unlike
        counting requests with INITIAL_NO_AUTH_ACTION_COUNT it does not
        depend on how many requests boto3 makes), and checks that the new key
        reads the first object while a wrong secret gets HTTP 403. Prints
        "key ACCESS_KEY_ID SECRET_ACCESS_KEY".

Until authentication is on, moto takes any key; this script uses
testing/testing, region us-east-1 and path-style addressing, like the test.
"""

import json
import os
import sys
import urllib.request

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

REGION = "us-east-1"


def client(service: str, endpoint: str, key: str = "testing", secret: str = "testing"):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def put(endpoint: str, bucket: str, pairs: list) -> list:
    s3 = client("s3", endpoint)
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    keys = []
    for pair in pairs:
        key, sep, path = pair.partition("=")
        if not sep or not key or not path:
            raise SystemExit(f"s3_setup.py: expected KEY=FILE, got {pair!r}")
        with open(path, "rb") as f:
            body = f.read()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        if size != len(body):
            raise SystemExit(f"s3_setup.py: s3://{bucket}/{key} has {size} bytes, not {len(body)}")
        keys.append(key)
    return keys


def auth(endpoint: str, bucket: str, pairs: list) -> None:
    keys = put(endpoint, bucket, pairs)
    iam = client("iam", endpoint)
    user = "quarry-remote-test"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="s3-all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    access = iam.create_access_key(UserName=user)["AccessKey"]
    key_id, secret = access["AccessKeyId"], access["SecretAccessKey"]

    # not a form (urllib's default content type): moto reads the raw body
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        if r.status != 200:
            raise SystemExit(f"s3_setup.py: reset-auth answered {r.status}")

    # the user's key reads; a wrong secret and the no-auth key are refused
    good = client("s3", endpoint, key_id, secret)
    good.head_object(Bucket=bucket, Key=keys[0])
    for label, bad in (
        ("a wrong secret", client("s3", endpoint, key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"))),
        ("the key testing", client("s3", endpoint)),
    ):
        try:
            bad.get_object(Bucket=bucket, Key=keys[0])
        except ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            if status != 403:
                raise SystemExit(f"s3_setup.py: {label} got HTTP {status}, not 403: {e}")
        else:
            raise SystemExit(f"s3_setup.py: {label} read s3://{bucket}/{keys[0]}: authentication is off")
    print(f"key {key_id} {secret}")


def main() -> None:
    if len(sys.argv) < 5 or sys.argv[2] not in ("put", "auth"):
        raise SystemExit(__doc__)
    endpoint, command, bucket, pairs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    if command == "put":
        print(f"ok {len(put(endpoint, bucket, pairs))}")
    else:
        auth(endpoint, bucket, pairs)


if __name__ == "__main__":
    main()
