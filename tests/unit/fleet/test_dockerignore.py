"""fleet.build.dockerignore: Docker's .dockerignore semantics, table-driven from moby/patternmatcher's own tests
(patternmatcher_test.go: TestMatches, TestMatch; ignorefile_test.go: TestReadAll)."""

import pytest

from fleet.build import dockerignore
from fleet.build.dockerignore import PatternError, PatternMatcher

# TestMatches: (pattern, path, excluded), checked through MatchesOrParentMatches and MatchesUsingParentResults
MATCHES = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**/", "file/", True),
    ("**", "/", True),
    ("**/", "/", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**", "dir/file/", True),
    ("**/", "dir/file/", True),
    ("**/**", "dir/file", True),
    ("**/**", "dir/file/", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/file/", True),
    ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\*b", "a*b", True),
]
MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
]


def _using_parent_results(pm, text):
    parent = dockerignore.go_dir(text)
    info = None
    if parent != ".":
        dirs = parent.split("/")
        for i in range(len(dirs)):
            _, info = pm.matches_using_parent_results("/".join(dirs[:i + 1]), info)
    return pm.matches_using_parent_results(text, info)[0]


@pytest.mark.parametrize("pattern,text,excluded", MATCHES)
def test_matches(pattern, text, excluded):
    pm = PatternMatcher([pattern])
    assert pm.matches_or_parent_matches(text) is excluded
    assert _using_parent_results(pm, text) is excluded


@pytest.mark.parametrize("patterns,text,excluded", MULTI)
def test_multi_pattern(patterns, text, excluded):
    pm = PatternMatcher(patterns)
    assert pm.matches_or_parent_matches(text) is excluded
    assert _using_parent_results(pm, text) is excluded


# TestMatch: Go's filepath.Match cases through patternmatcher.Matches (None: ErrBadPattern)
MATCH = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "abc", True),
    ("a*", "ab/c", True), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True), ("a\\*b", "a*b", True), ("a\\*b", "ab", False),
    ("a?b", "a\u263ab", True), ("a[^a]b", "a\u263ab", True), ("a???b", "a\u263ab", False),
    ("a[^a][^a][^a]b", "a\u263ab", False), ("[a-\u03b6]*", "\u03b1", True), ("*[a-\u03b6]", "A", False),
    ("a?b", "a/b", False), ("a*b", "a/b", False), ("[\\]a]", "]", True), ("[\\-]", "-", True),
    ("[x\\-]", "x", True), ("[x\\-]", "-", True), ("[x\\-]", "z", False), ("[\\-x]", "x", True),
    ("[\\-x]", "-", True), ("[\\-x]", "a", False),
    ("[]a]", "]", None), ("[-]", "-", None), ("[x-]", "x", None), ("[x-]", "-", None), ("[x-]", "z", None),
    ("[-x]", "x", None), ("[-x]", "-", None), ("[-x]", "a", None), ("\\", "a", None), ("[a-b-c]", "a", None),
    ("[", "a", None), ("[^", "a", None), ("[^bc", "a", None), ("a[", "a", None), ("a[", "ab", None),
    ("*x", "xxx", True),
]


@pytest.mark.parametrize("pattern,text,expected", MATCH)
def test_match(pattern, text, expected):
    if expected is None:
        with pytest.raises(PatternError, match="syntax error in pattern"):
            dockerignore.matches(text, [pattern])
    else:
        assert dockerignore.matches(text, [pattern]) is expected


@pytest.mark.parametrize("text,patterns,expected", [
    ("fileutils.go", ["*"], True), ("fileutils.go", ["*.go"], True),
    ("fileutils.go", ["!fileutils.go", "*.go"], True), ("docs/README.md", ["docs", "!docs/README.md"], False),
    ("docs/README.md", ["docs/", "!docs/README.md"], False), ("docs/README.md", ["docs/*", "!docs/README.md"], False),
    ("fileutils.go", ["*.go", "!fileutils.go"], False), (".", ["*.go"], False), ("/any/path/there", [], False),
])
def test_simple_matches(text, patterns, expected):
    assert dockerignore.matches(text, patterns) is expected


def test_single_exclamation_is_an_error():
    with pytest.raises(PatternError, match='illegal exclusion pattern: "!"'):
        PatternMatcher(["!"])
    assert PatternMatcher(["docs", "  !docs/README.md", ""]).exclusions
    assert len(PatternMatcher(["docs", "config", ""]).patterns) == 2


def test_read_patterns():
    content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! "
    assert dockerignore.read_patterns(content) == ["test1", "test2", "a/file/here", "lastfile",
                                                   "!inverted/abs/path", "!", "!"]
    assert dockerignore.read_patterns("\ufeff# c\r\n ./a/../b/ \r\n  # not a comment\n") == [
        "b", "# not a comment"]
