"""Local reads keep chunk files open for a few seconds.

`oxiod dev` reads chunks of its own rawx from their files: the rawx hands the open
file over its local-read socket, and the gateway verifies every segment itself. The
gateway then keeps the file open for a few seconds (`oxio_sdk::kept_files`), so the
next reads of the same chunk skip the exchange with the rawx; and it closes it after
that, even when no read comes, so a deleted chunk's blocks are freed.
"""

import os
import time

from test_cli import oxio_json
from test_metrics import rawx_urls, scrape, total, value

MIB = 1024 * 1024
# The gateway keeps a file 5 s and sweeps every second; the deletion of the chunks
# themselves runs in the background.
CLOSE_DEADLINE_S = 30


def open_chunk_files(grid, ids):
    """The files of chunks `ids` that the grid's process has open."""
    found = set()
    fd_dir = f"/proc/{grid.proc.pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue  # closed meanwhile
        if any(i in target for i in ids):
            found.add(target)
    return found


def test_a_second_read_uses_the_kept_files_and_they_close_after_a_delete(grid, s3, bucket):
    body = os.urandom(MIB)
    s3.put_object(Bucket=bucket, Key="kept", Body=body)
    ids = [c["chunk_id"].upper() for c in oxio_json(grid, "object", "locate", bucket, "kept")]
    assert len(ids) == 6, ids  # EC 4+2
    s3_url = grid.endpoint.rstrip("/") + "/metrics"

    def opens():
        return total([scrape(u) for u in rawx_urls(grid)], "oxio_rawx_local_opens_total", result="open")

    def reads():
        return value(scrape(s3_url), "oxio_s3_sdk_local_reads_total")

    opens0, reads0 = opens(), reads()
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == body
    opens1, reads1 = opens(), reads()
    # The four data fragments, each handed over by its rawx.
    assert opens1 - opens0 == 4 and reads1 - reads0 == 4, (opens1 - opens0, reads1 - reads0)
    assert len(open_chunk_files(grid, ids)) == 4, open_chunk_files(grid, ids)
    # Read again at once: the same four files, read here without asking the rawx.
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == body
    assert reads() - reads1 == 4
    assert opens() == opens1, "the rawx was asked again"

    s3.delete_object(Bucket=bucket, Key="kept")
    deadline = time.monotonic() + CLOSE_DEADLINE_S
    left = open_chunk_files(grid, ids)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = open_chunk_files(grid, ids)
    assert not left, f"still open {CLOSE_DEADLINE_S} s after the delete: {left}"
