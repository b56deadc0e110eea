"""More S3 operations as clients expect them, through boto3 against a real grid:
CopyObject, ListObjects v1, conditional GET / HEAD, response-* overrides and the
stored system headers, limits and their error codes, GetBucketLocation and the
region of CreateBucket, ListBuckets by prefix and in pages, HEAD with a Range, the
expected bucket owner and the owners listings name, and the
refusal (not the silent dropping) of what the store does not offer: server-side
encryption, object lock, appends, conditional deletes, per-object ACLs."""

import datetime
import hashlib
import http.client
import random
import urllib.parse

import pytest
from botocore.exceptions import ClientError

SPECIAL_KEYS = ["with space", "plus+sign", "eq=ual", "per%cent", "unicodé/ключ/鍵", "dots/../up", "q?x&y#z"]


def code(exc):
    return exc.value.response["Error"]["Code"]


def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def md5(b):
    return hashlib.md5(b).hexdigest()


@pytest.fixture
def other_bucket(s3):
    name = f"t-other-{random.randrange(1 << 30):x}"
    s3.create_bucket(Bucket=name)
    yield name
    for o in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=o["Key"])
    s3.delete_bucket(Bucket=name)


def raw_body_hook(s3, operation):
    """Registers a hook keeping the raw XML of each `operation` answer."""
    bodies = []

    def keep(response_dict, **_):
        bodies.append(response_dict["body"])

    s3.meta.events.register(f"before-parse.s3.{operation}", keep)
    return bodies


# ------------------------------------------------------------------ CopyObject


def test_copy_same_bucket_keeps_headers_and_metadata(s3, bucket):
    body = b"copy me " * 1000
    s3.put_object(
        Bucket=bucket,
        Key="src",
        Body=body,
        ContentType="text/x-src",
        CacheControl="max-age=5",
        ContentLanguage="fr",
        Metadata={"color": "blue"},
    )
    r = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert r["CopyObjectResult"]["ETag"] == f'"{md5(body)}"'
    assert isinstance(r["CopyObjectResult"]["LastModified"], datetime.datetime)
    g = s3.get_object(Bucket=bucket, Key="dst")
    assert g["Body"].read() == body
    assert g["ContentType"] == "text/x-src"
    assert g["CacheControl"] == "max-age=5"
    assert g["ContentLanguage"] == "fr"
    assert g["Metadata"] == {"color": "blue"}
    # The source is untouched.
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == body


def test_copy_cross_bucket_chunked_object(s3, bucket, other_bucket):
    body = bytes(random.getrandbits(8) for _ in range(3 * 1024 * 1024 + 17))
    s3.put_object(Bucket=bucket, Key="big", Body=body)
    r = s3.copy_object(Bucket=other_bucket, Key="big-copy", CopySource=f"{bucket}/big")
    assert r["CopyObjectResult"]["ETag"] == f'"{md5(body)}"'
    g = s3.get_object(Bucket=other_bucket, Key="big-copy")
    assert g["ContentLength"] == len(body)
    assert g["Body"].read() == body


