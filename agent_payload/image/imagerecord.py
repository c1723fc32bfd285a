"""A local image as the rest of the payload sees it; shared by the image store (images.py) and the puller."""

from ..record import REQUIRED, Record

NONE = "<none>"  # docker's placeholder for a missing repository, tag or digest


class ImageRecord(Record):
    """A local image as the rest of the payload sees it (layers are snapshot dirs, bottom -> top)."""

    FIELDS = (("id", REQUIRED), ("reference", REQUIRED), ("repository", REQUIRED), ("tag", REQUIRED),
              ("digest", REQUIRED), ("config", dict), ("layers", list), ("size", 0), ("created", ""))
