"""Controller side of supervision flags: ps's health filter is checked before any host is contacted."""

import pytest

from fleet.commands.containers import ps_args
from fleet.errors import UsageError


def test_ps_health_filter_values():
    assert ps_args(False, ["health=healthy", "health=none"], None, False, False)["filters"] == [
        "health=healthy", "health=none"]
    with pytest.raises(UsageError, match="^Unrecognised filter value for health: sick$"):
        ps_args(False, ["health=sick"], None, False, False)


def test_supervision_flags_travel_as_op_args():
    from fleet.commands.runflags import parse

    spec = parse("run", "busybox", [], {"restart": "on-failure:2", "health_cmd": "true", "health_interval": "1s",
                                        "health_retries": 3, "log_driver": "json-file", "log_opt": ["max-size=1k"]})
    args = {k: spec.op_args()[k] for k in ("restart", "health_cmd", "health_interval", "health_timeout",
                                           "health_retries", "health_start_period", "no_healthcheck",
                                           "log_driver", "log_opts")}
    assert args == {"restart": "on-failure:2", "health_cmd": "true", "health_interval": "1s", "health_timeout": None,
                    "health_retries": 3, "health_start_period": None, "no_healthcheck": False,
                    "log_driver": "json-file", "log_opts": ["max-size=1k"]}
