"""Table-driven tests for Docker reference normalisation (agent_payload.image.reference)."""

import pytest

from agent_payload import errors
from agent_payload.image import reference

D64 = "sha256:" + "a" * 64

# input -> (string(), familiar(), familiar_name(), domain, path, tag, digest)
VALID = [
    ("nginx", "docker.io/library/nginx:latest", "nginx:latest", "nginx", "docker.io", "library/nginx", "latest", None),
    ("nginx:1.25", "docker.io/library/nginx:1.25", "nginx:1.25", "nginx", "docker.io", "library/nginx", "1.25", None),
    ("library/nginx", "docker.io/library/nginx:latest", "nginx:latest", "nginx", "docker.io", "library/nginx",
     "latest", None),
    ("docker.io/nginx", "docker.io/library/nginx:latest", "nginx:latest", "nginx", "docker.io", "library/nginx",
     "latest", None),
    ("index.docker.io/library/nginx:x", "docker.io/library/nginx:x", "nginx:x", "nginx", "docker.io",
     "library/nginx", "x", None),
    ("user/app", "docker.io/user/app:latest", "user/app:latest", "user/app", "docker.io", "user/app", "latest",
     None),
    ("docker.io/user/app/sub", "docker.io/user/app/sub:latest", "user/app/sub:latest", "user/app/sub",
     "docker.io", "user/app/sub", "latest", None),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest", "localhost/app", "localhost", "app",
     "latest", None),
    ("localhost:5000/ns/app:v1", "localhost:5000/ns/app:v1", "localhost:5000/ns/app:v1", "localhost:5000/ns/app",
     "localhost:5000", "ns/app", "v1", None),
    ("10.213.0.2:5000/app", "10.213.0.2:5000/app:latest", "10.213.0.2:5000/app:latest", "10.213.0.2:5000/app",
     "10.213.0.2:5000", "app", "latest", None),
    ("quay.io/coreos/etcd", "quay.io/coreos/etcd:latest", "quay.io/coreos/etcd:latest", "quay.io/coreos/etcd",
     "quay.io", "coreos/etcd", "latest", None),
    ("host:5000/ns/app@" + D64, "host:5000/ns/app@" + D64, "host:5000/ns/app@" + D64, "host:5000/ns/app",
     "host:5000", "ns/app", None, D64),
    ("nginx@" + D64, "docker.io/library/nginx@" + D64, "nginx@" + D64, "nginx", "docker.io", "library/nginx",
     None, D64),
    ("nginx:1.25@" + D64, "docker.io/library/nginx:1.25@" + D64, "nginx:1.25@" + D64, "nginx", "docker.io",
     "library/nginx", "1.25", D64),
    ("[::1]:5000/app:t", "[::1]:5000/app:t", "[::1]:5000/app:t", "[::1]:5000/app", "[::1]:5000", "app", "t", None),
    # "ns" has no dot/colon and is not localhost: Docker Hub namespace, not a registry.
    ("ns/app:t_1.0-rc", "docker.io/ns/app:t_1.0-rc", "ns/app:t_1.0-rc", "ns/app", "docker.io", "ns/app",
     "t_1.0-rc", None),
    # An uppercase first component can only be a domain (namespaces are lowercase).
    ("Registry/app", "Registry/app:latest", "Registry/app:latest", "Registry/app", "Registry", "app", "latest",
     None),
    ("a__b/c.d-e--f", "docker.io/a__b/c.d-e--f:latest", "a__b/c.d-e--f:latest", "a__b/c.d-e--f", "docker.io",
     "a__b/c.d-e--f", "latest", None),
    ("app:" + "t" * 128, "docker.io/library/app:" + "t" * 128, "app:" + "t" * 128, "app", "docker.io",
     "library/app", "t" * 128, None),
]

INVALID = [
    "",
    "Nginx",  # uppercase repository
    "ns/App",
    "a" * 64,  # looks like an image ID
    "nginx:",  # empty tag
    ":tag",
    "nginx@sha256:abc",  # short digest
    "nginx@sha256:" + "A" * 64,  # uppercase hex
    "nginx@md5:" + "a" * 32,  # unregistered algorithm
    "nginx:-tag",  # tag must start with a word character
    "nginx:" + "t" * 129,  # tag too long
    "a//b",
    "-app",
    "app-",
    "ns/app/",
    "app name",
    " nginx",
    "host:port/app",  # non-numeric port
    "x/" + "a" * 260,  # name longer than 255
    "nginx@",
]


@pytest.mark.parametrize("text,string,familiar,fname,domain,path,tag,digest", VALID)
def test_valid(text, string, familiar, fname, domain, path, tag, digest):
    ref = reference.parse(text)
    assert ref.string() == string
    assert str(ref) == string
    assert ref.familiar() == familiar
    assert ref.familiar_name() == fname
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.name == domain + "/" + path
    # Normalisation is idempotent: the normalised and the familiar forms parse back to the same thing.
    assert reference.parse(string) == ref
    assert reference.parse(familiar) == ref


@pytest.mark.parametrize("text", INVALID)
def test_invalid(text):
    with pytest.raises(errors.InvalidArgument) as exc:
        reference.parse(text)
    assert exc.value.message.startswith('invalid reference format: "{}"'.format(text))
    assert not reference.is_valid(text)


def test_lowercase_message_names_the_repository():
    with pytest.raises(errors.InvalidArgument, match=r"repository name \(library/Nginx\) must be lowercase"):
        reference.parse("Nginx")


def test_with_digest_drops_tag():
    ref = reference.parse("localhost:5000/app:v1").with_digest(D64)
    assert ref.string() == "localhost:5000/app@" + D64


def test_validate_digest():
    assert reference.validate_digest(D64) == D64
    for bad in ("sha256:" + "a" * 63, "sha256:" + "g" * 64, "sha1:" + "a" * 40, "a" * 64, None):
        with pytest.raises(errors.InvalidArgument):
            reference.validate_digest(bad)


def test_module_is_pure():
    """The controller imports the parser: it must not pull in I/O-heavy payload modules."""
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(reference))
    imported = {n.names[0].name if isinstance(n, ast.Import) else n.module
                for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))}
    assert imported <= {"re", "record", None}  # record: the pure field/equality base
