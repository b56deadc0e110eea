"""Flexible checksums against a real grid: boto3 uploads with every S3 checksum
algorithm (aws-chunked bodies with a trailer checksum, as boto3 sends them by
default), the stored checksum returned by GET / HEAD with ChecksumMode=ENABLED, and
hand-built requests (http.client + botocore's SigV4 signer): unsigned and signed
aws-chunked bodies with a trailer checksum under every algorithm (PutObject and
UploadPart), a wrong trailer checksum answering BadDigest, a tampered chunk or
trailer signature answering SignatureDoesNotMatch, and a body that is not the
signed x-amz-content-sha256 answering XAmzContentSHA256Mismatch, with nothing
stored in any refused case."""

import base64
import hashlib
import hmac
import http.client
import os
import urllib.parse
import zlib

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

try:
    from awscrt import checksums as crt_checksums
except ImportError:  # botocore computes CRC32C and CRC64NVME only with awscrt
    crt_checksums = None

NEEDS_CRT = pytest.mark.skipif(
    crt_checksums is None,
    reason="botocore computes this checksum only with the optional awscrt package: "
    ".venv/bin/pip install awscrt==0.32.2 (tests/requirements.txt lists it)",
)
ALGORITHMS = [
    "CRC32",
    pytest.param("CRC32C", marks=NEEDS_CRT),
    "SHA1",
    "SHA256",
    pytest.param("CRC64NVME", marks=NEEDS_CRT),
]
SIZES = [1000, 300 * 1024]  # inline, and chunked in rawx
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def code(exc):
    return exc.value.response["Error"]["Code"]


def b64(raw):
    return base64.b64encode(raw).decode()


def checksum(algorithm, data):
    if algorithm == "CRC32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if algorithm == "CRC32C":
        return b64(crt_checksums.crc32c(data).to_bytes(4, "big"))
    if algorithm == "CRC64NVME":
        return b64(crt_checksums.crc64nvme(data).to_bytes(8, "big"))
    if algorithm == "SHA1":
        return b64(hashlib.sha1(data).digest())
    return b64(hashlib.sha256(data).digest())


