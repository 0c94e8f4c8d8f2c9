"""Issue 5 acceptance 4: ray_cluster.yaml passes Ray's own cluster-config schema validation."""
from __future__ import annotations

import json
import os

import yaml

from tests.conftest import REPO


def load() -> dict:
    with open(os.path.join(REPO, "ray_cluster.yaml")) as f:
        return yaml.safe_load(f)


def test_cluster_config_passes_rays_schema():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load()
    import ray.autoscaler

    with open(os.path.join(os.path.dirname(ray.autoscaler.__file__), "ray-schema.json")) as f:
        jsonschema.validate(config, json.load(f))  # the file as written
    validate_config(prepare_config(config))  # and as `ray up` fills it out


def test_cluster_has_head_cpu_and_gpu_workers_labelled_for_placement():
    types = load()["available_node_types"]
    assert types["head"]["resources"]["CPU"] == 0
    assert "cpu_node" in types["cpu_worker"]["resources"] and "gpu_node" in types["gpu_worker"]["resources"]
    setup = " ".join(load()["setup_commands"])
    assert "ffmpeg" in setup and "pip install" in setup and "model.loading.fetch" in setup
    assert "object_spilling_config" in " ".join(load()["head_start_ray_commands"])


def test_the_schema_check_can_fail():
    import jsonschema
    import pytest
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = load()
    broken["available_node_types"]["cpu_worker"]["min_workers"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))
