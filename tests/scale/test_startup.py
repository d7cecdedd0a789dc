"""Every host starting at once (each worker creating the indexes, each host's deploy running
``setup-bucket``) neither fails nor makes anything twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.database import Database

from broker.db.indexes import missing_indexes
from tests.support.cluster import Cluster
from tests.support.upload import upload

pytestmark = [pytest.mark.scale, pytest.mark.s3]


def index_keys(database: Database[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """The key pattern of every index of the database, by collection."""
    return {
        name: [tuple(info["key"]) for info in database[name].index_information().values()]
        for name in database.list_collection_names()
    }


def test_hosts_starting_at_once_create_each_index_once(
    make_cluster: Callable[..., Cluster], database: Database[dict[str, Any]]
) -> None:
    assert database.list_collection_names() == []  # nothing before the hosts start
    # Three hosts of two workers: six processes create the indexes at the same moment.
    cluster = make_cluster(hosts=3)
    # Every index the broker relies on is in place as specified, and none twice under
    # another name.
    assert missing_indexes(database) == []
    keys = index_keys(database)
    assert {"images", "uploads", "rate_limits"} <= set(keys)
    assert all(len(patterns) == len(set(patterns)) for patterns in keys.values()), keys
    for instance in cluster.instances:
        assert instance.call("GET", "/readyz").status_code == 200
        log = instance.server.log_path.read_text()
        assert "cannot create the MongoDB indexes" not in log and "Traceback" not in log
    # And they serve: an upload presigned on one host is confirmed on another.
    assert upload(cluster.api).image["owner"] == "alice"


def test_setup_bucket_on_every_host_at_once_applies_each_rule_once(
    make_cluster: Callable[..., Cluster], s3: Any, rgw_bucket: str
) -> None:
    cluster = make_cluster()
    finished = cluster.everywhere("setup-bucket")
    assert [run.returncode for run in finished] == [0, 0], finished
    # Whatever order the hosts ran in, the bucket holds each rule once.
    policy = s3.get_bucket_policy(Bucket=rgw_bucket)["Policy"]
    assert policy.count('"Effect"') == policy.count('"Effect": "Deny"') == 1, policy
    rules = s3.get_bucket_lifecycle_configuration(Bucket=rgw_bucket)["Rules"]
    assert len({rule["ID"] for rule in rules}) == len(rules), rules
    assert len(s3.get_bucket_cors(Bucket=rgw_bucket)["CORSRules"]) >= 1
    # Run again, everywhere at once: nothing left to change, nothing fails.
    again = cluster.everywhere("setup-bucket")
    assert [run.returncode for run in again] == [0, 0], again
    assert s3.get_bucket_policy(Bucket=rgw_bucket)["Policy"] == policy
    assert upload(cluster.api).image["key"]