def test_copy_replace_directive(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", ContentType="text/old", Metadata={"a": "1"})
    # COPY (the default) ignores the request's metadata.
    s3.copy_object(
        Bucket=bucket, Key="kept", CopySource={"Bucket": bucket, "Key": "src"}, Metadata={"b": "2"}
    )
    h = s3.head_object(Bucket=bucket, Key="kept")
    assert h["Metadata"] == {"a": "1"} and h["ContentType"] == "text/old"
    s3.copy_object(
        Bucket=bucket,
        Key="replaced",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
        ContentType="text/new",
        ContentDisposition="inline",
    )
    h = s3.head_object(Bucket=bucket, Key="replaced")
    assert h["Metadata"] == {"b": "2"}
    assert h["ContentType"] == "text/new"
    assert h["ContentDisposition"] == "inline"


def test_copy_onto_itself(s3, bucket):
    s3.put_object(Bucket=bucket, Key="self", Body=b"same", Metadata={"v": "1"})
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"})
    assert code(e) == "InvalidRequest" and status(e) == 400
    s3.copy_object(
        Bucket=bucket,
        Key="self",
        CopySource={"Bucket": bucket, "Key": "self"},
        MetadataDirective="REPLACE",
        Metadata={"v": "2"},
    )
    g = s3.get_object(Bucket=bucket, Key="self")
    assert g["Metadata"] == {"v": "2"}
    assert g["Body"].read() == b"same"


@pytest.mark.parametrize("key", SPECIAL_KEYS)
def test_copy_special_keys_literally(s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    # boto3 URL-encodes the source (a dict or a string) itself.
    s3.copy_object(Bucket=bucket, Key="c1/" + key, CopySource={"Bucket": bucket, "Key": key})
    # An explicitly encoded header too: leading slash, every reserved byte escaped.
    header = f"/{bucket}/{urllib.parse.quote(key, safe='')}"

    def set_source(request, **_):
        request.headers.replace_header("x-amz-copy-source", header)

    s3.meta.events.register("before-sign.s3.CopyObject", set_source)
    try:
        s3.copy_object(Bucket=bucket, Key="c2/" + key, CopySource=f"{bucket}/{key}")
    finally:
        s3.meta.events.unregister("before-sign.s3.CopyObject", set_source)
    for k in ["c1/" + key, "c2/" + key]:
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == key.encode()
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == {key, "c1/" + key, "c2/" + key}


def test_copy_version_ids(s3, bucket):
    s3.put_object(Bucket=bucket, Key="v", Body=b"v")
    s3.copy_object(Bucket=bucket, Key="v2", CopySource={"Bucket": bucket, "Key": "v", "VersionId": "null"})
    assert s3.get_object(Bucket=bucket, Key="v2")["Body"].read() == b"v"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="v3", CopySource={"Bucket": bucket, "Key": "v", "VersionId": "abc123"})
    assert code(e) == "InvalidArgument" and status(e) == 400


def test_copy_errors(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="d", CopySource={"Bucket": bucket, "Key": "missing"})
    assert code(e) == "NoSuchKey" and status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="d", CopySource={"Bucket": "no-such-bucket-xyz", "Key": "k"})
    assert code(e) == "NoSuchBucket" and status(e) == 404
    s3.put_object(Bucket=bucket, Key="k", Body=b"k")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="no-such-bucket-xyz", Key="d", CopySource={"Bucket": bucket, "Key": "k"})
    assert code(e) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.copy_object(
            Bucket=bucket, Key="d", CopySource={"Bucket": bucket, "Key": "k"}, MetadataDirective="MERGE"
        )
    assert code(e) == "InvalidArgument"


def test_copy_source_conditions(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"cond")
    h = s3.head_object(Bucket=bucket, Key="src")
    etag, lm = h["ETag"], h["LastModified"]
    day = datetime.timedelta(days=1)
    src = {"Bucket": bucket, "Key": "src"}
    ok = [
        dict(CopySourceIfMatch=etag),
        dict(CopySourceIfNoneMatch='"0123"'),
        dict(CopySourceIfModifiedSince=lm - day),
        dict(CopySourceIfUnmodifiedSince=lm),
        # If-Match true wins over a failing If-Unmodified-Since.
        dict(CopySourceIfMatch=etag, CopySourceIfUnmodifiedSince=lm - day),
    ]
    for kw in ok:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=src, **kw)
    failing = [
        dict(CopySourceIfMatch='"0123"'),
        dict(CopySourceIfNoneMatch=etag),
        dict(CopySourceIfModifiedSince=lm),
        dict(CopySourceIfUnmodifiedSince=lm - day),
        # If-None-Match false and If-Modified-Since true: still refused.
        dict(CopySourceIfNoneMatch=etag, CopySourceIfModifiedSince=lm - day),
    ]
    for kw in failing:
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=bucket, Key="dst", CopySource=src, **kw)
        assert code(e) == "PreconditionFailed" and status(e) == 412, kw


# ------------------------------------------------------------ ListObjects v1


