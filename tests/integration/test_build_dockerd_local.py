"""The builder against docker's own classic builder: a real dockerd (Debian's docker.io 20.10, tests/helpers/dockerd.py)
and fleet build the same Dockerfiles (CASES: every instruction; see each case's comment) from the same context
directory on the same busybox base (imported into dockerd from the very tar fleet's base is made of), with
``--network none``.  Fleet's side is what ``fleet build DIR`` does: fleet/build/context.py makes the context tar
(.dockerignore applied by fleet), the payload's ``build`` op builds it.  The images have the same config, the same
history rows (``created_by``, ``empty_layer``) after the base's, and the same file tree (paths, types, modes,
owners, link targets, contents) as both exports show: ``docker export`` of a container of docker's image and the
payload's ``export`` op on a container of fleet's.

Known, deliberate differences, normalised here: the content hashes in ``COPY file:<hash>`` (docker's tarsum of
its context files; fleet's own, the same shape) and HEALTHCHECK's history text, where docker 25 and later print
StartInterval (fleet does) and 20.10 does not.  ``FROM name@sha256:<digest>``: each side's base is pushed to a
docker-registry on loopback first (the only traffic), so each side builds from its own digest.  Fleet's base is
also tagged ``bb:base``, docker's name, for ``COPY --from=<image>``.

What the classic builder refuses and BuildKit builds (COPY --chmod, a wildcard source ending in "/", HEALTHCHECK
--retries=0, ``${V-d}``/``${V+a}``, ``COPY --from=$VAR``), fleet builds as BuildKit: BUILDKIT_ONLY checks docker's
refusal and fleet's result.  Not compared here: ADD of a URL and ``RUN --network`` other than none.
"""

import io
import os
import tarfile

import pytest

from agent_payload import errors
from tests.helpers import builds, dockerbuild
from tests.helpers import images as fx
from tests.helpers.dockerbuild import (CONFIG_KEYS, context_dir, docker_side, fleet_base, fleet_side, normal_history,
                                       pkg_tar)
from tests.helpers.runtime import integration

pytestmark = integration
env = fx.env
dockerd = dockerbuild.dockerd
registry = dockerbuild.registry

