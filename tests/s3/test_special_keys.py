"""Keys are stored literally: boto3 and the aws cli put, get, head, list and delete keys
with spaces, `+`, `=`, `%`, an encoded-looking `%2F`, unicode, `..` and `./` segments,
doubled and leading slashes and a trailing space, and get back exactly the key they
gave (listings with and without `encoding-type=url`)."""

import filecmp
import os
import subprocess
import urllib.parse

import pytest
from botocore.exceptions import ClientError

KEYS = [
    "with space",
    "plus+sign",
    "equal=sign&amp",
    "percent%sign",
    "percent%2Fslash",
    "été/日本語",
    "dots/../up",
    "./here",
    "..",
    "a//b",
    "/leading",
    "trailing ",
    "tab\tand~tilde*star'quote(paren)",
    "question?mark#hash",
]


def code(exc):
    return exc.value.response["Error"]["Code"]


def listed(s3, bucket, **kw):
    out = []
    token = None
    while True:
        args = dict(Bucket=bucket, **kw)
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        out += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def unencoded_listing(s3, bucket):
    """ListObjectsV2 without `encoding-type` (botocore adds `encoding-type=url` on
    its own and decodes the answer: take the parameter out before signing), so the
    keys travel as XML text."""

    def strip(request, **_):
        parts = urllib.parse.urlsplit(request.url)
        query = [p for p in parts.query.split("&") if p and not p.startswith("encoding-type=")]
        request.url = urllib.parse.urlunsplit(parts._replace(query="&".join(query)))

    s3.meta.events.register("before-sign.s3.ListObjectsV2", strip)
    try:
        page = s3.list_objects_v2(Bucket=bucket)
    finally:
        s3.meta.events.unregister("before-sign.s3.ListObjectsV2", strip)
    assert "EncodingType" not in page
    return [o["Key"] for o in page.get("Contents", [])]


@pytest.mark.parametrize("key", KEYS)
def test_key_round_trip(s3, bucket, key):
    body = key.encode() * 3
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    assert listed(s3, bucket) == [key]
    assert listed(s3, bucket, Prefix=key) == [key]
    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert listed(s3, bucket) == []


def test_listing_returns_every_key_exactly(s3, bucket):
    for key in KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    expected = sorted(KEYS, key=lambda k: k.encode())
    assert listed(s3, bucket) == expected
    # Pages of two keys: the continuation tokens carry the keys too.
    assert listed(s3, bucket, MaxKeys=2) == expected
    # v1 with markers.
    v1 = s3.list_objects(Bucket=bucket)
    assert [o["Key"] for o in v1["Contents"]] == expected
    # encoding-type=url asked by the caller: botocore leaves the keys encoded
    # (form encoding: '+' stands for a space, a literal '+' is %2B).
    raw = listed(s3, bucket, EncodingType="url")
    assert [urllib.parse.unquote_plus(k) for k in raw] == expected
    assert "plus%2Bsign" in raw and "equal%3Dsign%26amp" in raw
    assert all("\t" not in k and " " not in k for k in raw)
    # Unencoded, the XML carries them as they are.
    assert unencoded_listing(s3, bucket) == expected
    # Delimiter grouping splits on the literal '/'.
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    prefixes = [p["Prefix"] for p in top.get("CommonPrefixes", [])]
    assert prefixes == sorted(["./", "/", "a/", "dots/", "été/"], key=lambda k: k.encode())
    assert "percent%2Fslash" in [o["Key"] for o in top["Contents"]]
    # DeleteObjects with every key.
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in KEYS]})
    assert listed(s3, bucket) == []


def aws(env, *args):
    r = subprocess.run(["aws", *args], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"aws {' '.join(args)} failed ({r.returncode}): {r.stderr}"
    return r


def test_aws_cli_cp_keeps_keys_literally(grid, s3, bucket, tmp_path):
    env = grid.cli_env(str(tmp_path))
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(40 * 1024))
    # The cli builds the key from the URL after s3://bucket/; a leading slash and
    # "." segments are its own business, the rest must arrive unchanged.
    keys = ["with space", "plus+sign", "percent%2Fslash", "été/日本語", "a//b", "equal=sign", "trailing "]
    for key in keys:
        aws(env, "s3", "cp", str(src), f"s3://{bucket}/{key}")
    assert sorted(listed(s3, bucket), key=lambda k: k.encode()) == sorted(keys, key=lambda k: k.encode())
    for i, key in enumerate(keys):
        dst = tmp_path / f"down-{i}"
        aws(env, "s3", "cp", f"s3://{bucket}/{key}", str(dst))
        assert filecmp.cmp(src, dst, shallow=False), key
    out = aws(env, "s3api", "list-objects-v2", "--bucket", bucket, "--query", "Contents[].Key", "--output", "text").stdout
    assert "été/日本語" in out and "percent%2Fslash" in out and "plus+sign" in out
