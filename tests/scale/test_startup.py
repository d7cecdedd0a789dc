"""Every host starting at once (each worker creating the indexes, each host's deploy running
``setup-bucket``) neither fails nor makes anything twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.database import Database

from broker.db.indexes import _index_specs
from tests.support.cluster import Cluster
from tests.support.upload import upload

pytestmark = [pytest.mark.scale, pytest.mark.s3]


def indexes_by_collection(database: Database[dict[str, Any]]) -> dict[str, list[str]]:
    """Every index of the database (but ``_id``), by collection, sorted."""
    return {
        name: sorted(index for index in database[name].index_information() if index != "_id_")
        for name in sorted(database.list_collection_names())
    }


def test_hosts_starting_at_once_create_each_index_once(
    make_cluster: Callable[..., Cluster], database: Database[dict[str, Any]]
) -> None:
    assert database.list_collection_names() == []  # nothing before the hosts start
    # Three hosts of two workers: six processes create the indexes at the same moment.
    cluster = make_cluster(hosts=3)
    wanted: dict[str, list[str]] = {}
    for collection, _keys, options in _index_specs():
        wanted.setdefault(collection, []).append(options["name"])
    assert indexes_by_collection(database) == {name: sorted(v) for name, v in wanted.items()}
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
