"""``kubectl model status``'s CONTROLLER column, read from the controller's Lease as the API server stores it."""

from __future__ import annotations

from datetime import UTC, datetime

from mlstack.serving.rollout_controller.lease import ANN_MANAGED, ownership

NOW = datetime(2027, 1, 15, 8, 0, 30, tzinfo=UTC)


def lease(
    holder: str | None = "pod-a", renewed: str = "2027-01-15T08:00:25.000000Z", managed: str = "fraud,loans"
):
    spec = {"leaseDurationSeconds": 15, "renewTime": renewed, "leaseTransitions": 2}
    if holder:
        spec["holderIdentity"] = holder
    return {
        "metadata": {"name": "mlstack-rollout-controller", "annotations": {ANN_MANAGED: managed}},
        "spec": spec,
    }


def test_a_listed_service_with_a_fresh_holder_is_active():
    owner = ownership(lease(), "loans", NOW)
    assert (owner["state"], owner["holder"], owner["renewed_seconds_ago"]) == ("active", "pod-a", 5.0)


def test_a_lease_nobody_renews_is_stale():
    assert ownership(lease(renewed="2027-01-15T07:59:00.000000Z"), "fraud", NOW)["state"] == "stale"
    assert ownership(lease(holder=None), "fraud", NOW)["state"] == "stale"  # released, no successor yet


def test_a_service_the_controller_does_not_list_is_not_managed():
    assert ownership(lease(), "other", NOW) == {"state": "-"}
    assert ownership(lease(managed="fraud-2"), "fraud", NOW) == {"state": "-"}
    assert ownership(None, "fraud", NOW) == {"state": "-"}
