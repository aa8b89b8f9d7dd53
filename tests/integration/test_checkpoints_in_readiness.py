"""The verifiable log in `/readyz`'s degraded and in `/v1/status` (issue 22): leaves left unsigned
longer than SMD_CHECKPOINT_DEGRADED_SECONDS (check ``checkpoint``) and a witness's cosignature
of the latest checkpoint missing longer than SMD_COSIGNATURE_DEGRADED_SECONDS after it was signed
(check ``witness:<name>``) make the instance degraded, never unavailable. Both stores."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from core.audit.notes import COSIGNATURE_V1, Signer
from ops.settings import Settings, load_settings
from tests.integration.test_verifiable_log import follow, record_patients
from tests.support.stores import NOW, open_services

LIMIT = 60.0
WITNESS = "witness.example/w1"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture
def world(settings: Settings):
    witness = Signer.from_seed(WITNESS, bytes(range(32)), kind=COSIGNATURE_V1)
    clock = Clock()
    services = open_services(
        msgspec.structs.replace(
            settings,
            checkpoint_degraded_seconds=LIMIT,
            cosignature_degraded_seconds=LIMIT,
            witnesses=(witness.verifier.encode(),),
        ),
        clock=clock,
    )
    yield services, clock
    services.close()


async def test_leaves_unsigned_longer_than_the_limit_degrade_the_instance_until_a_checkpoint_covers_them(
    world,
) -> None:
    services, clock = world
    record_patients(services, patients=1, visits=1)
    follow(services)
    ready = await services.readiness()
    assert ready.checks["checkpoint"] == "ok"  # unsigned, but not for long
    clock.now += timedelta(seconds=LIMIT + 5)
    ready = await services.readiness()
    assert ready.status == "degraded"
    assert "unsigned for 65 s (no checkpoint signed yet" in ready.checks["checkpoint"], ready.checks
    assert "SMD_CHECKPOINT_DEGRADED_SECONDS=60" in ready.checks["checkpoint"]
    services.checkpointer.sign_now()
    ready = await services.readiness()
    assert ready.checks["checkpoint"] == "ok"
    # more leaves after that checkpoint: unsigned again only from when they were seen
    record_patients(services, patients=1, visits=0)
    follow(services)
    clock.now += timedelta(seconds=LIMIT - 10)
    assert (await services.readiness()).checks["checkpoint"] == "ok"


async def test_a_witness_that_has_not_cosigned_the_latest_checkpoint_for_too_long_is_named_until_it_does(
    world,
) -> None:
    services, clock = world
    record_patients(services, patients=1, visits=1)
    follow(services)
    cp = services.checkpointer.sign_now()
    assert (await services.readiness()).checks[f"witness:{WITNESS}"] == "ok"  # just signed
    clock.now += timedelta(seconds=LIMIT + 1)
    ready = await services.readiness()
    assert ready.status == "degraded" and ready.checks["checkpoint"] == "ok"
    assert ready.checks[f"witness:{WITNESS}"] == (
        f"no cosignature of the checkpoint of {cp.size} signed 61 s ago; it has cosigned nothing"
        " (more than SMD_COSIGNATURE_DEGRADED_SECONDS=60)"
    )
    services.audit.store.add_cosignature(cp.size, WITNESS, f"— {WITNESS} AAAA")
    ready = await services.readiness()
    assert ready.checks[f"witness:{WITNESS}"] == "ok" and ready.checks["checkpoint"] == "ok"


async def test_v1_status_shows_the_tree_the_latest_checkpoint_and_each_witness(world) -> None:
    from litestar.testing import AsyncTestClient

    from api.app import create_app
    from core.registry import load_file
    from ops.data_files import DEMO_DISTRICT

    services, clock = world
    load_file(services.case_record, DEMO_DISTRICT)
    follow(services)
    cp = services.checkpointer.sign_now()
    services.audit.store.add_cosignature(cp.size, WITNESS, f"— {WITNESS} AAAA")
    record_patients(services, patients=1, visits=0)
    follow(services)
    key = services.apikeys.issue("hc-north")
    async with AsyncTestClient(app=create_app(services)) as client:
        await client.get("/v1/status", headers={"Authorization": f"Bearer {key.key}"})  # leaves first seen
        clock.now += timedelta(seconds=LIMIT + 30)
        r = await client.get("/v1/status", headers={"Authorization": f"Bearer {key.key}"})
        assert r.status_code == 200
        body = r.json()
        ready = await client.get("/readyz")
    c = body["checkpoint"]
    assert c["size"] == cp.size and c["tree_size"] > cp.size and c["age_seconds"] == LIMIT + 30
    assert c["unsigned_seconds"] == LIMIT + 30 and c["degraded_seconds"] == LIMIT
    assert c["check"].startswith(f"{c['tree_size'] - cp.size} leaves unsigned for 90 s")
    assert c["witnesses"] == [{"name": WITNESS, "last_cosigned_size": cp.size, "check": "ok"}]
    assert body["status"] == "degraded" and body["checks"]["checkpoint"] == c["check"]
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"


def test_the_limits_are_settings_above_zero(tmp_path) -> None:
    base = {"SMD_DATA_DIR": str(tmp_path)}
    s = load_settings({**base, "SMD_CHECKPOINT_DEGRADED_SECONDS": "120", "SMD_COSIGNATURE_DEGRADED_SECONDS": "30"})
    assert (s.checkpoint_degraded_seconds, s.cosignature_degraded_seconds) == (120.0, 30.0)
    assert load_settings(base).checkpoint_degraded_seconds == 900.0
    with pytest.raises(Exception, match="SMD_CHECKPOINT_DEGRADED_SECONDS"):
        load_settings({**base, "SMD_CHECKPOINT_DEGRADED_SECONDS": "0"})
