"""Settings come from environment variables with typed parsing and clear errors (no fakes needed)."""

import pytest

from digits.config import ConfigError, describe, from_env
from services.gateway.config import Config as GatewayConfig
from services.recorder.config import Config as RecorderConfig


def test_defaults_apply_when_nothing_is_set():
    assert from_env(GatewayConfig, "GATEWAY_", {}) == GatewayConfig()


def test_values_are_parsed_by_type():
    config = from_env(
        RecorderConfig,
        "RECORDER_",
        {
            "RECORDER_PORT": "6000",
            "RECORDER_CREATE_SCHEMA": "false",
            "RECORDER_CASSANDRA_HOSTS": "127.0.0.21, 127.0.0.22,127.0.0.23",
            "RECORDER_REQUEST_TIMEOUT_SECONDS": "2.5",
        },
    )
    assert config.port == 6000
    assert config.create_schema is False
    assert config.cassandra_hosts == ("127.0.0.21", "127.0.0.22", "127.0.0.23")
    assert config.request_timeout_seconds == 2.5


@pytest.mark.parametrize(("name", "value"), [("RECORDER_PORT", "http"), ("RECORDER_CREATE_SCHEMA", "maybe")])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        from_env(RecorderConfig, "RECORDER_", {name: value})


def test_secrets_are_masked_in_the_startup_log():
    config = from_env(RecorderConfig, "RECORDER_", {"RECORDER_CASSANDRA_PASSWORD": "hunter2"})
    assert describe(config, RecorderConfig.SECRETS)["cassandra_password"] == "***"
    assert "hunter2" not in str(describe(config, RecorderConfig.SECRETS))