@pytest.mark.parametrize("size", SIZES, ids=["inline", "chunked"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_put_object_checksum_is_verified_stored_and_returned(s3, bucket, algorithm, size):
    data = os.urandom(size)
    want = checksum(algorithm, data)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm=algorithm)
    assert put[f"Checksum{algorithm}"] == want
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == want
    assert got["Body"].read() == data  # botocore also checks the body against it
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == want
    # Without the mode, no checksum is returned; a range never carries one.
    assert f"Checksum{algorithm}" not in s3.head_object(Bucket=bucket, Key="k")
    ranged = s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert ranged["Body"].read() == data[:10]
    assert f"Checksum{algorithm}" not in ranged


def test_default_put_object_sends_and_gets_a_crc32(s3, bucket):
    seen = []
    s3.meta.events.register("before-send.s3.PutObject", lambda request, **_: seen.append(dict(request.headers)))
    data = b"default checksum " * 100
    s3.put_object(Bucket=bucket, Key="k", Body=data)
    sent = {k.lower(): v for k, v in seen[0].items()}
    announced = sent.get("x-amz-trailer") or next(k for k in sent if k.startswith("x-amz-checksum-"))
    assert "crc32" in announced
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == checksum("CRC32", data)
    assert got["Body"].read() == data


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_upload_part_checksum(s3, bucket, algorithm):
    data = os.urandom(200 * 1024)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpu", ChecksumAlgorithm=algorithm)
    try:
        part = s3.upload_part(
            Bucket=bucket, Key="mpu", UploadId=up["UploadId"], PartNumber=1, Body=data, ChecksumAlgorithm=algorithm
        )
        assert part[f"Checksum{algorithm}"] == checksum(algorithm, data)
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mpu",
            UploadId=up["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
    except Exception:
        s3.abort_multipart_upload(Bucket=bucket, Key="mpu", UploadId=up["UploadId"])
        raise
    assert s3.get_object(Bucket=bucket, Key="mpu")["Body"].read() == data


# ------------------------------------------------------------ hand-built requests


def _url(grid, bucket, key):
    return f"{grid.endpoint}/{bucket}/{urllib.parse.quote(key)}"


def _sign(grid, url, headers):
    """Signs a PUT with SigV4 in headers, keeping the given x-amz-content-sha256."""
    creds = Credentials(grid.env["AWS_ACCESS_KEY_ID"], grid.env["AWS_SECRET_ACCESS_KEY"])
    req = AWSRequest(method="PUT", url=url, headers=headers)
    SigV4Auth(creds, "s3", grid.env["AWS_REGION"]).add_auth(req)
    return dict(req.headers.items())


def _send(grid, url, headers, body):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        target = u.path + (f"?{u.query}" if u.query else "")
        conn.request("PUT", target, body=body, headers={**headers, "Content-Length": str(len(body))})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def _unsigned_trailer_put(grid, url, data, algorithm, value):
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER upload of `data` in one chunk, announcing
    `value` as its checksum under `algorithm` in the trailer."""
    name = f"x-amz-checksum-{algorithm.lower()}"
    headers = _sign(
        grid,
        url,
        {
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": name,
        },
    )
    body = b"%x\r\n" % len(data) + data + b"\r\n0\r\n" + f"{name}:{value}\r\n\r\n".encode()
    return _send(grid, url, headers, body)


def _absent(s3, bucket, key):
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("size", SIZES, ids=["inline", "chunked"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unsigned_trailer_checksum_is_verified(grid, s3, bucket, algorithm, size):
    data = os.urandom(size)
    # The right checksum is accepted, stored and returned: the request is well formed.
    status, text = _unsigned_trailer_put(grid, _url(grid, bucket, "good"), data, algorithm, checksum(algorithm, data))
    assert status == 200, text
    got = s3.get_object(Bucket=bucket, Key="good", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got[f"Checksum{algorithm}"] == checksum(algorithm, data)
    wrong = checksum(algorithm, data + b"x")
    status, text = _unsigned_trailer_put(grid, _url(grid, bucket, "bad"), data, algorithm, wrong)
    assert status == 400, text
    assert "<Code>BadDigest</Code>" in text
    assert _absent(s3, bucket, "bad")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unsigned_trailer_checksum_of_a_part(grid, s3, bucket, algorithm):
    data = os.urandom(100 * 1024)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    try:
        url = _url(grid, bucket, "mpu") + f"?partNumber=1&uploadId={up}"
        status, text = _unsigned_trailer_put(grid, url, data, algorithm, checksum(algorithm, data + b"!"))
        assert status == 400, text
        assert "<Code>BadDigest</Code>" in text
        assert s3.list_parts(Bucket=bucket, Key="mpu", UploadId=up).get("Parts", []) == []
        status, text = _unsigned_trailer_put(grid, url, data, algorithm, checksum(algorithm, data))
        assert status == 200, text
        parts = s3.list_parts(Bucket=bucket, Key="mpu", UploadId=up)["Parts"]
        assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, len(data))]
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mpu",
            UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": parts[0]["ETag"]}]},
        )
    except Exception:
        s3.abort_multipart_upload(Bucket=bucket, Key="mpu", UploadId=up)
        raise
    assert s3.get_object(Bucket=bucket, Key="mpu")["Body"].read() == data


@pytest.mark.parametrize("size", SIZES, ids=["inline", "chunked"])
def test_body_that_is_not_the_signed_sha256_is_refused(grid, s3, bucket, size):
    data = os.urandom(size)
    url = _url(grid, bucket, "k")
    good = _sign(grid, url, {"x-amz-content-sha256": hashlib.sha256(data).hexdigest()})
    status, text = _send(grid, url, good, data)
    assert status == 200, text
    other = os.urandom(size)
    url = _url(grid, bucket, "bad")
    wrong = _sign(grid, url, {"x-amz-content-sha256": hashlib.sha256(other).hexdigest()})
    status, text = _send(grid, url, wrong, data)
    assert status == 400, text
    assert "<Code>XAmzContentSHA256Mismatch</Code>" in text
    assert _absent(s3, bucket, "bad")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == data


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _signed_streaming_put(grid, bucket, key, data, chunk_bytes, tamper, trailer=None, tamper_trailer=False):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload; `tamper` flips one hex digit of the
    first chunk's signature. With `trailer` = (algorithm, value), the
    STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER form: the checksum is sent after the
    last chunk with a trailer signature (`tamper_trailer` flips one digit of it)."""
    url = _url(grid, bucket, key)
    chunks = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] + [b""]
    trailer_block = b""
    canonical_trailer = ""
    if trailer is not None:
        name = f"x-amz-checksum-{trailer[0].lower()}"
        canonical_trailer = f"{name}:{trailer[1]}\n"
        trailer_block = f"{name}:{trailer[1]}\r\n".encode() + b"x-amz-trailer-signature:" + b"0" * 64 + b"\r\n"
    encoded_len = (
        sum(len(b"%x;chunk-signature=" % len(c)) + 64 + 2 + len(c) + 2 for c in chunks)
        - (2 if trailer is not None else 0)  # the empty chunk's CRLF is the trailer's
        + (len(trailer_block) + 2 if trailer is not None else 0)
    )
    extra = {}
    if trailer is not None:
        extra["x-amz-trailer"] = f"x-amz-checksum-{trailer[0].lower()}"
    headers = _sign(
        grid,
        url,
        {
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else ""),
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "Content-Length": str(encoded_len),
            **extra,
        },
    )
    auth = headers["Authorization"]
    seed = auth.split("Signature=")[1].strip()
    scope = auth.split("Credential=")[1].split(",")[0].split("/", 1)[1]
    amz_date = headers["X-Amz-Date"]
    date, region, service, _ = scope.split("/")
    key_bytes = _hmac(("AWS4" + grid.env["AWS_SECRET_ACCESS_KEY"]).encode(), date)
    for part in (region, service, "aws4_request"):
        key_bytes = _hmac(key_bytes, part)
    prev = seed
    body = b""
    for i, c in enumerate(chunks):
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256, hashlib.sha256(c).hexdigest()]
        )
        sig = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        prev = sig
        if tamper and i == 0:
            sig = ("1" if sig[0] != "1" else "2") + sig[1:]
        body += b"%x;chunk-signature=%s\r\n" % (len(c), sig.encode()) + c
        if c or trailer is None:
            body += b"\r\n"
    if trailer is not None:
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev, hashlib.sha256(canonical_trailer.encode()).hexdigest()]
        )
        sig = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        if tamper_trailer:
            sig = ("1" if sig[0] != "1" else "2") + sig[1:]
        body += trailer_block.replace(b"0" * 64, sig.encode()) + b"\r\n"
    assert len(body) == encoded_len
    return _send(grid, url, headers, body)


