"""The `fleet` command line (typer): parse arguments, call fleet.commands, map errors to exit status.

No logic lives here.  Command modules are imported inside each command so that `fleet ping` pays only for
what it uses (asyncssh alone takes ~0.1 s to import).  One module per area: base.py (the apps, the global
options, shared options, error mapping, run/create's flags from agent_payload/containeropts.py), hosts.py,
containers.py, netvol.py (networks, ports, volumes), images.py (images, registries, system), lab.py, ...;
importing them registers their commands, in the order `fleet --help` lists them (MODULES).

Registering is lazy too: typer builds a click command for every registered command before it parses anything
(~40 ms for all of them), so ``main()`` registers only the module of the command named on the command line when
it is a plain top-level command (COMMAND_MODULES), and everything otherwise (a group such as ``container``,
``--help``, a name it does not know).  ``fleet.cli.app`` (tests, embedding) is the fully registered app.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["app", "main"]

#: The command-line modules, in the order `fleet --help` lists their commands.
MODULES = ("hosts", "containers", "netvol", "images", "archive", "build", "deploy", "check", "events", "lab")

#: Top-level command -> the only module that registers it (tests/unit/fleet/test_cli_lazy.py checks this
#: against the fully registered app).  Groups (container, image, network, volume, system, lab, deploy's) are
#: not listed: several modules add to them.
COMMAND_MODULES = {
    **dict.fromkeys(("hosts", "ping", "facts", "version", "info"), "hosts"),
    **dict.fromkeys(("run", "exec", "ps", "create", "start", "stop", "restart", "kill", "wait", "rename", "inspect",
                     "top", "diff", "export", "rm", "logs", "update", "stats", "pause", "unpause", "attach", "commit",
                     "cp"), "containers"),
    "port": "netvol",
    **dict.fromkeys(("pull", "push", "images", "rmi", "tag", "history", "login", "logout", "configure"), "images"),
    **dict.fromkeys(("save", "load", "import"), "archive"),
    "build": "build",
    **dict.fromkeys(("services", "rollback", "down"), "deploy"),
    "check": "check",
    "events": "events",
}


def register(modules=MODULES) -> None:
    """Import (and so register the commands of) ``modules``; importing a module again is a no-op."""
    for name in modules:
        importlib.import_module("fleet.cli." + name)


def _global_value_options() -> set:
    """The global options that take a value (from base.main_options' signature, so they never drift)."""
    import inspect

    from fleet.cli import base

    names = set()
    for param in inspect.signature(base.main_options).parameters.values():
        decls = getattr(param.default, "param_decls", None)
        if decls and param.annotation not in (bool, "bool"):
            names.update(d for d in decls if d.startswith("-"))
    return names


def command_name(argv: list) -> str | None:
    """The command ``argv`` names after the global options (None if there is none or it is unclear)."""
    valued = _global_value_options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            i += 2 if ("=" not in arg and name in valued) else 1
        elif arg.startswith("-") and len(arg) > 1:
            i += 2 if arg in valued else 1  # "-iFILE": the value is attached
        else:
            return arg
    return None


def modules_for(argv: list) -> tuple:
    """The modules to register for ``argv``: the named command's only module, or all of them."""
    module = COMMAND_MODULES.get(command_name(argv) or "")
    return (module,) if module else MODULES


def __getattr__(name: str):
    if name == "app":
        register()
        from fleet.cli.base import app

        return app
    raise AttributeError("module 'fleet.cli' has no attribute {!r}".format(name))


def main() -> None:
    """Console-script entry point."""
    register(modules_for(sys.argv[1:]))
    from fleet.cli.base import app

    app()


if __name__ == "__main__":
    main()
