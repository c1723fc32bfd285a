"""A minimal D-Bus client (stdlib only) for talking to systemd on its private socket.

Enough of the D-Bus specification (https://dbus.freedesktop.org/doc/dbus-specification.html) for method calls to
``org.freedesktop.systemd1``: the wire format (marshalling of the basic types, strings, object paths,
signatures, arrays, structs, dict entries and variants in either byte order), ``AUTH EXTERNAL`` on a UNIX
socket, method calls with their reply or error, and signals kept for the caller (``JobRemoved``).

``/run/systemd/private`` is systemd's own peer-to-peer socket (what ``systemctl`` uses as root when no bus
daemon runs): root may use it, no ``Hello`` is needed, and systemd sends its signals to every such peer.

Values in Python: y/n/q/i/u/x/t ints, b bool, d float, s/o/g str, arrays lists (``a{..}`` dicts), structs
tuples, variants ``(signature, value)`` pairs.
"""

import os
import select
import socket
import struct
import time

SYSTEMD_PRIVATE = "/run/systemd/private"
SYSTEMD_DEST = "org.freedesktop.systemd1"
SYSTEMD_PATH = "/org/freedesktop/systemd1"
SYSTEMD_MANAGER = "org.freedesktop.systemd1.Manager"

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
NO_REPLY_EXPECTED = 0x1
# header field codes and their types
PATH, INTERFACE, MEMBER, ERROR_NAME, REPLY_SERIAL, DESTINATION, SENDER, SIGNATURE = 1, 2, 3, 4, 5, 6, 7, 8
_FIELD_TYPES = {PATH: "o", INTERFACE: "s", MEMBER: "s", ERROR_NAME: "s", REPLY_SERIAL: "u", DESTINATION: "s",
                SENDER: "s", SIGNATURE: "g", 9: "u"}

_FIXED = {"y": ("B", 1), "b": ("I", 4), "n": ("h", 2), "q": ("H", 2), "i": ("i", 4), "u": ("I", 4),
          "x": ("q", 8), "t": ("Q", 8), "d": ("d", 8), "h": ("I", 4)}
_ALIGN = dict({k: v[1] for k, v in _FIXED.items()}, s=4, o=4, g=1, a=4, v=1, **{"(": 8, "{": 8})
MAX_MESSAGE = 128 * 1024 * 1024


class DBusError(Exception):
    """An ERROR reply (``name`` like org.freedesktop.systemd1.NoSuchUnit) or a protocol failure (name None)."""

    def __init__(self, name, message):
        super().__init__("{}: {}".format(name, message) if name else message)
        self.name = name
        self.message = message


# ---------------------------------------------------------------------------------------------- signatures

def _type_end(sig, i):
    """Index just past the single complete type starting at ``sig[i]``."""
    if i >= len(sig):
        raise DBusError(None, "truncated signature {!r}".format(sig))
    c = sig[i]
    if c in _FIXED or c in "sogv":
        return i + 1
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        j = i + 1
        while j < len(sig) and sig[j] != close:
            j = _type_end(sig, j)
        if j >= len(sig) or j == i + 1:
            raise DBusError(None, "bad container in signature {!r}".format(sig))
        return j + 1
    raise DBusError(None, "unsupported type {!r} in signature {!r}".format(c, sig))


def split_signature(sig):
    """The complete types of ``sig`` ("sa(sv)" -> ["s", "a(sv)"])."""
    out, i = [], 0
    while i < len(sig):
        j = _type_end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


# ---------------------------------------------------------------------------------------------- marshalling

