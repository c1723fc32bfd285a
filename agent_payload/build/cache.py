"""The build cache of one host: ``<root>/build/cache/<key>`` holds the image ID a step produced.

The key (history.cache_key) is the step's parent image ID and its whole run config, the command with its
build args and, for COPY/ADD, the content hash of the sources included.  A hit whose image is gone (rmi,
prune) is a miss.  Files are written atomically (temp + rename), 0600 under a 0700 directory.
"""

import os
import re

from .. import errors
from ..state import store as files

_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


class Cache:
    def __init__(self, paths):
        self.dir = os.path.join(paths.root, "build", "cache")

    def get(self, key, store):
        try:
            with open(os.path.join(self.dir, key)) as f:
                image_id = f.read().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not _ID.match(image_id):
            return None
        try:
            return store.resolve(image_id).id
        except errors.NotFound:
            return None

    def put(self, key, image_id):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        files.write_bytes_atomic(os.path.join(self.dir, key), (image_id + "\n").encode())
