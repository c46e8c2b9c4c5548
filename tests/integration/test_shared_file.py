"""Shared file-live SRs: one GlusterFS volume mounted on two hosts."""
from hosts import cluster  # noqa: F401 (fixture)


def test_hosts_see_one_filesystem(cluster):
    a, b = cluster["a"], cluster["b"]
    assert a.uuid != b.uuid
    a.run(["sh", "-c", f"echo from-a > {cluster.mnt}/hello"])
    assert b.run(["cat", f"{cluster.mnt}/hello"], text=True).stdout == "from-a\n"