def test_tampered_chunk_signature_is_refused(grid, s3, bucket):
    data = os.urandom(100 * 1024)
    status, text = _signed_streaming_put(grid, bucket, "good", data, 64 * 1024, tamper=False)
    assert status == 200, text
    assert s3.get_object(Bucket=bucket, Key="good")["Body"].read() == data
    status, text = _signed_streaming_put(grid, bucket, "bad", data, 64 * 1024, tamper=True)
    assert status == 403, text
    assert "<Code>SignatureDoesNotMatch</Code>" in text
    assert _absent(s3, bucket, "bad")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_signed_trailer_checksum_and_signature(grid, s3, bucket, algorithm):
    data = os.urandom(150 * 1024)
    good = (algorithm, checksum(algorithm, data))
    status, text = _signed_streaming_put(grid, bucket, "good", data, 64 * 1024, tamper=False, trailer=good)
    assert status == 200, text
    got = s3.get_object(Bucket=bucket, Key="good", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got[f"Checksum{algorithm}"] == good[1]
    # A wrong checksum under a valid trailer signature: BadDigest.
    wrong = (algorithm, checksum(algorithm, data + b"x"))
    status, text = _signed_streaming_put(grid, bucket, "bad-sum", data, 64 * 1024, tamper=False, trailer=wrong)
    assert status == 400, text
    assert "<Code>BadDigest</Code>" in text
    assert _absent(s3, bucket, "bad-sum")
    # The right checksum under a tampered trailer signature: SignatureDoesNotMatch.
    status, text = _signed_streaming_put(
        grid, bucket, "bad-sig", data, 64 * 1024, tamper=False, trailer=good, tamper_trailer=True
    )
    assert status == 403, text
    assert "<Code>SignatureDoesNotMatch</Code>" in text
    assert _absent(s3, bucket, "bad-sig")