def test_list_v1_marker_pages_without_delimiter(s3, bucket):
    keys = [f"k{i:02d}" for i in range(7)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    seen, marker = [], ""
    for _ in range(10):
        r = s3.list_objects(Bucket=bucket, MaxKeys=3, Marker=marker)
        page = [o["Key"] for o in r.get("Contents", [])]
        assert len(page) <= 3
        # AWS returns NextMarker only with a delimiter.
        assert "NextMarker" not in r
        assert r["Marker"] == marker and r["MaxKeys"] == 3
        seen += page
        if not r["IsTruncated"]:
            break
        marker = page[-1]
    assert seen == keys
    r = s3.list_objects(Bucket=bucket, Marker="k03")
    assert [o["Key"] for o in r["Contents"]] == keys[4:]
    assert s3.list_objects(Bucket=bucket, Marker="z").get("Contents", []) == []


def test_list_v1_next_marker_with_delimiter(s3, bucket):
    for k in ["a/1", "a/2", "b/3", "c", "d/4", "e"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    seen, marker = [], ""
    for _ in range(10):
        r = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2, Marker=marker)
        seen += [o["Key"] for o in r.get("Contents", [])] + [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        if not r["IsTruncated"]:
            assert "NextMarker" not in r
            break
        marker = r["NextMarker"]
    assert sorted(seen) == ["a/", "b/", "c", "d/", "e"]
    assert len(seen) == 5
    r = s3.list_objects(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a/1", "a/2"]
    assert r["Prefix"] == "a/"


def test_list_v1_url_encoding(s3, bucket):
    for k in SPECIAL_KEYS:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    bodies = raw_body_hook(s3, "ListObjects")
    # boto3 asks for encoding-type=url and decodes: keys come back literally.
    r = s3.list_objects(Bucket=bucket)
    assert {o["Key"] for o in r["Contents"]} == set(SPECIAL_KEYS)
    raw = bodies[-1].decode()
    assert "<EncodingType>url</EncodingType>" in raw
    assert "<Key>with%20space</Key>" in raw
    assert "<Key>plus%2Bsign</Key>" in raw
    assert "<Key>per%25cent</Key>" in raw
    with pytest.raises(ClientError) as e:
        s3.list_objects(Bucket=bucket, EncodingType="base64")
    assert code(e) == "InvalidArgument"


def test_list_v1_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.list_objects(Bucket="no-such-bucket-xyz")
    assert code(e) == "NoSuchBucket" and status(e) == 404


# --------------------------------------------------------- conditional GET/HEAD


def test_conditional_get_and_head(s3, bucket):
    s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    h = s3.head_object(Bucket=bucket, Key="c")
    etag, lm = h["ETag"], h["LastModified"]
    day = datetime.timedelta(days=1)
    cases = [
        (dict(IfMatch=etag), 200),
        (dict(IfMatch="*"), 200),
        (dict(IfMatch='"0123"'), 412),
        (dict(IfNoneMatch=etag), 304),
        (dict(IfNoneMatch="*"), 304),
        (dict(IfNoneMatch='"0123"'), 200),
        (dict(IfModifiedSince=lm), 304),
        (dict(IfModifiedSince=lm - day), 200),
        # A date in the future is ignored.
        (dict(IfModifiedSince=lm + 3 * day), 200),
        (dict(IfUnmodifiedSince=lm), 200),
        (dict(IfUnmodifiedSince=lm - day), 412),
        # AWS precedence: If-Match true wins over If-Unmodified-Since false ...
        (dict(IfMatch=etag, IfUnmodifiedSince=lm - day), 200),
        # ... and If-None-Match false wins over If-Modified-Since true.
        (dict(IfNoneMatch=etag, IfModifiedSince=lm - day), 304),
        (dict(IfMatch='"0123"', IfNoneMatch=etag), 412),
    ]
    for kw, want in cases:
        for op in (s3.get_object, s3.head_object):
            if want == 200:
                r = op(Bucket=bucket, Key="c", **kw)
                assert r["ResponseMetadata"]["HTTPStatusCode"] == 200, kw
                continue
            with pytest.raises(ClientError) as e:
                op(Bucket=bucket, Key="c", **kw)
            assert status(e) == want, (op.__name__, kw)
            if want == 412 and op == s3.get_object:
                assert code(e) == "PreconditionFailed"
            if want == 304:
                headers = e.value.response["ResponseMetadata"]["HTTPHeaders"]
                assert headers.get("etag") == etag


# --------------------------------------------- system headers and overrides


def test_system_headers_round_trip(s3, bucket):
    expires = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    s3.put_object(
        Bucket=bucket,
        Key="h",
        Body=b"headers",
        ContentType="text/plain",
        CacheControl="no-cache",
        ContentDisposition='attachment; filename="h.txt"',
        ContentEncoding="identity",
        ContentLanguage="de-DE",
        Expires=expires,
    )
    for r in (s3.head_object(Bucket=bucket, Key="h"), s3.get_object(Bucket=bucket, Key="h")):
        hs = r["ResponseMetadata"]["HTTPHeaders"]
        assert hs["content-type"] == "text/plain"
        assert hs["cache-control"] == "no-cache"
        assert hs["content-disposition"] == 'attachment; filename="h.txt"'
        assert hs["content-encoding"] == "identity"
        assert hs["content-language"] == "de-DE"
        assert hs["expires"] == "Wed, 02 Jan 2030 03:04:05 GMT"


def test_response_overrides_on_get(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"override", ContentType="text/plain", CacheControl="no-cache")
    r = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="application/json",
        ResponseContentLanguage="es",
        ResponseExpires=datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        ResponseCacheControl="max-age=99",
        ResponseContentDisposition='attachment; filename="o.json"',
        ResponseContentEncoding="identity",
    )
    hs = r["ResponseMetadata"]["HTTPHeaders"]
    assert hs["content-type"] == "application/json"
    assert hs["content-language"] == "es"
    assert hs["expires"] == "Tue, 06 May 2031 07:08:09 GMT"
    assert hs["cache-control"] == "max-age=99"
    assert hs["content-disposition"] == 'attachment; filename="o.json"'
    assert hs["content-encoding"] == "identity"
    assert r["Body"].read() == b"override"
    # Nothing was stored: a plain GET has the original headers.
    hs = s3.get_object(Bucket=bucket, Key="o")["ResponseMetadata"]["HTTPHeaders"]
    assert hs["content-type"] == "text/plain" and hs["cache-control"] == "no-cache"
    assert "content-language" not in hs


# --------------------------------------------------------------------- limits


def test_key_length_limit(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k" * 1024, Body=b"ok")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"no")
    assert code(e) == "KeyTooLongError" and status(e) == 400
    # Bytes, not characters: 513 two-byte characters are 1,026 bytes.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="é" * 513, Body=b"no")
    assert code(e) == "KeyTooLongError"
    s3.delete_object(Bucket=bucket, Key="k" * 1024)


def test_user_metadata_limit(s3, bucket):
    # Names and values count: 4 + 2044 = 2048 bytes is allowed.
    s3.put_object(Bucket=bucket, Key="m", Body=b"", Metadata={"name": "v" * 2044})
    assert s3.head_object(Bucket=bucket, Key="m")["Metadata"] == {"name": "v" * 2044}
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="m2", Body=b"", Metadata={"name": "v" * 2045})
    assert code(e) == "MetadataTooLarge" and status(e) == 400
    # Many entries add up: 11 * (3 + 200) = 2,233 bytes.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="m2", Body=b"", Metadata={f"k{i:02d}": "v" * 200 for i in range(11)})
    assert code(e) == "MetadataTooLarge"


def test_header_section_limit(grid, s3, bucket):
    # 16 KiB of headers at most: a signed PUT carrying 20 KiB of metadata is refused
    # for its headers before the metadata is looked at, and nothing is stored.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="h", Body=b"no", Metadata={"big": "v" * 20000})
    assert code(e) == "RequestHeaderSectionTooLarge" and status(e) == 400
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="h")
    # The same for an unsigned request.
    u = urllib.parse.urlsplit(grid.endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("GET", f"/{bucket}/h", headers={"X-Filler": "f" * 20000})
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    assert resp.status == 400, body
    assert "<Code>RequestHeaderSectionTooLarge</Code>" in body
    # Refused before the signature is checked (which would hash every header): a
    # wrong signature over too many header bytes gets the header error.
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-filler, Signature=" + "0" * 64
    )
    conn.request(
        "GET",
        f"/{bucket}/h",
        headers={"Authorization": auth, "X-Amz-Date": "20260101T000000Z", "X-Filler": "f" * 20000},
    )
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    assert resp.status == 400, body
    assert "<Code>RequestHeaderSectionTooLarge</Code>" in body
    assert resp.getheader("x-amz-request-id"), "the refusal names its request"
    # Under the limit, the same bad signature is refused for what it is.
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(
        "GET",
        f"/{bucket}/h",
        headers={"Authorization": auth, "X-Amz-Date": "20260101T000000Z", "X-Filler": "f"},
    )
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    assert resp.status == 403, body


def test_single_put_over_5_gib_refused_before_the_body(grid, s3, bucket):
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "huge"}, ExpiresIn=300)
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest("PUT", f"{u.path}?{u.query}", skip_accept_encoding=True)
    conn.putheader("Content-Length", str(5 * 1024**3 + 1))
    conn.endheaders()
    # No body is sent: the gateway must answer from the headers alone.
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    assert resp.status == 400, body
    assert "<Code>EntityTooLarge</Code>" in body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="huge")


