"""The book's parameter files (`save_params`: a pickled dict of NumPy arrays) read without running anything in them.

A pickle is a program: loading one calls whatever functions it names, so
`pickle.load` on a file from elsewhere runs the file's author's code. A
dict of float arrays needs only three of NumPy's names (`_reconstruct`,
`ndarray`, `dtype`; `_frombuffer` where Python 3.14 pickles by protocol 5),
under NumPy 1's and NumPy 2's module spellings. `read_pickled_arrays` first
walks the file's instructions without executing them (`pickletools`: an
instruction no dict of arrays needs, such as building an object of a class,
or a length beyond the file's end, refuses the file), then unpickles it with
an `Unpickler` whose `find_class` hands out, for those names only, stand-ins
that check their arguments and build nothing but a description (a float
dtype, a shape, the bytes of the data); any other name is refused when the
file names it, before it could be called. The arrays are made from those
descriptions at the end, viewing the file's bytes.
"""

import io
import math
import pickle
import pickletools

import numpy as np

from .fileio import open_regular_file

FLOAT_CODES = ("f2", "f4", "f8")  # float16, float32, float64, as NumPy pickles a dtype
BYTE_ORDERS = ("<", ">", "=", "|")
MAX_DIMENSIONS = 32  # NumPy's own limit on an array's dimensions
# The instructions that make plain data (numbers, text, bytes, containers), name a global (admitted or refused by
# `_stand_in`), call it (REDUCE) or set an object's state (BUILD), in protocols 0 to 5. Any other (building an
# object of a class, asking for an outside object or buffer, a registered extension) is refused as it is found; a
# container that is no dict of arrays is refused by what it holds, once read.
ALLOWED_OPCODES = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS",
    "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST", "APPEND", "APPENDS", "EMPTY_SET",
    "ADDITEMS", "FROZENSET", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "NONE", "NEWTRUE", "NEWFALSE", "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE",
    "BINUNICODE", "BINUNICODE8", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8", "GLOBAL", "STACK_GLOBAL",
    "REDUCE", "BUILD", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})
# What the instructions refused most often do, for the refusal to say.
OPCODE_MEANINGS = {"INST": "builds an object of a class", "OBJ": "builds an object of a class",
                   "NEWOBJ": "builds an object of a class", "NEWOBJ_EX": "builds an object of a class",
                   "PERSID": "asks for an outside object", "BINPERSID": "asks for an outside object",
                   "EXT1": "names a registered extension", "EXT2": "names a registered extension",
                   "EXT4": "names a registered extension", "NEXT_BUFFER": "takes data from outside the file",
                   "READONLY_BUFFER": "takes data from outside the file"}


class PickleRefused(Exception):
    """Why a pickle is not a dict of float arrays; `read_pickled_arrays` hands it to its caller's `refuse`."""


def read_pickled_arrays(path, limit, refuse):
    """The dict of float arrays pickled in the regular file `path` of at most `limit` bytes, as the book's
    `save_params` writes it. Anything else is `refuse(problem)` (the caller's exception, raised), its problem
    naming what the file holds instead; nothing in the file is run. A missing file raises FileNotFoundError."""
    with open_regular_file(path, limit, refuse) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise refuse(f"grew beyond {limit} bytes as it was read")
    try:
        _check_instructions(data)
        loaded = _ArraysUnpickler(io.BytesIO(data)).load()
        return _arrays(loaded)
    except PickleRefused as exc:
        raise refuse(str(exc)) from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, EOFError, AttributeError,
            RecursionError, MemoryError, OverflowError) as exc:
        raise refuse(f"a damaged pickle ({type(exc).__name__}: {exc})") from None


def _check_instructions(data):
    """Every instruction of the pickle `data` read without running any: one a dict of arrays never needs, a name
    outside the stand-ins, or a length beyond the file's end (which pickle would allocate before reading) is
    refused."""
    try:
        for opcode, argument, position in pickletools.genops(io.BytesIO(data)):
            if opcode.name not in ALLOWED_OPCODES:
                meaning = OPCODE_MEANINGS.get(opcode.name, "that a dict of arrays never needs")
                raise PickleRefused(f"a pickle whose instruction {opcode.name} at byte {position} {meaning}")
            if opcode.name == "GLOBAL":
                module, _, name = argument.partition(" ")
                _stand_in(module, name)
    except PickleRefused:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise PickleRefused(f"a damaged or truncated pickle ({exc})") from None


class _ArraysUnpickler(pickle.Unpickler):
    """An unpickler that knows only the stand-ins: a name the file asks for is looked up among them, never
    imported."""

    def find_class(self, module, name):
        return _stand_in(module, name)

    def persistent_load(self, pid):
        raise PickleRefused("a pickle that asks for an outside object")


def _stand_in(module, name):
    """The stand-in for NumPy's `module.name`; any other name refused, naming it."""
    found = STAND_INS.get((module, name))
    if found is None:
        raise PickleRefused(f"a pickle that calls {module}.{name}, which is no part of a NumPy array (nothing in the "
                            "file was run)")
    return found


class _StandIn:
    """A name the file may use, standing for NumPy's function of that name: calling it checks the arguments against
    what NumPy pickles for a float array and returns a description, never an object of the file's choosing."""

    __slots__ = ("name", "_call")

    def __init__(self, name, call):
        self.name, self._call = name, call

    def __call__(self, *args):
        return self._call(*args)

    def __setstate__(self, state):
        raise PickleRefused(f"a pickle that changes {self.name} itself")


