"""The exceptions that modules of several layers raise, defined below all of them.

`ConfigError` is raised by `cft.config` and by the domain modules whose settings it checks
(`cft.transfer.choices`, `cft.transfer.openended`). It lives here rather than in `cft.config`, which
imports those modules to run their checks, so that they need not import the config back.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value is invalid; the message names the key."""
