""".dockerignore with Docker's semantics, ported from moby/patternmatcher (patternmatcher.go, ignorefile/).

``read_patterns(text)`` is ignorefile.ReadAll: ``#`` comments (in column 1 only), blank lines skipped, each pattern
trimmed and cleaned as Go's filepath.Clean, a leading ``/`` dropped, ``!`` exceptions.  ``PatternMatcher`` holds
Go filepath.Match patterns plus ``**`` (any number of directories): ``*`` and ``?`` never cross a ``/``, ``[...]``
classes, ``\\`` escapes.  The last pattern that matches a path (or one of its parent directories) decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ESCAPE = set(".+()|{}$")


class PatternError(ValueError):
    """A pattern Go's filepath.Match refuses ("syntax error in pattern")."""


def go_clean(path: str) -> str:
    """Go's path.Clean: "." for "", no trailing or double slashes, "." and ".." resolved lexically."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(seg)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def read_patterns(text: str) -> list[str]:
    """ignorefile.ReadAll over a .dockerignore's text."""
    out = []
    for number, line in enumerate(text.split("\n")):
        line = line.rstrip("\r")
        if number == 0 and line.startswith("\ufeff"):
            line = line[1:]
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


@dataclass
class Pattern:
    cleaned: str
    exclusion: bool = False
    dirs: list[str] = field(default_factory=list)
    kind: str = ""            # exact, prefix, suffix, regexp
    regexp: re.Pattern | None = None

    def compile(self) -> None:
        """patternmatcher's Pattern.compile (separator "/")."""
        reg, kind = "^", "exact"
        pat = self.cleaned
        i, n = 0, len(pat)
        index = 0
        while i < n:
            ch = pat[i]
            i += 1
            if ch == "*":
                if i < n and pat[i] == "*":
                    i += 1
                    if i < n and pat[i] == "/":
                        i += 1
                    if i >= n:
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            reg += ".*"
                            kind = "regexp"
                    else:
                        reg += "(.*/)?"
                        kind = "regexp"
                    if index == 0:
                        kind = "suffix"
                else:
                    reg += "[^/]*"
                    kind = "regexp"
            elif ch == "?":
                reg += "[^/]"
                kind = "regexp"
            elif ch in _ESCAPE:
                reg += "\\" + ch
            elif ch == "\\":
                if i < n:
                    reg += "\\" + pat[i]
                    i += 1
                    kind = "regexp"
                else:
                    reg += "\\"
            elif ch in "[]":
                reg += ch
                kind = "regexp"
            else:
                reg += ch
            index += 1
        if kind == "regexp":
            try:
                self.regexp = re.compile(reg + "$")
            except re.error:
                raise PatternError("syntax error in pattern") from None
        self.kind = kind

    def match(self, path: str) -> bool:
        if not self.kind:
            self.compile()
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix[:1] == "/" and path == suffix[1:]
        return bool(self.regexp.match(path))


def _get_esc(chunk: str, i: int) -> int:
    """Go's getEsc: the index after one (possibly escaped) class character; PatternError when there is none."""
    n = len(chunk)
    if i >= n or chunk[i] in "-]":
        raise PatternError("syntax error in pattern")
    if chunk[i] == "\\":
        i += 1
        if i >= n:
            raise PatternError("syntax error in pattern")
    i += 1
    if i >= n:
        raise PatternError("syntax error in pattern")
    return i


def _check_go_match(pattern: str) -> None:
    """filepath.Match(pattern, ".")'s ErrBadPattern (Go's matchChunk syntax rules for classes and escapes)."""
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise PatternError("syntax error in pattern")
            i += 2
        elif ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges > 0:
                    i += 1
                    break
                i = _get_esc(pattern, i)
                if pattern[i] == "-":
                    i = _get_esc(pattern, i + 1)
                ranges += 1
        else:
            i += 1


class PatternMatcher:
    """patternmatcher.PatternMatcher over cleaned .dockerignore patterns."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        self.exclusions = False
        for p in patterns:
            p = p.strip()
            if not p:
                continue
            p = go_clean(p)
            exclusion = False
            if p[0] == "!":
                if len(p) == 1:
                    raise PatternError('illegal exclusion pattern: "!"')
                exclusion, p = True, p[1:]
                self.exclusions = True
            _check_go_match(p)
            pat = Pattern(cleaned=p, exclusion=exclusion, dirs=p.split("/"))
            pat.compile()
            self.patterns.append(pat)

    def matches(self, file: str) -> bool:
        """PatternMatcher.Matches: the last matching pattern (on the path or its parent at the pattern's depth)."""
        matched = False
        parent = go_dir(file)
        parent_dirs = parent.split("/")
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            match = pat.match(file)
            if not match and parent != "." and len(pat.dirs) <= len(parent_dirs):
                match = pat.match("/".join(parent_dirs[:len(pat.dirs)]))
            if match:
                matched = not pat.exclusion
        return matched

    def matches_or_parent_matches(self, file: str) -> bool:
        """PatternMatcher.MatchesOrParentMatches: the path or any of its parents."""
        matched = False
        parent = go_dir(file)
        parent_dirs = parent.split("/")
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            match = pat.match(file)
            if not match and parent != ".":
                match = any(pat.match("/".join(parent_dirs[:i + 1])) for i in range(len(parent_dirs)))
            if match:
                matched = not pat.exclusion
        return matched

    def matches_using_parent_results(self, file: str, parent: list[bool] | None) -> tuple[bool, list[bool]]:
        """PatternMatcher.MatchesUsingParentResults: (excluded, per-pattern match info for the children)."""
        matched = False
        info = [False] * len(self.patterns)
        for i, pat in enumerate(self.patterns):
            match = parent[i] if parent else False
            if not match:
                if pat.exclusion != matched:
                    continue
                match = pat.match(file)
                if not match and not parent:
                    parent_path = go_dir(file)
                    if parent_path != ".":
                        dirs = parent_path.split("/")
                        match = any(pat.match("/".join(dirs[:k + 1])) for k in range(len(dirs)))
            info[i] = match
            if match:
                matched = not pat.exclusion
        return matched, info


def go_dir(path: str) -> str:
    """Go's filepath.Dir."""
    head = path.rsplit("/", 1)[0] if "/" in path else ""
    if path.startswith("/") and head == "":
        return "/"
    return go_clean(head) if head else "."


def matches(file: str, patterns: list[str]) -> bool:
    """patternmatcher.Matches."""
    pm = PatternMatcher(patterns)
    file = go_clean(file)
    return False if file == "." else pm.matches(file)


def matches_or_parent_matches(file: str, patterns: list[str]) -> bool:
    """patternmatcher.MatchesOrParentMatches."""
    pm = PatternMatcher(patterns)
    file = go_clean(file)
    return False if file == "." else pm.matches_or_parent_matches(file)