class _Writer:
    def __init__(self, order="<", offset=0):
        self.order = order
        self.buf = bytearray()
        self.offset = offset  # where buf starts in the message (alignment is relative to the message start)

    def pad(self, n):
        self.buf += b"\0" * ((-(self.offset + len(self.buf))) % n)

    def write(self, t, v):
        c = t[0]
        self.pad(_ALIGN[c])
        if c in _FIXED:
            if c == "b":
                v = 1 if v else 0
            self.buf += struct.pack(self.order + _FIXED[c][0], v)
        elif c in "so":
            data = v.encode()
            self.buf += struct.pack(self.order + "I", len(data)) + data + b"\0"
        elif c == "g":
            data = v.encode()
            if len(data) > 255:
                raise DBusError(None, "signature too long")
            self.buf += bytes([len(data)]) + data + b"\0"
        elif c == "v":
            sig, value = v
            if len(split_signature(sig)) != 1:
                raise DBusError(None, "a variant holds one complete type, not {!r}".format(sig))
            self.write("g", sig)
            self.write(sig, value)
        elif c == "a":
            elem = t[1:]
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            items = v.items() if elem[0] == "{" and isinstance(v, dict) else v
            for item in items:
                self.write(elem, item)
            struct.pack_into(self.order + "I", self.buf, at, len(self.buf) - start)
        elif c in "({":
            for sub, value in zip(split_signature(t[1:-1]), v):
                self.write(sub, value)
        else:
            raise DBusError(None, "cannot marshal type {!r}".format(t))


def marshal(sig, values, order="<", offset=0):
    """The bytes of ``values`` (one per complete type of ``sig``) starting at message offset ``offset``."""
    w = _Writer(order, offset)
    types = split_signature(sig)
    if len(types) != len(values):
        raise DBusError(None, "signature {!r} wants {} values, got {}".format(sig, len(types), len(values)))
    for t, v in zip(types, values):
        w.write(t, v)
    return bytes(w.buf)


class _Reader:
    def __init__(self, data, order="<", offset=0, pos=0):
        self.data = data
        self.order = order
        self.offset = offset
        self.pos = pos

    def align(self, n):
        self.pos += (-(self.offset + self.pos)) % n

    def take(self, n):
        if self.pos + n > len(self.data):
            raise DBusError(None, "truncated D-Bus message")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def read(self, t):
        c = t[0]
        self.align(_ALIGN[c])
        if c in _FIXED:
            fmt, size = _FIXED[c]
            value = struct.unpack(self.order + fmt, self.take(size))[0]
            return bool(value) if c == "b" else value
        if c in "so":
            n = struct.unpack(self.order + "I", self.take(4))[0]
            value = self.take(n + 1)
            return value[:-1].decode()
        if c == "g":
            n = self.take(1)[0]
            return self.take(n + 1)[:-1].decode()
        if c == "v":
            sig = self.read("g")
            return (sig, self.read(sig))
        if c == "a":
            n = struct.unpack(self.order + "I", self.take(4))[0]
            elem = t[1:]
            self.align(_ALIGN[elem[0]])
            end = self.pos + n
            if end > len(self.data):
                raise DBusError(None, "truncated D-Bus array")
            items = []
            while self.pos < end:
                items.append(self.read(elem))
            return dict(items) if elem[0] == "{" else items
        if c in "({":
            return tuple(self.read(sub) for sub in split_signature(t[1:-1]))
        raise DBusError(None, "cannot unmarshal type {!r}".format(t))


def unmarshal(sig, data, order="<", offset=0):
    """The values of ``sig`` read from ``data`` (a body that starts at message offset ``offset``)."""
    r = _Reader(bytes(data), order, offset)
    return [r.read(t) for t in split_signature(sig)]


# ---------------------------------------------------------------------------------------------- messages

