#!/usr/bin/env python3
"""A do-nothing S3 endpoint: the ceiling of what an S3 server can serve on this machine.

It keeps every object PUT to it in memory and answers a GET with those same bytes
(one `sendall` of the head, one of the body), so a GET costs the machine no more than
parsing a request and copying bytes into a loopback socket. There is no storage, no
authentication and no checksum: the figure it gives is the upper bound the benchmark
compares real servers with.

Path-style requests only. Bucket calls (PUT, HEAD, DELETE) succeed; GET on a bucket is
a minimal ListObjectsV2 (prefix, start-after, continuation-token, max-keys). Memory is
bounded: one object at most MAX_OBJECT_BYTES, all objects together at most
--max-bytes; a PUT past either limit gets 400 EntityTooLarge / 507.

Usage: null_s3.py --port PORT [--bind 127.0.0.1] [--max-bytes N]
"""

import argparse
import hashlib
import signal
import socket
import socketserver
import sys
import threading
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_OBJECT_BYTES = 1 << 30
MAX_KEYS_PER_PAGE = 1000
RECV_CHUNK = 1 << 20
IDLE_TIMEOUT_S = 120


class Store:
    """Objects by (bucket, key), with a byte budget."""

    def __init__(self, max_bytes):
        self.lock = threading.Lock()
        self.objects = {}
        self.bytes = 0
        self.max_bytes = max_bytes

    def put(self, bucket, key, body):
        with self.lock:
            old = self.objects.get((bucket, key))
            grow = len(body) - (len(old[0]) if old else 0)
            if self.bytes + grow > self.max_bytes:
                return False
            etag = '"%s"' % hashlib.md5(body[:4096]).hexdigest()
            self.objects[(bucket, key)] = (body, etag)
            self.bytes += grow
            return True

    def get(self, bucket, key):
        with self.lock:
            return self.objects.get((bucket, key))

    def delete(self, bucket, key):
        with self.lock:
            old = self.objects.pop((bucket, key), None)
            if old:
                self.bytes -= len(old[0])

    def keys(self, bucket, prefix, after, limit):
        with self.lock:
            found = sorted(
                (k, len(v[0])) for (b, k), v in self.objects.items() if b == bucket and k.startswith(prefix) and k > after
            )
        return found[:limit], len(found) > limit


class Handler(socketserver.BaseRequestHandler):
    """One keep-alive connection: requests are read and answered in turn."""

    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request.settimeout(IDLE_TIMEOUT_S)
        self.buf = b""

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD_BYTES:
                return None
            chunk = self.request.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or len(lines) > MAX_HEADERS:
            return None
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return parts[0], parts[1], headers

    def read_body(self, length):
        body = bytearray(length)
        view = memoryview(body)
        have = min(len(self.buf), length)
        view[:have] = self.buf[:have]
        self.buf = self.buf[have:]
        while have < length:
            n = self.request.recv_into(view[have:], min(RECV_CHUNK, length - have))
            if n == 0:
                return None
            have += n
        return bytes(body)

    def send(self, status, headers=(), body=b"", send_body=True):
        head = ["HTTP/1.1 %s" % status, "Content-Length: %d" % len(body), "x-amz-request-id: null"]
        head += ["%s: %s" % h for h in headers]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if send_body and len(body) <= 65536:
            self.request.sendall(data + body)
        else:
            self.request.sendall(data)
            if send_body and body:
                self.request.sendall(memoryview(body))

    def error(self, status, code, send_body=True):
        xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code></Error>" % code).encode()
        self.send(status, [("Content-Type", "application/xml")], xml, send_body)

    def handle(self):
        store = self.server.store
        while True:
            try:
                req = self.read_head()
            except (OSError, UnicodeDecodeError):
                return
            if req is None:
                return
            method, target, headers = req
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                return
            if length < 0 or length > MAX_OBJECT_BYTES:
                self.error("400 Bad Request", "EntityTooLarge")
                return
            try:
                body = self.read_body(length) if length else b""
                if body is None:
                    return
                self.route(store, method, target, body)
            except OSError:
                return

    def route(self, store, method, target, body):
        url = urlsplit(target)
        path = unquote(url.path).lstrip("/")
        bucket, _, key = path.partition("/")
        head_only = method == "HEAD"
        if not bucket:
            xml = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>"
            self.send("200 OK", [("Content-Type", "application/xml")], xml, not head_only)
        elif not key:
            if method == "GET":
                self.list_objects(store, bucket, parse_qs(url.query))
            elif method == "DELETE":
                self.send("204 No Content")
            else:
                self.send("200 OK", send_body=not head_only)
        elif method == "PUT":
            if store.put(bucket, key, body):
                self.send("200 OK", [("ETag", hashlib.md5(body[:4096]).hexdigest())])
            else:
                self.error("507 Insufficient Storage", "InsufficientStorage")
        elif method in ("GET", "HEAD"):
            found = store.get(bucket, key)
            if found is None:
                self.error("404 Not Found", "NoSuchKey", not head_only)
                return
            data, etag = found
            headers = [("ETag", etag), ("Content-Type", "application/octet-stream")]
            self.send("200 OK", headers, data, not head_only)
        elif method == "DELETE":
            store.delete(bucket, key)
            self.send("204 No Content")
        else:
            self.error("405 Method Not Allowed", "MethodNotAllowed")

    def list_objects(self, store, bucket, query):
        one = lambda name, default="": query.get(name, [default])[0]
        prefix = one("prefix")
        after = max(one("start-after"), one("continuation-token"))
        try:
            limit = max(0, min(int(one("max-keys", str(MAX_KEYS_PER_PAGE))), MAX_KEYS_PER_PAGE))
        except ValueError:
            limit = MAX_KEYS_PER_PAGE
        keys, more = store.keys(bucket, prefix, after, limit)
        items = "".join(
            "<Contents><Key>%s</Key><Size>%d</Size><ETag>%s</ETag><LastModified>2000-01-01T00:00:00.000Z</LastModified>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            % (escape(k), size, escape('"0"'))
            for k, size in keys
        )
        token = "<NextContinuationToken>%s</NextContinuationToken>" % escape(keys[-1][0]) if more and keys else ""
        xml = (
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>%s</Name><Prefix>%s</Prefix>"
            "<KeyCount>%d</KeyCount><MaxKeys>%d</MaxKeys><IsTruncated>%s</IsTruncated>%s%s</ListBucketResult>"
            % (escape(bucket), escape(prefix), len(keys), limit, "true" if more else "false", token, items)
        ).encode()
        self.send("200 OK", [("Content-Type", "application/xml")], xml)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--max-bytes", type=int, default=2 << 30, help="memory for all objects together")
    args = ap.parse_args()
    server = Server((args.bind, args.port), Handler)
    server.store = Store(args.max_bytes)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("null-s3 ready on http://%s:%d" % (args.bind, args.port), flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
