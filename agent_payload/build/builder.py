"""``docker build`` on the host, as docker's classic builder (moby builder/dockerfile): one image per step.

Every instruction of the stages the target needs runs in order; each commits an image whose parent is the
previous step's (metadata steps with an empty layer), found first in the host's cache (cache.py) by the parent
image and the step's run config.  RUN runs in a container of the fleet runtime (runstep.py); COPY, ADD and
WORKDIR write their layer on the host (layers.py).  Output is the classic builder's text ("Step 2/5 : RUN ..",
" ---> Using cache", " ---> 1a2b3c4d5e6f", "Successfully built ..."), sent as ``build`` events.

Where docker's classic builder and BuildKit differ: stages the target does not need are skipped, heredocs and
``COPY --chmod`` are accepted (BuildKit); a metadata step prints no "Running in" line (no container is made).
"""

import os
import posixpath

from .. import errors, fs
from . import history as H


def short(image_id):
    return (image_id or "").split(":", 1)[-1][:12]


class Stage:
    """One stage's dispatch state (dispatchState): its image, run config, args, maintainer."""

    def __init__(self, index, name, build_args):
        self.index, self.name = index, name
        self.image_id = None  # None: FROM scratch, nothing committed yet
        self.config = H.base_config(None)
        self.build_args = build_args
        self.maintainer = ""
        self.cmd_set = False
        self.layers = []  # bottom first