class Message:
    """One D-Bus message: ``type``, ``flags``, ``serial``, header ``fields`` {code: value}, ``body`` values."""

    def __init__(self, type, serial, fields, body=(), flags=0):
        self.type = type
        self.serial = serial
        self.fields = fields
        self.body = list(body)
        self.flags = flags

    def __getattr__(self, name):
        codes = {"path": PATH, "interface": INTERFACE, "member": MEMBER, "error_name": ERROR_NAME,
                 "reply_serial": REPLY_SERIAL, "destination": DESTINATION, "sender": SENDER, "signature": SIGNATURE}
        if name in codes:
            return self.fields.get(codes[name])
        raise AttributeError(name)

    def to_bytes(self, order="<"):
        sig = self.fields.get(SIGNATURE) or ""
        body = marshal(sig, self.body, order) if sig else b""
        fields = [(code, (_FIELD_TYPES[code], value)) for code, value in self.fields.items()
                  if value is not None and not (code == SIGNATURE and not value)]
        head = marshal("yyyyuua(yv)", [ord("l" if order == "<" else "B"), self.type, self.flags, 1, len(body),
                                        self.serial, fields], order)
        return head + b"\0" * ((-len(head)) % 8) + body

    @classmethod
    def header_length(cls, first16):
        """Bytes of the whole message given its first 16 bytes (fixed header + the fields array's length)."""
        order = _order(first16[0:1])
        body_len, _, fields_len = struct.unpack(order + "III", first16[4:16])
        head = 16 + fields_len
        return head + (-head) % 8 + body_len

    @classmethod
    def from_bytes(cls, data):
        order = _order(data[0:1])
        if data[3] != 1:
            raise DBusError(None, "unsupported D-Bus protocol version {}".format(data[3]))
        r = _Reader(data, order)
        _, type_, flags, _, body_len, serial, fields = (r.read(t) for t in split_signature("yyyyuua(yv)"))
        fields = {code: value for code, (_, value) in fields}
        r.align(8)
        sig = fields.get(SIGNATURE) or ""
        body = data[r.pos:r.pos + body_len]
        if len(body) != body_len:
            raise DBusError(None, "truncated D-Bus message body")
        return cls(type_, serial, fields, unmarshal(sig, body, order) if sig else [], flags)


def _order(b):
    if b == b"l":
        return "<"
    if b == b"B":
        return ">"
    raise DBusError(None, "bad D-Bus byte order mark {!r}".format(b))


# ---------------------------------------------------------------------------------------------- connection

