"""Errors a user can act on: each message says what failed, where, and what to do."""


class AvtoolError(Exception):
    """Base of every expected failure; the CLI prints it in one line."""

    exit_code = 1


class InputError(AvtoolError):
    """Bad input: a missing or malformed file, a wrong option, a bad config."""

    exit_code = 2


class ConfigError(InputError):
    """A config file or `--set` override that cannot be applied."""


class StaleOutputError(InputError):
    """An output directory was made with another config; rerun with --force to replace it."""


class StageFailed(AvtoolError):
    """A stage ran but did not finish: too many rejects, a failed shard, a failed job."""


class ItemError(AvtoolError):
    """One item of a per-item stage is unusable; the stage logs it as a reject and goes on."""

    exit_code = 2


class NetworkError(AvtoolError):
    """An HTTP request failed after its retries."""
