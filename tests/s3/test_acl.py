"""Bucket ACLs and unsigned requests through boto3 and plain HTTP against a real grid:
the `private` and `public-read` canned ACLs (x-amz-acl on CreateBucket and
PutBucketAcl, or the equivalent AccessControlPolicy), GetBucketAcl's owner and grants,
unsupported ACLs refused with NotImplemented, and anonymous requests served only for
GET / HEAD object and listings of a public-read bucket (403 AccessDenied otherwise)."""

import os
import random
import time
import urllib.error
import urllib.parse
import xml.etree.ElementTree as ET

import urllib.request

import pytest
from botocore.exceptions import ClientError

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
CHUNKED = os.urandom(300 * 1024)  # above the inline threshold: stored in rawx chunks
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def code(exc):
    return exc.value.response["Error"]["Code"]


class Resp:
    """An unsigned request's answer (urllib raises on 4xx; this does not)."""

    def __init__(self, method, status_code, headers, content):
        self.method = method
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.text = content.decode("utf-8", "replace")


def send(method, target, data=None, headers=None):
    req = urllib.request.Request(target, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return Resp(method, r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Resp(method, e.code, e.headers, e.read())


class requests:  # noqa: N801 - the few verbs the tests use, unsigned
    @staticmethod
    def get(target, headers=None, timeout=None):
        return send("GET", target, headers=headers)

    @staticmethod
    def head(target, timeout=None):
        return send("HEAD", target)

    @staticmethod
    def put(target, data=b"", headers=None, timeout=None):
        return send("PUT", target, data=data, headers=headers)

    @staticmethod
    def post(target, timeout=None):
        return send("POST", target, data=b"")

    @staticmethod
    def delete(target, timeout=None):
        return send("DELETE", target)


def url(grid, bucket, key=None, **query):
    path = f"{grid.endpoint}/{bucket}"
    if key is not None:
        path += "/" + urllib.parse.quote(key, safe="/")
    if query:
        path += "?" + urllib.parse.urlencode(query)
    return path


def error_code(resp):
    return ET.fromstring(resp.content).findtext("Code")


def assert_denied(resp):
    assert resp.status_code == 403, (resp.status_code, resp.text)
    if resp.method != "HEAD":
        assert error_code(resp) == "AccessDenied"


def grant_set(resp):
    out = set()
    for g in resp["Grants"]:
        who = g["Grantee"].get("URI") or g["Grantee"].get("ID")
        out.add((g["Grantee"]["Type"], who, g["Permission"]))
    return out


@pytest.fixture
def public_bucket(s3):
    name = f"t-public-{random.randrange(1 << 30):x}"
    s3.create_bucket(Bucket=name, ACL="public-read")
    yield name
    for o in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=o["Key"])
    s3.delete_bucket(Bucket=name)


def test_anonymous_reads_of_a_public_bucket(grid, s3, public_bucket):
    s3.put_object(Bucket=public_bucket, Key="dir/big.bin", Body=CHUNKED, ContentType="application/x-test")
    s3.put_object(Bucket=public_bucket, Key="small é.txt", Body=b"hello")
    r = requests.get(url(grid, public_bucket, "dir/big.bin"), timeout=30)
    assert r.status_code == 200, r.text
    assert r.content == CHUNKED
    assert r.headers["Content-Type"] == "application/x-test"
    r = requests.get(url(grid, public_bucket, "small é.txt"), headers={"Range": "bytes=1-3"}, timeout=30)
    assert r.status_code == 206 and r.content == b"ell"
    r = requests.head(url(grid, public_bucket, "dir/big.bin"), timeout=30)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(CHUNKED)
    # Listings, v1 and v2.
    for query in ({}, {"list-type": "2"}):
        r = requests.get(url(grid, public_bucket, **query), timeout=30)
        assert r.status_code == 200, r.text
        keys = [e.text for e in ET.fromstring(r.content).iter(f"{S3_NS}Key")]
        assert keys == ["dir/big.bin", "small é.txt"]
    # A missing key of a public bucket is a plain 404.
    r = requests.get(url(grid, public_bucket, "missing"), timeout=30)
    assert r.status_code == 404 and error_code(r) == "NoSuchKey"


def test_anonymous_requests_to_a_private_bucket_are_denied(grid, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    assert_denied(requests.get(url(grid, bucket, "k"), timeout=30))
    assert_denied(requests.head(url(grid, bucket, "k"), timeout=30))
    assert_denied(requests.get(url(grid, bucket), timeout=30))
    assert_denied(requests.get(url(grid, bucket, **{"list-type": "2"}), timeout=30))
    # An unknown bucket looks the same as a private one.
    assert_denied(requests.get(url(grid, f"t-nobody-{random.randrange(1 << 30):x}", "k"), timeout=30))
    # The signed request still works.
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret"


def test_anonymous_writes_are_denied_even_when_public(grid, s3, public_bucket):
    s3.put_object(Bucket=public_bucket, Key="k", Body=b"kept")
    assert_denied(requests.put(url(grid, public_bucket, "k"), data=b"overwrite", timeout=30))
    assert_denied(requests.put(url(grid, public_bucket, "new"), data=b"x", timeout=30))
    assert_denied(requests.delete(url(grid, public_bucket, "k"), timeout=30))
    assert_denied(requests.post(url(grid, public_bucket, "k", uploads=""), timeout=30))
    assert_denied(requests.get(url(grid, public_bucket, acl=""), timeout=30))
    assert_denied(requests.put(url(grid, public_bucket, acl=""), headers={"x-amz-acl": "private"}, timeout=30))
    assert_denied(requests.delete(url(grid, public_bucket), timeout=30))
    assert_denied(requests.get(f"{grid.endpoint}/", timeout=30))
    # Nothing changed.
    assert s3.get_object(Bucket=public_bucket, Key="k")["Body"].read() == b"kept"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=public_bucket)["Contents"]] == ["k"]
    assert s3.get_bucket_acl(Bucket=public_bucket)["Grants"][-1]["Grantee"].get("URI") == ALL_USERS


