"""A grid stopped and started again on the same data serves everything stored before."""

import hashlib
import os
import signal

from conftest import Grid, free_port_base


def test_restart_keeps_everything(scratch):
    data = scratch
    base = free_port_base()
    g = Grid(data=data, port_base=base).start()
    try:
        s3 = g.client()
        s3.create_bucket(Bucket="keep")
        objects = {f"o/{n}": os.urandom(n) for n in [0, 10, 40000, 1_500_000]}
        for k, v in objects.items():
            s3.put_object(Bucket="keep", Key=k, Body=v)
        creds = (g.env["AWS_ACCESS_KEY_ID"], g.env["AWS_SECRET_ACCESS_KEY"])
    finally:
        g.stop(signal.SIGINT)
    assert g.proc.returncode == 0, g.tail_log()

    g2 = Grid(data=data, port_base=base).start()
    try:
        assert (g2.env["AWS_ACCESS_KEY_ID"], g2.env["AWS_SECRET_ACCESS_KEY"]) == creds
        s3 = g2.client()
        assert "keep" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        for k, v in objects.items():
            got = s3.get_object(Bucket="keep", Key=k)["Body"].read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(v).digest(), k
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="keep")["Contents"]]
        assert keys == sorted(objects)
    finally:
        g2.stop()