class Connection:
    """A peer-to-peer D-Bus connection on a UNIX socket, authenticated with AUTH EXTERNAL (our uid)."""

    def __init__(self, path=SYSTEMD_PRIVATE, timeout=30.0):
        self.timeout = timeout
        self.serial = 0
        self.signals = []  # signals received while waiting for replies, oldest first
        self._buf = b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self._auth()
            self.sock.setblocking(False)
            self._settle()
        except BaseException:
            self.sock.close()
            raise

    def _auth(self):
        uid = str(os.geteuid()).encode().hex().encode()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\n")
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = self.sock.recv(256)
            if not chunk:
                raise DBusError(None, "D-Bus peer closed the connection during authentication")
            line += chunk
            if len(line) > 4096:
                raise DBusError(None, "D-Bus authentication answer too long")
        if not line.startswith(b"OK "):
            raise DBusError(None, "D-Bus authentication refused: {}".format(line.strip().decode(errors="replace")))
        self.sock.sendall(b"BEGIN\r\n")

    def _settle(self):
        """Ping the peer until it answers: systemd 252's sd-bus leaves the bytes that came in the same read as
        BEGIN unparsed until more bytes arrive (a first call then hangs forever, seen on Debian 12 about every
        other time), so each unanswered Ping is followed by another, whose arrival makes it read them all."""
        deadline = time.monotonic() + self.timeout
        wait = 0.05
        while True:
            self.serial += 1
            self.send(Message(METHOD_CALL, self.serial, {PATH: "/", INTERFACE: "org.freedesktop.DBus.Peer",
                                                         MEMBER: "Ping"}))
            until = min(deadline, time.monotonic() + wait)
            while True:
                msg = self.receive(max(0.0, until - time.monotonic()))
                if msg is None:
                    break
                if msg.type == SIGNAL:
                    self.signals.append(msg)
                elif msg.type in (METHOD_RETURN, ERROR):
                    return  # answered: the peer reads what we send (later answers to older Pings are ignored)
            if time.monotonic() >= deadline:
                raise DBusError(None, "D-Bus peer does not answer (Ping) within {:.0f}s".format(self.timeout))
            wait = min(wait * 2, 1.0)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, msg):
        data = msg.to_bytes()
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
            except BlockingIOError:
                if not select.select([], [self.sock], [], max(0.0, deadline - time.monotonic()))[1]:
                    raise DBusError(None, "timed out sending to D-Bus peer")

    def receive(self, timeout):
        """The next message, or None if none arrives within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self._buf) >= 16:
                need = Message.header_length(self._buf[:16])
                if need > MAX_MESSAGE:
                    raise DBusError(None, "D-Bus message too large ({} bytes)".format(need))
                if len(self._buf) >= need:
                    data, self._buf = self._buf[:need], self._buf[need:]
                    return Message.from_bytes(data)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise DBusError(None, "D-Bus peer closed the connection")
            self._buf += chunk

    def call(self, path, interface, member, signature="", args=(), destination=SYSTEMD_DEST, timeout=None):
        """Call a method and return its reply's body values; DBusError for an ERROR reply or a timeout."""
        self.serial += 1
        serial = self.serial
        fields = {PATH: path, INTERFACE: interface, MEMBER: member, DESTINATION: destination,
                  SIGNATURE: signature or None}
        self.send(Message(METHOD_CALL, serial, fields, args))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            msg = self.receive(max(0.0, deadline - time.monotonic()))
            if msg is None:
                raise DBusError(None, "no answer to {}.{} within {:.0f}s".format(
                    interface, member, self.timeout if timeout is None else timeout))
            if msg.type == SIGNAL:
                self.signals.append(msg)
            elif msg.type in (METHOD_RETURN, ERROR) and msg.reply_serial == serial:
                if msg.type == ERROR:
                    text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ""
                    raise DBusError(msg.error_name or "org.freedesktop.DBus.Error.Failed", text)
                return msg.body

    def next_signal(self, timeout):
        """The oldest signal received (kept while waiting for replies, or read now), or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.signals:
            msg = self.receive(max(0.0, deadline - time.monotonic()))
            if msg is None:
                return None
            if msg.type == SIGNAL:
                self.signals.append(msg)
        return self.signals.pop(0)


class Systemd:
    """The few ``org.freedesktop.systemd1.Manager`` methods fleet uses, over the private socket."""

    def __init__(self, path=SYSTEMD_PRIVATE, timeout=30.0):
        self.conn = Connection(path, timeout)

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _manager(self, member, signature="", args=()):
        return self.conn.call(SYSTEMD_PATH, SYSTEMD_MANAGER, member, signature, args)

    def subscribe(self):
        """Ask for the manager's signals (JobRemoved, ...)."""
        self._manager("Subscribe")

    def start_transient_unit(self, name, properties, mode="fail"):
        """StartTransientUnit(name, mode, properties a(sv), aux a(sa(sv))); the job's object path."""
        return self._manager("StartTransientUnit", "ssa(sv)a(sa(sv))", [name, mode, properties, []])[0]

    def stop_unit(self, name, mode="replace"):
        return self._manager("StopUnit", "ss", [name, mode])[0]

    def reset_failed_unit(self, name):
        self._manager("ResetFailedUnit", "s", [name])

    def get_unit(self, name):
        """The unit's object path; DBusError org.freedesktop.systemd1.NoSuchUnit if systemd has not loaded it."""
        return self._manager("GetUnit", "s", [name])[0]

    def reload(self):
        """``systemctl daemon-reload``."""
        self._manager("Reload")

    def unit_property(self, unit_path, interface, name):
        """A property of a unit object (e.g. org.freedesktop.systemd1.Unit ActiveState), variant unwrapped."""
        return self.conn.call(unit_path, "org.freedesktop.DBus.Properties", "Get", "ss", [interface, name])[0][1]

    def wait_job(self, job, deadline, done=None):
        """Wait for JobRemoved of ``job``; its result ("done", "failed", ...), or None at ``deadline``.

        ``done()``, if given, is checked between signals: True ends the wait early with "done" (the effect the
        job was for is visible, whatever became of the signal).
        """
        while True:
            if done is not None and done():
                return "done"
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sig = self.conn.next_signal(min(left, 0.05 if done is not None else left))
            if sig is not None and sig.member == "JobRemoved" and len(sig.body) == 4 and sig.body[1] == job:
                return sig.body[3]
