"""Checks of the supervision settings a container spec carries: the restart policy and the healthcheck config.

A leaf (errors only): spec.py validates with it; restart.py (``restart.parse``, ``restart.check``) and health.py
(``health.check``), which act on the settings, re-export these under their old names.
"""

from .. import errors

POLICIES = ("no", "always", "on-failure", "unless-stopped")
NO_POLICY = {"Name": "no", "MaximumRetryCount": 0}
MIN_DURATION = 10 ** 6  # 1ms


def parse_restart(text):
    """``--restart`` as typed (``no``, ``always``, ``on-failure[:N]``, ``unless-stopped``) -> a checked policy dict.

    None or "" is ``no``.  Raises InvalidArgument with docker's messages.
    """
    if text is None or text == "":
        return dict(NO_POLICY)
    name, sep, count = text.partition(":")
    if sep and not name:
        raise errors.InvalidArgument("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise errors.InvalidArgument("invalid restart policy format: maximum retry count must be an integer")
    return check_restart({"Name": name, "MaximumRetryCount": retries})


def check_restart(policy):
    """Validate a stored policy dict ({"Name", "MaximumRetryCount"}); returns a normalised copy."""
    if policy is None:
        return dict(NO_POLICY)
    if not isinstance(policy, dict):
        raise errors.InvalidArgument("restart_policy must be an object")
    name = policy.get("Name") or "no"
    retries = policy.get("MaximumRetryCount") or 0
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise errors.InvalidArgument("invalid restart policy: maximum retry count must be an integer")
    if name not in POLICIES:
        raise errors.InvalidArgument("invalid restart policy: unknown policy '{}'; use one of 'no', 'always', "
                                     "'on-failure', or 'unless-stopped'".format(name))
    if name != "on-failure" and retries != 0:
        msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        if retries < 0:
            msg += " and cannot be negative"
        raise errors.InvalidArgument(msg)
    if retries < 0:
        raise errors.InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    return {"Name": name, "MaximumRetryCount": retries}


def check_auto_remove(policy, auto_remove):
    """docker refuses ``--rm`` together with a restart policy."""
    if auto_remove and policy["Name"] != "no":
        raise errors.InvalidArgument("Conflicting options: cannot specify both --restart and --rm")


def check_healthcheck(hc):
    """Docker's daemon-side checks of a healthcheck dict; returns a normalised copy (None stays None)."""
    if hc is None:
        return None
    if not isinstance(hc, dict):
        raise errors.InvalidArgument("healthcheck must be an object")
    test = hc.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise errors.InvalidArgument("Healthcheck Test must be a list of strings")
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise errors.InvalidArgument("unknown healthcheck type '{}' (expected CMD, CMD-SHELL or NONE)".format(
            test[0]))
    out = {"Test": list(test)}
    for key in ("Interval", "Timeout", "StartPeriod", "Retries"):
        value = hc.get(key) or 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise errors.InvalidArgument("Healthcheck {} must be an integer".format(key))
        if key == "Retries":
            if value < 0:
                raise errors.InvalidArgument("Retries in Healthcheck cannot be negative")
        elif value != 0 and value < MIN_DURATION:
            raise errors.InvalidArgument("{} in Healthcheck cannot be less than 1ms".format(key))
        out[key] = value
    return out