class _DtypeSketch:
    """A float dtype as the pickle describes it: its code (`f8`), then its byte order (`BUILD`)."""

    __slots__ = ("code", "dtype")

    def __init__(self, code):
        self.code, self.dtype = code, None

    def __setstate__(self, state):
        # NumPy's dtype state: (version, byte order, subarray, names, fields, element size, alignment, flags)
        if self.dtype is not None:
            raise PickleRefused("a pickle that changes a dtype once made")
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] in (3, 4) and state[1] in BYTE_ORDERS
                and state[2:5] == (None, None, None)):
            raise PickleRefused(f"a pickle of a dtype {self.code} with the state {_short(state)}: a structured or "
                                "unusual dtype, not a plain float one")
        self.dtype = np.dtype(self.code).newbyteorder(state[1]) if state[1] in "<>" else np.dtype(self.code)


class _ArraySketch:
    """An array as the pickle describes it: its shape, float dtype, memory order and data bytes."""

    __slots__ = ("shape", "dtype", "order", "data")

    def __init__(self):
        self.shape = self.dtype = self.order = self.data = None

    def __setstate__(self, state):
        # NumPy's ndarray state: (version, shape, dtype, Fortran order, data); old files leave out the version
        if self.data is not None:
            raise PickleRefused("a pickle that changes an array once made")
        if not isinstance(state, tuple) or len(state) not in (4, 5) or (len(state) == 5 and state[0] != 1):
            raise PickleRefused(f"a pickle of an array with the state {_short(state)}")
        shape, dtype, fortran, data = state[-4:]
        self._describe(data, dtype, shape, "F" if fortran is True else "C" if fortran is False else None)

    def _describe(self, data, dtype, shape, order):
        if not isinstance(dtype, _DtypeSketch) or dtype.dtype is None:
            raise PickleRefused(f"a pickle of an array whose dtype is {_short(dtype)}, not a float dtype")
        if not isinstance(data, (bytes, bytearray)):  # an object array's data is a list of Python objects
            raise PickleRefused(f"a pickle of an array whose data is a {type(data).__name__}, not bytes")
        if not (isinstance(shape, tuple) and len(shape) <= MAX_DIMENSIONS
                and all(type(n) is int and n >= 0 for n in shape)):
            raise PickleRefused(f"a pickle of an array of shape {_short(shape)}")
        if order not in ("C", "F"):
            raise PickleRefused("a pickle of an array of no memory order")
        if len(data) != math.prod(shape) * dtype.dtype.itemsize:
            raise PickleRefused(f"a pickle of a {dtype.dtype} array of shape {shape} whose data holds {len(data)} "
                                "bytes, not what that shape takes")
        self.shape, self.dtype, self.order, self.data = shape, dtype.dtype, order, data
        return self

    def array(self):
        return np.frombuffer(self.data, self.dtype).reshape(self.shape, order=self.order)


def _reconstruct(cls, shape, typecode):
    """`numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')`: an empty array, given its state by BUILD."""
    if cls is not NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise PickleRefused(f"a pickle that calls numpy's _reconstruct with {_short((cls, shape, typecode))}, not as "
                            "NumPy pickles an array")
    return _ArraySketch()


def _frombuffer(data, dtype, shape, order):
    """`numpy.core.numeric._frombuffer(data, dtype, shape, order)`: an array as protocol 5 pickles it."""
    return _ArraySketch()._describe(data, dtype, shape, order)


def _dtype(code, align=False, copy=True):
    """`numpy.dtype(code, align, copy)`: a float dtype only (an object, structured or text one refused, named)."""
    if code not in FLOAT_CODES:
        kind = {"O": "an object dtype (its elements are Python objects)", "V": "a structured dtype"}.get(
            str(code)[:1], "no float dtype")
        raise PickleRefused(f"a pickle of an array of dtype {_short(code)}, {kind}: the weights are float arrays")
    return _DtypeSketch(code)


def _not_callable(*args):
    raise PickleRefused("a pickle that calls numpy.ndarray directly, not as NumPy pickles an array")


def _short(value, length=60):
    text = repr(value)
    return text if len(text) <= length else f"{text[:length - 3]}..."


NDARRAY = _StandIn("numpy.ndarray", _not_callable)
STAND_INS = {
    **{(module, "_reconstruct"): _StandIn(f"{module}._reconstruct", _reconstruct)
       for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): _StandIn(f"{module}._frombuffer", _frombuffer)
       for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): NDARRAY,
    ("numpy", "dtype"): _StandIn("numpy.dtype", _dtype),
}


def _arrays(loaded):
    """The arrays of the unpickled dict, by name; anything but a dict of names to complete arrays refused."""
    if not isinstance(loaded, dict):
        raise PickleRefused(f"a pickle of a {type(loaded).__name__}, not a dict of arrays by name")
    for key, value in loaded.items():
        if not isinstance(key, str):
            raise PickleRefused(f"a pickle of a dict with the key {_short(key)}, not a name such as 'W1'")
        if not isinstance(value, _ArraySketch) or value.data is None:
            raise PickleRefused(f"a pickle of a dict whose {key} is {_short(value)}, not an array")
    return {key: value.array() for key, value in loaded.items()}