class Builder:
    def __init__(self, ctx, req, emit, df, context_path):
        from . import cache as cachemod
        self.ctx, self.req, self.emit, self.df = ctx, req, emit, df
        self.store = ctx.images()
        self.cache = cachemod.Cache(ctx.paths)
        self.context_path = context_path
        self._context = None
        self.epoch = req.source_date_epoch
        if self.epoch is None and (req.build_args or {}).get("SOURCE_DATE_EPOCH") not in (None, ""):
            try:
                self.epoch = int(req.build_args["SOURCE_DATE_EPOCH"])
            except ValueError:
                raise errors.InvalidArgument("invalid SOURCE_DATE_EPOCH: {!r}".format(
                    req.build_args["SOURCE_DATE_EPOCH"]))
        self.created = H.format_created(self.epoch) if self.epoch is not None else None
        self.steps = 0
        self.cached = 0
        self.stages = {}  # index -> Stage (built ones)
        self.scratch = os.path.join(ctx.paths.root, "build", "tmp")
        fs.remove_stale(self.scratch, 24 * 3600)  # what a killed build left (step uppers, copy staging)

    # -- output ---------------------------------------------------------------------------------------------

    def out(self, text):
        if not self.req.quiet:
            self.emit("build", {"stream": text})

    # -- planning -------------------------------------------------------------------------------------------

    def stage_by_ref(self, ref, before):
        """The stage ``ref`` (a name, lower-cased, or an index) names among the first ``before`` stages."""
        for st in self.df.stages[:before]:
            if st.name is not None and st.name == ref.lower():
                return st.index
        if ref.isdigit() and int(ref) < before:
            return int(ref)
        return None

    def needed(self, target_index):
        """The stages the target depends on (FROM a stage, COPY --from a stage), the target included."""
        want, todo = set(), [target_index]
        while todo:
            i = todo.pop()
            if i in want:
                continue
            want.add(i)
            st = self.df.stages[i]
            dep = self.stage_by_ref(st.base, i)
            if "$" in st.base:
                todo.extend(range(i))
            elif dep is not None:
                todo.append(dep)
            for inst in st.instructions:
                src = inst.flags.get("from") if inst.cmd in ("COPY", "ADD") else None
                if isinstance(src, str) and "$" in src:  # known only when it runs: every earlier stage
                    todo.extend(range(i))
                elif isinstance(src, str):
                    dep = self.stage_by_ref(src, i)
                    if dep is not None:
                        todo.append(dep)
        return sorted(want)

    def target_index(self):
        if not self.df.stages:
            raise errors.InvalidArgument("the Dockerfile has no FROM: no build stage")
        if self.req.target:
            for st in self.df.stages:
                if st.name == self.req.target.lower():
                    return st.index
            raise errors.InvalidArgument("failed to reach build target {} in Dockerfile".format(self.req.target))
        return len(self.df.stages) - 1

    # -- the build ------------------------------------------------------------------------------------------

    def build(self):
        from . import dockerfile
        target = self.target_index()
        order = self.needed(target)
        extra_labels = sorted((self.req.labels or {}).items())
        total = len(self.df.meta_args) + sum(1 + len(self.df.stages[i].instructions) for i in order) + \
            len(extra_labels)
        from . import dispatch
        for i in order:  # flags fleet cannot honour, bad values: refused before anything runs
            for inst in self.df.stages[i].instructions:
                dispatch.precheck(inst)
        args = H.BuildArgs(self.req.build_args)
        n = 0
        for inst in self.df.meta_args:
            n += 1
            self.out("Step {}/{} : {}\n".format(n, total, inst.original))
            for key, value in dockerfile.key_values(inst, args.all_allowed(), self.df.escape):
                args.add_arg(key, value)
                args.add_meta(key, value)
        st = None
        for i in order:
            stage_def = self.df.stages[i]
            st = Stage(i, stage_def.name, args.clone_for_stage())
            n += 1
            self.out("Step {}/{} : {}\n".format(n, total, stage_def.original))
            self.from_image(st, stage_def)
            self.out(" ---> {}\n".format(short(st.image_id)))
            insts = list(stage_def.instructions)
            if i == target:
                insts += [_Label(k, v) for k, v in extra_labels]
            for inst in insts:
                n += 1
                self.out("Step {}/{} : {}\n".format(n, total, inst.original))
                self.dispatch(st, inst)
                self.out(" ---> {}\n".format(short(st.image_id)))
            self.stages[i] = st
        unused = args.unused()
        if unused:
            self.out("[Warning] One or more build-args [{}] were not consumed\n".format(" ".join(unused)))
        if st.image_id is None:
            raise errors.InvalidArgument("No image was generated. Is your Dockerfile empty?")
        self.out("Successfully built {}\n".format(short(st.image_id)))
        tagged = []
        for tag in self.req.tags or []:
            res = self.store.tag(st.image_id, tag)
            tagged.append(res["target"])
            self.out("Successfully tagged {}\n".format(res["target"]))
        return {"id": st.image_id, "tags": tagged, "steps": self.steps, "cached": self.cached}

    def from_image(self, st, stage_def):
        from . import shellwords
        meta = st.build_args.all_meta()
        base = shellwords.expand(stage_def.base, meta, self.df.escape)
        if not base:
            raise errors.InvalidArgument("base name ({}) should not be blank".format(stage_def.base))
        platform = self.req.platform
        if stage_def.platform:
            from agent_payload.ops.containers import run_platform
            platform = shellwords.expand(stage_def.platform, meta, self.df.escape)
            run_platform(platform)
        dep = self.stage_by_ref(base, stage_def.index)
        image_id = self.stages[dep].image_id if dep is not None else None
        if dep is None and base.lower() != "scratch":
            image_id = self.base_image(base, platform)
        if image_id is None:  # scratch, or a stage that is scratch with nothing committed
            st.image_id, st.config, st.layers = None, H.base_config(None), []
        else:
            self.set_image(st, image_id)
        triggers = list(st.config.get("OnBuild") or [])
        if triggers:
            st.config["OnBuild"] = None  # docker: the triggers run once, in the child's build
            self.out("# Executing {} build trigger{}\n".format(len(triggers), "s" if len(triggers) > 1 else ""))
            for text in triggers:
                self.dispatch(st, self.parse_trigger(text))

    def parse_trigger(self, text):
        from . import dockerfile
        return dockerfile.parse_triggers([text], escape=self.df.escape)[0]

    def base_image(self, name, platform=None):
        """A FROM image's ID: local unless --pull or missing (then pulled, as docker's classic builder)."""
        from ..image import reference
        if not self.req.pull:
            try:  # docker's GetImage: an image ID (sha256:..., a unique prefix) or a reference, local first
                return self.store.resolve(name).id
            except (errors.NotFound, errors.InvalidArgument):
                pass
        ref = reference.parse(name)
        if not self.req.pull:
            try:
                return self.store.resolve(ref.string()).id
            except errors.NotFound:
                pass
        from ..image import pull
        from agent_payload.ops.containers import run_platform
        record, _ = pull.Puller(self.store).pull(ref.string(), self.emit, run_platform(platform or self.req.platform))
        return record.id

    def set_image(self, st, image_id):
        rec = self.store.resolve(image_id)
        st.image_id = rec.id
        st.config = H.base_config(rec.config)
        st.layers = list(rec.layers)

    def advance(self, st, image_id):
        """The step's image becomes the stage's: its config (as committed) and its layers."""
        rec = self.store.resolve(image_id)
        st.image_id = rec.id
        st.config = dict(rec.config.get("config") or {})
        st.layers = list(rec.layers)

    # -- steps ----------------------------------------------------------------------------------------------

    def env(self, st):
        return H.expansion_env(st.config, st.build_args)

    def probe(self, st, container_config, extra=""):
        """A cached image for this step, or None (--no-cache: always None)."""
        self.steps += 1
        if self.req.no_cache:
            return None
        hit = self.cache.get(H.cache_key(st.image_id, container_config, extra, self.epoch), self.store)
        if hit is not None:
            self.cached += 1
            self.out(" ---> Using cache\n")
            self.advance(st, hit)
        return hit

    def commit(self, st, new_config, cmd, write_tar=None, extra="", container_id="", probe_config=None):
        from ..image import commit as commitmod
        container_config = dict(probe_config or new_config, Cmd=list(cmd))
        new_config = dict(new_config, Image=st.image_id or "")
        container_config["Image"] = st.image_id or ""
        res = commitmod.commit(self.store, st.image_id, write_tar or (lambda f: 0), new_config,
                               created_by=H.created_by(cmd), author=st.maintainer,
                               container_id="" if self.epoch is not None else container_id,
                               container_config=container_config, created=self.created)
        self.cache.put(H.cache_key(st.image_id, dict(probe_config or new_config, Cmd=list(cmd),
                                                     Image=st.image_id or ""), extra, self.epoch), res["id"])
        self.advance(st, res["id"])

    def commit_nop(self, st, comment):
        """A metadata step: probe, else commit an empty layer with ``#(nop)  <comment>`` as docker."""
        cmd = H.nop_cmd(st.config, comment)
        probe_cfg = dict(st.config, Cmd=cmd, Image=st.image_id or "")
        if self.probe(st, probe_cfg) is None:
            self.commit(st, st.config, cmd)

    def dispatch(self, st, inst):
        from . import dispatch
        handler = getattr(dispatch, "do_" + inst.cmd.lower(), None)
        if handler is None:
            raise errors.InvalidArgument("unknown instruction: {}".format(inst.cmd))
        handler(self, st, inst)

    def context(self):
        if self._context is None:
            from .sources import SourceTree
            self._context = SourceTree(self.context_path)
        return self._context

    def close(self):
        if self._context is not None:
            self._context.close()

    def workdir_path(self, st, path):
        """normalizeDest: a relative destination joined to WORKDIR (cleaned, a trailing "/" kept)."""
        if path.startswith("/"):
            return path
        dest = posixpath.normpath(posixpath.join("/", st.config.get("WorkingDir") or "/", path))
        return dest + "/" if path.endswith("/") and dest != "/" else dest


class _Label:
    """A --label of the build: one LABEL step appended to the target stage (classic builder)."""

    cmd = "LABEL"
    json = False
    heredocs = ()

    def __init__(self, key, value):
        self.key, self.value = key, value
        self.original = "LABEL {}={}".format(key, value)
        self.flags = {}
        self.args = [self.original[6:]]
        self.line = 0


def _layer_writer(upper, lowers, clamp, skip=()):
    def write(f):
        from ..runtime import changes
        return changes.write_layer_tar(upper, f, lowers, skip=skip, clamp_mtime=clamp)
    return write


Builder.layer_writer = lambda self, upper, lowers, skip=(): _layer_writer(upper, lowers, self.epoch, skip)