def test_an_answer_before_the_body_closes_the_connection(grid, s3, bucket):
    # Refused before its body is read (no signature), a PUT's answer says
    # `Connection: close`: the gateway drops the connection after it (the unread body
    # cannot be skipped), and a client must not send its next request on it.
    u = urllib.parse.urlsplit(grid.endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest("PUT", f"/{bucket}/early", skip_accept_encoding=True)
    conn.putheader("Content-Length", str(1024 * 1024))
    conn.endheaders()
    conn.send(b"x" * 1000)
    resp = conn.getresponse()
    body = resp.read().decode()
    assert resp.status == 403, body
    assert resp.getheader("Connection") == "close", resp.getheaders()
    conn.close()
    # An answer after the whole body keeps the connection.
    r = s3.put_object(Bucket=bucket, Key="read", Body=b"y" * 100_000)
    assert r["ResponseMetadata"]["HTTPHeaders"].get("connection") != "close"
    r = s3.get_object(Bucket=bucket, Key="read")
    assert r["Body"].read() == b"y" * 100_000
    assert r["ResponseMetadata"]["HTTPHeaders"].get("connection") != "close"


@pytest.mark.parametrize("name", ["ab", "bad..dots", "-start", "end-", "192.168.1.1", "xn--abc", "Upper-case", "a" * 64])
def test_invalid_bucket_names(s3, name):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert code(e) == "InvalidBucketName" and status(e) == 400


# ------------------------------------------------------------- bucket location


def test_get_bucket_location(grid, s3, bucket):
    r = s3.get_bucket_location(Bucket=bucket)
    region = grid.env["AWS_REGION"]
    if region == "us-east-1":
        assert r["LocationConstraint"] is None
    else:
        assert r["LocationConstraint"] == region
    with pytest.raises(ClientError) as e:
        s3.get_bucket_location(Bucket="no-such-bucket-xyz")
    assert code(e) == "NoSuchBucket" and status(e) == 404


def test_server_side_encryption_is_refused_not_ignored(s3, bucket):
    # The store keeps objects unencrypted: a request asking for encryption is refused
    # with NotImplemented, and nothing is stored under the key.
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    asks = [
        (s3.put_object, dict(Key="sse-s3", Body=b"secret", ServerSideEncryption="AES256")),
        (s3.put_object, dict(Key="sse-kms", Body=b"secret", ServerSideEncryption="aws:kms")),
        (s3.put_object, dict(Key="sse-c", Body=b"secret", SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32)),
        (s3.create_multipart_upload, dict(Key="sse-mpu", ServerSideEncryption="AES256")),
        (s3.copy_object, dict(Key="sse-copy", CopySource={"Bucket": bucket, "Key": "plain"},
                              ServerSideEncryption="AES256")),
        (s3.get_object, dict(Key="plain", SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32)),
    ]
    for call, kw in asks:
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, **kw)
        assert (code(e), status(e)) == ("NotImplemented", 501), (call.__name__, kw.get("Key"))
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert listed == ["plain"]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_object_lock_appends_and_conditional_deletes_are_refused_not_ignored(s3, bucket):
    s3.put_object(Bucket=bucket, Key="kept", Body=b"x")
    etag = s3.head_object(Bucket=bucket, Key="kept")["ETag"]
    # No bucket has an Object Lock configuration: S3's answer to a locked write there.
    for kw in (dict(ObjectLockLegalHoldStatus="ON"),
               dict(ObjectLockMode="GOVERNANCE",
                    ObjectLockRetainUntilDate=datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="locked", Body=b"y", **kw)
        assert (code(e), status(e)) == ("InvalidRequest", 400), kw
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=bucket + "-locked", ObjectLockEnabledForBucket=True)
    assert (code(e), status(e)) == ("NotImplemented", 501)
    # An append would replace the object with the appended bytes alone.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="kept", Body=b"more", WriteOffsetBytes=1)
    assert (code(e), status(e)) == ("NotImplemented", 501)
    # A conditional delete would run unconditionally.
    for kw in (dict(IfMatch=etag), dict(IfMatchSize=1)):
        with pytest.raises(ClientError) as e:
            s3.delete_object(Bucket=bucket, Key="kept", **kw)
        assert (code(e), status(e)) == ("NotImplemented", 501), kw
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "kept", "ETag": etag}]})
    assert (code(e), status(e)) == ("NotImplemented", 501)
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"x", "nothing changed"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["kept"]


