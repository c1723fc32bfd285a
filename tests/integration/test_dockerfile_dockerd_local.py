"""The parser's substitution is docker's: a real dockerd (Debian's docker.io 20.10, classic builder) builds a
``FROM scratch`` Dockerfile of ARG/ENV/LABEL corner cases (no RUN: nothing is pulled or run), and the Env and
Labels of its image are what agent_payload/build's key_values gives with docker's scoping (ARG defaults,
--build-arg, ENV over ARG, every pair of one instruction expanded with the environment before it).

20.10's lexer refuses ``${V-d}`` and ``${V+a}`` ("missing ':' in substitution"), which today's (BuildKit's
shell/lex.go, also the classic builder's since docker 23) accepts, as fleet does: they are left out here and
covered by test_shellwords's tables."""

import json

import pytest

from agent_payload.build import dockerfile
from tests.helpers.dockerd import require_binaries, running

pytestmark = pytest.mark.integration

DOCKERFILE = r"""# escape=\
ARG BASE=scratch
FROM $BASE
ARG A=a1
ARG B
ARG C
ARG EMPTY=
ENV E1=$A E2="${A}-x" E3='${A}' E4=${B:-bdef} E5=${A:+alt} E6=${EMPTY:-d} E8=${UNSET:+p}q \
    E10=${C:-cdef}
ENV OLD form with  spaces $A
ENV Q="a \"quoted\" b" R=a\ b S=\$A T=x${A}y U=$ V=a$ W="$A"'$A'
LABEL l1=$E1 "l 2"="v $A" l3=${E2} l4="${NOPE:-d e f}"
ENV E1=changed E9=$E1
LABEL l5=$E1-$E9 l6="${E4}"
ARG A=again
ENV AA=$A
"""
BUILD_ARGS = {"B": "bb", "C": ""}


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory):
    require_binaries()
    with running(tmp_path_factory.mktemp("dockerd-df")) as daemon:
        yield daemon


def _fleet_config(text, build_args):
    """Env and Labels by docker's scoping rules, from the parser's key_values."""
    df = dockerfile.parse(text)
    meta = {}
    for inst in df.meta_args:
        for key, value in dockerfile.key_values(inst, meta, df.escape):
            meta[key] = build_args.get(key, value)
    args, env, labels = {}, {}, {}

    def scope():
        merged = {k: v for k, v in args.items() if v is not None}
        merged.update(env)
        return merged
    for inst in df.stages[0].instructions:
        pairs = dockerfile.key_values(inst, scope(), df.escape)
        for key, value in pairs:
            if inst.cmd == "ARG":
                args[key] = build_args[key] if key in build_args else value
            elif inst.cmd == "ENV":
                env[key] = value
            else:
                labels[key] = value
    return ["{}={}".format(k, v) for k, v in env.items()], labels


def test_env_and_labels_are_dockers(dockerd, tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    argv = ["build", "-q", "-t", "df-subst"]
    for key, value in BUILD_ARGS.items():
        argv += ["--build-arg", "{}={}".format(key, value)]
    proc = dockerd.docker(*argv, str(tmp_path))
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    try:
        (obj,) = json.loads(dockerd.check("image", "inspect", "df-subst").stdout)
    finally:
        dockerd.check("rmi", "df-subst")
    env, labels = _fleet_config(DOCKERFILE, BUILD_ARGS)
    # the classic builder puts its default PATH first (the builder's business, not the parser's)
    assert obj["Config"]["Env"][0].startswith("PATH=")
    assert env == obj["Config"]["Env"][1:]
    assert labels == obj["Config"]["Labels"]
