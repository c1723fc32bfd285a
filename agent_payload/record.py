"""A small record base: declared fields with defaults, keyword/positional init, equality, repr, replace, as_dict.

The payload used ``dataclasses``, whose import pulls in ``inspect`` and ``ast`` (~12 ms, on every container
start); this gives the little of it we use at the cost of one module of plain Python.

    class Point(Record):
        FIELDS = (("x", REQUIRED), ("y", 0), ("tags", list))     # a type as default is a factory
        COMPARE_SKIP = ("tags",)                                 # fields left out of ==

Records are plain mutable objects unless ``FROZEN = True`` (then hashable, and setattr raises).
"""

import copy

REQUIRED = object()
_FACTORIES = (list, dict, set, tuple)


class Factory:
    """A default computed per instance: ``("cidrs", Factory(default_cidrs))``."""

    def __init__(self, fn):
        self.fn = fn


class Record:
    """Subclasses set ``FIELDS`` (name, default) in order; ``REQUIRED`` marks a field without a default."""

    FIELDS = ()
    COMPARE_SKIP = ()
    FROZEN = False

    def __init__(self, *args, **kwargs):
        if len(args) > len(self.FIELDS):
            raise TypeError("{}() takes {} positional arguments".format(type(self).__name__, len(self.FIELDS)))
        for (name, default), value in zip(self.FIELDS, args):
            if name in kwargs:
                raise TypeError("{}() got multiple values for {!r}".format(type(self).__name__, name))
            kwargs[name] = value
        for name, default in self.FIELDS:
            if name in kwargs:
                value = kwargs.pop(name)
            elif default is REQUIRED:
                raise TypeError("{}() missing required argument {!r}".format(type(self).__name__, name))
            elif isinstance(default, Factory):
                value = default.fn()
            elif default in _FACTORIES:
                value = default()
            else:
                value = default
            object.__setattr__(self, name, value)
        if kwargs:
            raise TypeError("{}() got an unexpected keyword argument {!r}".format(type(self).__name__,
                                                                                 sorted(kwargs)[0]))

    @classmethod
    def field_names(cls):
        return tuple(name for name, _ in cls.FIELDS)

    def _key(self):
        return tuple(getattr(self, name) for name, _ in self.FIELDS if name not in self.COMPARE_SKIP)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self):
        if not self.FROZEN:
            raise TypeError("unhashable type: {!r}".format(type(self).__name__))
        return hash(self._key())

    def __setattr__(self, name, value):
        if self.FROZEN:
            raise AttributeError("cannot assign to field {!r}".format(name))
        object.__setattr__(self, name, value)

    def __repr__(self):
        return "{}({})".format(type(self).__name__, ", ".join(
            "{}={!r}".format(name, getattr(self, name)) for name, _ in self.FIELDS))

    def replace(self, **changes):
        """A copy with ``changes`` applied (dataclasses.replace)."""
        values = {name: getattr(self, name) for name, _ in self.FIELDS}
        values.update(changes)
        return type(self)(**values)

    def as_dict(self):
        """A deep copy of the fields as a dict (dataclasses.asdict for JSON-ready values)."""
        return {name: copy.deepcopy(getattr(self, name)) for name, _ in self.FIELDS}