def test_head_with_a_range_answers_as_its_get(s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    head = s3.head_object(Bucket=bucket, Key="r", Range="bytes=2-5")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentLength"] == 4
    assert head["ResponseMetadata"]["HTTPHeaders"]["content-range"] == "bytes 2-5/10"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="r", Range="bytes=20-30")
    assert status(e) == 416


def test_create_bucket_in_another_region_is_refused(grid, s3):
    region = grid.env["AWS_REGION"]
    other = "eu-north-1" if region != "eu-north-1" else "ap-south-1"
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="elsewhere-bucket", CreateBucketConfiguration={"LocationConstraint": other})
    assert (code(e), status(e)) == ("IllegalLocationConstraintException", 400)
    assert "elsewhere-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # The endpoint's own region is taken, whichever it is.
    s3.create_bucket(Bucket="here-bucket", CreateBucketConfiguration={"LocationConstraint": region})
    assert "here-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.delete_bucket(Bucket="here-bucket")


def test_list_buckets_by_prefix_and_in_pages(grid, s3):
    names = ["lb-page-%d" % i for i in range(5)]
    for n in names:
        s3.create_bucket(Bucket=n)
    try:
        got = s3.list_buckets(Prefix="lb-page-")
        assert [b["Name"] for b in got["Buckets"]] == names
        assert got["Prefix"] == "lb-page-"
        seen, token, pages = [], None, 0
        while True:
            kw = {"ContinuationToken": token} if token else {}
            page = s3.list_buckets(Prefix="lb-page-", MaxBuckets=2, **kw)
            pages += 1
            seen += [b["Name"] for b in page["Buckets"]]
            token = page.get("ContinuationToken")
            if not token:
                break
            assert pages < 10
        assert (seen, pages) == (names, 3)
        assert s3.list_buckets(Prefix="lb-page-", BucketRegion="nowhere-1")["Buckets"] == []
        with pytest.raises(ClientError) as e:
            s3.list_buckets(MaxBuckets=10_001)
        assert code(e) == "InvalidArgument"
        with pytest.raises(ClientError) as e:
            s3.list_buckets(ContinuationToken="not-a-token")
        assert code(e) == "InvalidArgument"
    finally:
        for n in names:
            s3.delete_bucket(Bucket=n)


