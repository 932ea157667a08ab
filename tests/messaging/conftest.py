"""The cluster and sentinel rig of tests/topology, for the queue's topology tests."""

from tests.topology.conftest import cluster_group, cluster_url, sentinel_group, shared_cluster

__all__ = ["cluster_group", "cluster_url", "sentinel_group", "shared_cluster"]