CASES = {
    "metadata": ("""ARG BASE
FROM $BASE
LABEL a=1 "b c"="d e" multi="x y"
MAINTAINER Ann <ann@example.com>
ENV K1=v1 K2="two words"
ENV K3 $K1-legacy form
EXPOSE 80 53/udp 8000-8001
VOLUME /data ["/logs"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --start-period=1s --retries=3 CMD wget -q localhost || exit 1
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/echo"]
CMD hello world
""", {}),
    "files": ("""ARG BASE
FROM $BASE
ARG V=1
COPY a.txt /dst/
COPY dir /opt/dir
COPY --chown=app:staff b* /owned/
COPY dir/sub/ /flat/
ADD pkg.tar /x/
RUN echo "v=$V" > /run.txt && rm /tmp/.keep && mkdir -p /made/deep && chmod 700 /made
SHELL ["/bin/sh", "-ec"]
RUN ln -s /run.txt /link && echo second
""", {"a.txt": b"A\n", "b1": b"B1\n", "b2": (b"B2\n", 0o755), "dir/x": b"X\n", "dir/sub/y": (b"Y\n", 0o600),
      "dir/ln": ("link", "x"), "dir/empty/": None}),
    "user_workdir": ("""ARG BASE
FROM $BASE
USER app
WORKDIR /srv/new/deeper
RUN id -u > /tmp/uid && id -g
USER root:staff
WORKDIR rel
COPY a.txt .
ENTRYPOINT /bin/sh -c 'echo hi'
""", {"a.txt": b"A\n"}),
    "multistage": ("""ARG BASE
FROM $BASE AS build
RUN mkdir /out && echo built > /out/artifact && chmod 640 /out/artifact
FROM $BASE AS unused
RUN echo never
FROM $BASE
COPY --from=build /out/ /app/
COPY --from=0 /out/artifact /single
""", {}),
    "volume_whiteouts": ("""ARG BASE
FROM $BASE
RUN mkdir -p /data/sub /opq/old && echo a > /data/sub/f && echo b > /etc/extra && echo o > /opq/old/f
VOLUME /data
RUN echo lost > /data/lost && rm -f /etc/extra && rm -rf /opq && mkdir -p /opq/new
HEALTHCHECK NONE
ENV PATH=/custom:$PATH
""", {}),
    "args_shell": ("""ARG BASE
FROM $BASE
ARG A=a1
ARG B
ENV E1=$A E2=${B:-bdef} E3="${A}-x" E4='$A'
SHELL ["/bin/sh", "-ec"]
RUN echo "$A $B $E1 $E2" > /args
CMD echo from-shell
ENTRYPOINT ["/bin/sh"]
USER 1000:50
STOPSIGNAL 9
WORKDIR /
COPY dir /etc/
COPY a.txt /etc/passwd.d
COPY dir/sub /etc/
""", {"a.txt": b"A\n", "dir/x": (b"X\n", 0o640), "dir/sub/y": b"Y\n"}),
    # ONBUILD through a child: "parent" is built first (PARENTS), the child runs its triggers
    "onbuild_child": ("""FROM onbuild-parent
RUN cat /trig /onbuild/a.txt > /both
""", {"a.txt": b"A\n"}),
    # .dockerignore with exceptions, applied by fleet's context builder as `fleet build DIR` applies it; listing
    # the Dockerfile and .dockerignore hides them from the build (docker's removeDockerfile)
    "dockerignore": ("""ARG BASE
FROM $BASE
COPY . /ctx/
RUN find /ctx | sort > /listing
""", {".dockerignore": b"# comment\n*.log\n!keep.log\nbuild\n!build/keep\n**/*.tmp\nsecret*\n/docs/*.md\n"
                        b"!docs/read?e.md\n./pkg.tar*\nDockerfile\n.dockerignore\n",
      "keep.log": b"k\n", "drop.log": b"d\n", "build/out.o": b"o", "build/keep": b"kept\n",
      "src/main.c": b"int main;\n", "src/a.tmp": b"t", "src/deep/b.tmp": b"t", "secret.key": b"s",
      "docs/readme.md": b"r\n", "docs/other.md": b"o\n", "docs/sub/x.md": b"x\n"}),
    # FROM scratch, FROM an image by its ID (sha256:... digest), a stage by name, COPY --from both
    "from_digest_scratch": ("""ARG BASE
FROM scratch AS empty
COPY a.txt /only/
FROM $BASE AS img
RUN echo in-img > /marker
FROM ${BASE}
COPY --from=empty /only /from-scratch
COPY --from=img /marker /etc/group /copied/
COPY --from=bb:base /etc/passwd /from-image/
CMD ["/bin/sh", "-c", "echo $HOME"]
""", {"a.txt": b"A\n"}, {"base": "id"}),
    # FROM name@sha256:<manifest digest>: each builder's base pushed to a registry on loopback first
    "from_repo_digest": ("""ARG BASE
FROM ${BASE} AS pinned
RUN echo pinned > /pinned
FROM $BASE
COPY --from=pinned /pinned /
""", {}, {"base": "digest"}),
    # RUN exec form, SHELL for shell-form RUN/ENTRYPOINT (not CMD's exec form), HEALTHCHECK with all 20.10 options
    "run_exec_health": ("""ARG BASE
FROM $BASE
SHELL ["/bin/sh", "-xc"]
RUN ["/bin/sh", "-c", "echo exec > /exec-form"]
RUN ["touch", "/touched"]
RUN echo shell-form > /shell-form
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=4 CMD ["/bin/true"]
HEALTHCHECK --interval=1m30s --timeout=500ms --retries=1 CMD test -f /exec-form || exit 1
HEALTHCHECK NONE
ENTRYPOINT echo entry
CMD ["a", "b"]
EXPOSE 8080/tcp 9090/udp 7000-7001/tcp 8080
STOPSIGNAL SIGRTMIN+3
LABEL "com.example.k"="v" empty="" 'single q'='x'
""", {}),
    # ADD: a file renamed, a directory's contents, plain and gzipped tars extracted (into a new dir named like a
    # tar too), a file that only looks like a tar copied as it is, --chown on files and on an extracted tar
    "add_local": ("""ARG BASE
FROM $BASE
ADD a.txt /added/renamed.txt
ADD dir /added-dir/
ADD pkg.tar /opt/
ADD pkg.tar.gz /opt2
ADD pkg.tar /as-file.tar
ADD notatar.tar /raw/
ADD --chown=50:1000 pkg.tar /owned-tar/
ADD --chown=1000:50 a.txt dir /multi/
ADD --chown=app pkg.tar a.txt /mixed-tar-first/
ADD --chown=app a.txt pkg.tar /mixed-file-first/
""", {"a.txt": b"A\n", "dir/x": (b"X\n", 0o604), "dir/sub/y": b"Y\n", "notatar.tar": b"not a tar\n"}),
    # COPY: globs (*, ?, [..]), a name with a space (JSON form), dir/* (the contents of matched dirs), renames,
    # --chown by name only, by numbers, mixed, onto a path through an existing directory
    "copy_globs": ("""ARG BASE
FROM $BASE
COPY *.txt /glob/
COPY d?r /qdir/
COPY ["sp ace.txt", "/with space/"]
COPY dir/* /star/
COPY [ab].txt /class/
COPY a.txt /newname
COPY dir /etc/merged/
COPY --chown=app a.txt /chown-user-only
COPY --chown=1000:50 dir /chown-num/
COPY --chown=app:1000 b1 /chown-mixed/
COPY --chown=app:staff dir/sub /tmp/deep/new/
""", {"a.txt": b"A\n", "b.txt": b"B\n", "c.md": b"C\n", "sp ace.txt": b"S\n", "b1": (b"B1\n", 0o700),
      "dir/x": b"X\n", "dir/sub/y": b"Y\n", "dir/ln": ("link", "x"), "dar/z": b"Z\n"}),
    # ARG/ENV substitution corners: ENV sees the env before its own instruction, ENV beats ARG, build args with
    # and without defaults, a global ARG redeclared, :- and :+ on unset and empty, escapes and quotes, $A_B as one
    # name; variables in LABEL, EXPOSE, WORKDIR, USER, VOLUME, STOPSIGNAL, COPY
    "arg_env_corners": ("""ARG BASE
ARG GLOBAL=g1
ARG NOTREDECLARED=n1
FROM $BASE
ARG GLOBAL
ARG OVER=default
ARG UNSET
ARG EMPTY=x
ENV A=1 B=two
ENV A=2 C=$A D=${B}_x E=$A_B F=\\$A G='$A' H="$A $B" I=${UNSET:-dflt} J=${A:+alt} K=${UNSET:+alt} L=${EMPTY:-e}
ENV OLD $A and ${B} "quoted"
ENV OVER=env-wins
ARG OVER=arg-loses
LABEL l1=$GLOBAL l2=${OVER} l3="$C/$D" l4=${NOTREDECLARED:-gone}
ENV PORT=8081 DIR=/w SIG=SIGQUIT U=app VOL=/v1 SRC=b.txt
EXPOSE $PORT ${PORT}/udp
WORKDIR $DIR/${A}
USER ${U}:staff
VOLUME $VOL ["${DIR}/v2"]
STOPSIGNAL $SIG
RUN echo "$GLOBAL|$OVER|$UNSET|$EMPTY|$A|$C|$NOTREDECLARED" > /tmp/seen
COPY ${SRC:-a.txt} /copied-$A.txt
""", {"a.txt": b"A\n", "b.txt": b"B\n"}, {"args": {"OVER": "from-cli", "EMPTY": ""}}),
    # USER that does not exist (yet): numeric ids no passwd names, a name no RUN needs, a name a RUN adds later;
    # WORKDIRs made under them (as root, docker 20.10)
    "users_not_there_yet": ("""ARG BASE
FROM $BASE
USER 4242:4243
WORKDIR /home/nobody/work
RUN id > /tmp/id-numeric; touch ./denied 2>/dev/null; touch /tmp/by-4242
USER ghost
WORKDIR /ghost/dir
COPY a.txt .
USER root
RUN echo "late:x:1500:1500::/home/late:/bin/sh" >> /etc/passwd && echo "late:x:1500:" >> /etc/group
USER late
WORKDIR /home/late/w
RUN id -u > /tmp/late-id && touch /tmp/late-file
""", {"a.txt": b"A\n"}),
}
PARENTS = {"onbuild_child": ("onbuild-parent", """ARG BASE
FROM $BASE
ONBUILD COPY a.txt /onbuild/
ONBUILD RUN echo trig > /trig
CMD ["sh"]
""")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_config_history_and_files_as_dockers_classic_builder(dockerd, env, tmp_path, name, request):
    dockerfile, files, opts = (CASES[name] + ({},))[:3]
    if opts.get("base") == "digest":
        opts = dict(opts, registry=request.getfixturevalue("registry"))
    fleet_base(env)
    if name in PARENTS:
        parent, parent_df = PARENTS[name]
        ctx = context_dir(tmp_path, name + "-parent", parent_df, files)
        docker_side(dockerd, ctx, name + "-parent", opts, tag=parent)
        fleet_side(env, ctx, name + "-parent", opts, tag=parent)
    ctx = context_dir(tmp_path, name, dockerfile, files)
    d_cfg, d_hist, d_tree = docker_side(dockerd, ctx, name, opts)
    f_cfg, f_hist, f_tree = fleet_side(env, ctx, name, opts)
    for key in CONFIG_KEYS:
        assert f_cfg.get(key) == d_cfg.get(key), (key, f_cfg.get(key), d_cfg.get(key))
    assert normal_history(f_hist) == normal_history(d_hist)
    assert sorted(set(f_tree) - set(d_tree)) == []
    assert sorted(set(d_tree) - set(f_tree)) == []
    assert {p: v for p, v in f_tree.items() if d_tree[p] != v} == {p: v for p, v in d_tree.items() if f_tree[p] != v}


def test_step_lines_and_cache_hits_are_dockers(dockerd, env, tmp_path):
    """The "Step N/M : ..." lines, " ---> Using cache" on a second build, the unused build-arg warning."""
    fleet_base(env)
    dockerfile, files = CASES["files"]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    with tarfile.open(fileobj=io.BytesIO(builds.context_tar(files, dockerfile))) as tar:
        tar.extractall(str(ctx))  # our own tar, written just above
    (ctx / "pkg.tar").write_bytes(pkg_tar())
    argv = ["build", "--network", "none", "--build-arg", "BASE=bb:base", "--build-arg", "UNUSED=1", str(ctx)]
    dockerd.check(*argv, timeout=300)
    d_out = dockerd.check(*argv, timeout=300).stdout.decode()
    files = dict(files, **{"pkg.tar": pkg_tar()})
    args = {"BASE": "busybox", "UNUSED": "1"}
    builds.build(env, dockerfile, files, build_args=args)
    result, f_out = builds.build(env, dockerfile, files, build_args=args)

    def lines(text):
        return [line.replace("bb:base", "busybox") for line in text.splitlines()
                if line.startswith(("Step ", " ---> Using cache", "[Warning]"))]
    assert lines(f_out) == lines(d_out)
    assert result["cached"] == result["steps"] == d_out.count(" ---> Using cache")


#: Where docker 20.10's classic builder refuses what BuildKit (docker's default builder since 23) builds, fleet
#: builds it as BuildKit: (Dockerfile, what the classic builder says, a script run in fleet's image or a config key,
#: its output or value).
BUILDKIT_ONLY = {
    "copy_chmod": ("ARG BASE\nFROM $BASE\nCOPY --chmod=640 a.txt /a\n",
                   "the --chmod option requires BuildKit", "stat -c %a /a", "640\n"),
    "wildcard_dir_slash": ("ARG BASE\nFROM $BASE\nCOPY d?r/ /q/\n",
                           "no source files were specified", "cat /q/x", "X\n"),
    "healthcheck_retries_0": ("ARG BASE\nFROM $BASE\nHEALTHCHECK --retries=0 CMD true\n",
                              "--retries must be at least 1 (not 0)", "Healthcheck", {"Test": ["CMD-SHELL", "true"]}),
    "copy_from_a_variable": ("ARG BASE\nFROM $BASE\nARG BASE\nCOPY --from=$BASE /etc/group /g\n",
                             "invalid from flag value $BASE", "cat /g", builds.GROUP.decode()),
    "default_without_colon": ("ARG BASE\nFROM $BASE\nENV A=${UNSET-dflt} B=${A+alt}\n",
                              "missing ':' in substitution", "Env", ["A=dflt", "B="]),
}


@pytest.mark.parametrize("name", sorted(BUILDKIT_ONLY))
def test_what_only_buildkit_builds_fleet_builds(dockerd, env, tmp_path, name):
    dockerfile, refusal, check, expected = BUILDKIT_ONLY[name]
    fleet_base(env)
    ctx = context_dir(tmp_path, name, dockerfile, {"a.txt": b"A\n", "dir/x": b"X\n"})
    proc = dockerd.docker("build", "--network", "none", "-q", "--build-arg", "BASE=bb:base", str(ctx), timeout=300)
    assert proc.returncode != 0 and refusal in (proc.stdout + proc.stderr).decode()
    cfg, _, _ = fleet_side(env, ctx, name, {}, tag="bk-" + name.replace("_", "-"))
    if check[:1].isupper():
        value = cfg[check]
        assert (value[1:] if check == "Env" else value) == expected  # (Env: after the base's PATH)
    else:
        assert builds.run(env, "bk-" + name.replace("_", "-"), check) == expected


def test_copy_outside_the_context_fails_the_step_as_docker_and_leaves_nothing(dockerd, env, tmp_path):
    """``COPY ../x``: docker's error, at the step (the RUN before it ran and stays as the cache's intermediate
    image, as docker's); no tag, no container, no scratch directory left behind, on either side."""
    fleet_base(env)
    dockerfile = "ARG BASE\nFROM $BASE\nRUN echo first > /first\nCOPY ../x /x\n"
    ctx = context_dir(tmp_path, "outside", dockerfile, {"x": b"x\n"})
    d_before = set(dockerd.check("images", "-a", "-q").stdout.split())
    proc = dockerd.docker("build", "--network", "none", "--build-arg", "BASE=bb:base", "-t", "out:1", str(ctx),
                          timeout=300)
    d_text = (proc.stdout + proc.stderr).decode()
    message = "COPY failed: forbidden path outside the build context: ../x ()"
    assert proc.returncode == 1 and message + "\n" in d_text
    d_new = set(dockerd.check("images", "-a", "-q").stdout.split()) - d_before
    assert dockerd.check("ps", "-a", "-q").stdout == b""
    assert dockerd.docker("image", "inspect", "out:1").returncode == 1
    f_before = set(env.store._read_index()["images"])
    with pytest.raises(errors.InvalidArgument) as exc:
        fleet_side(env, ctx, "outside", {}, tag="out:1")
    assert str(exc.value) == message
    f_new = set(env.store._read_index()["images"]) - f_before
    assert len(f_new) == len(d_new) == 1  # the RUN step's image, kept for the cache
    with pytest.raises(errors.NotFound):
        env.store.resolve("out:1")
    assert env.rt.list(all=True) == []
    assert os.listdir(os.path.join(env.paths.root, "build", "tmp")) == []