def test_an_object_acl_other_than_its_bucket_s_is_refused_not_ignored(s3, bucket):
    # Objects are read as their bucket's ACL says: a write naming that ACL is fine,
    # one naming another is refused, and nothing is stored.
    s3.put_object(Bucket=bucket, Key="same", Body=b"x", ACL="private")
    s3.put_object(Bucket=bucket, Key="owner", Body=b"x", ACL="bucket-owner-full-control")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="public", Body=b"x", ACL="public-read")
    assert (code(e), status(e)) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="granted", Body=b"x", GrantRead='uri="http://acs.amazonaws.com/groups/global/AllUsers"')
    assert (code(e), status(e)) == ("NotImplemented", 501)
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="private", Body=b"x", ACL="private")
    assert (code(e), status(e)) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="private-copy", CopySource={"Bucket": bucket, "Key": "same"}, ACL="private")
    assert (code(e), status(e)) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=bucket, Key="private-mpu", ACL="private")
    assert (code(e), status(e)) == ("NotImplemented", 501)
    s3.put_object(Bucket=bucket, Key="public", Body=b"x", ACL="public-read")
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["owner", "public", "same"]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_expected_bucket_owner_and_listed_owners(s3, bucket):
    owner = s3.list_buckets()["Owner"]["ID"]
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ExpectedBucketOwner=owner)
    s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=owner)
    for call, kw in (
        (s3.head_bucket, {}),
        (s3.get_object, dict(Key="o")),
        (s3.put_object, dict(Key="p", Body=b"y")),
        (s3.delete_object, dict(Key="o")),
    ):
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, ExpectedBucketOwner="111122223333", **kw)
        assert status(e) == 403, call.__name__
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "o"},
                       ExpectedSourceBucketOwner="111122223333")
    assert code(e) == "AccessDenied"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["o"], "nothing changed"
    # Objects are owned by their bucket's owner: ListObjects names it, V2 when asked.
    assert s3.list_objects(Bucket=bucket)["Contents"][0]["Owner"]["ID"] == owner
    assert "Owner" not in s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"][0]["Owner"]["ID"] == owner