def test_put_bucket_acl_switches_public_and_private(grid, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    account = s3.list_buckets()["Owner"]["ID"]
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"]["ID"] == account
    assert grant_set(acl) == {("CanonicalUser", account, "FULL_CONTROL")}
    assert_denied(requests.get(url(grid, bucket, "k"), timeout=30))

    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert grant_set(s3.get_bucket_acl(Bucket=bucket)) == {
        ("CanonicalUser", account, "FULL_CONTROL"),
        ("Group", ALL_USERS, "READ"),
    }
    # The owner search of unsigned requests is cached a few seconds: poll.
    deadline = time.monotonic() + 15
    while True:
        r = requests.get(url(grid, bucket, "k"), timeout=30)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.content == b"data"

    # Private again: refused at once (the ACL is read on every request).
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    assert grant_set(s3.get_bucket_acl(Bucket=bucket)) == {("CanonicalUser", account, "FULL_CONTROL")}
    assert_denied(requests.get(url(grid, bucket, "k"), timeout=30))
    assert_denied(requests.get(url(grid, bucket), timeout=30))

    # The same through an AccessControlPolicy body.
    policy = s3.get_bucket_acl(Bucket=bucket)
    policy.pop("ResponseMetadata")
    policy["Grants"].append({"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"})
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    assert ("Group", ALL_USERS, "READ") in grant_set(s3.get_bucket_acl(Bucket=bucket))
    r = requests.get(url(grid, bucket, "k"), timeout=30)
    assert r.status_code == 200 and r.content == b"data"


def test_unsupported_acls_are_not_implemented(s3, bucket):
    for acl in ("public-read-write", "authenticated-read"):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_acl(Bucket=bucket, ACL=acl)
        assert code(e) == "NotImplemented"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(Bucket=bucket, GrantRead=f'uri="{ALL_USERS}"')
    assert code(e) == "NotImplemented"
    policy = s3.get_bucket_acl(Bucket=bucket)
    policy.pop("ResponseMetadata")
    policy["Grants"].append({"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "WRITE"})
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    assert code(e) == "NotImplemented"
    # Refused before the bucket is created.
    name = f"t-rw-{random.randrange(1 << 30):x}"
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name, ACL="public-read-write")
    assert code(e) == "NotImplemented"
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # The bucket is still private.
    assert len(s3.get_bucket_acl(Bucket=bucket)["Grants"]) == 1


def test_acl_of_a_missing_bucket(s3):
    name = f"t-missing-{random.randrange(1 << 30):x}"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_acl(Bucket=name)
    assert code(e) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(Bucket=name, ACL="public-read")
    assert code(e) == "NoSuchBucket"
