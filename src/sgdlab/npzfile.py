""".npz archives read as hostile input: every header checked before any data is read, memory bounded by the file.

`np.load` trusts what a file says about itself: an array header declaring
50000x50000 zeros, stored in a few compressed megabytes, is allocated (20 GB)
before anything can look at its shape. `NpzFile` opens the archive with
`zipfile`, reads only the .npy header of each member (its dtype and shape) and
checks it against the member's size in the zip directory, so the caller can
compare the shapes with what it expects before `read` touches the data. It
never unpickles, and admits only plain numbers and unicode text. The file
itself is opened by `sgdlab.fileio.open_regular_file`: a regular file no
larger than its caller allows, or nothing.
"""

import io
import math
import zipfile
import zlib

import numpy as np

from .fileio import open_regular_file

NPY_SUFFIX = ".npy"
NOT_AN_ARCHIVE = "not a .npz archive"  # the problem `refuse` is given for a file that is no zip at all
MAX_EXPANSION = 16  # how many times its size on disk a whole archive may expand to (np.savez stores: about 1)
SMALL_ARCHIVE = 1 << 20  # bytes an archive may always expand to, however small its file
_HEADER_BYTES = 1 << 14  # read of a member's start: the magic, the header length and the header (NumPy's limit: 10000)
_CHUNK = 1 << 20
_PLAIN_KINDS = "biufU"  # booleans, integers, floats and unicode text: never objects, which would be unpickled
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # np.savez and np.savez_compressed; no others
# What zipfile and zlib raise for a damaged archive or member (RuntimeError: encrypted; ValueError: bad names)
_ZIP_ERRORS = (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error, zipfile.BadZipFile,
               zipfile.LargeZipFile)
# ...and what NumPy's header parser lets through (it evaluates the header, at most 10000 characters, as a literal)
_HEADER_ERRORS = (*_ZIP_ERRORS, TypeError, SyntaxError, RecursionError, MemoryError, OverflowError)


class ArrayHeader:
    """What a member's .npy header declares: dtype, shape, memory order, and where its data starts."""

    def __init__(self, dtype, shape, fortran_order, data_offset):
        self.dtype, self.shape, self.fortran_order, self.data_offset = dtype, shape, fortran_order, data_offset

    @property
    def nbytes(self):
        return math.prod(self.shape) * self.dtype.itemsize

    def __repr__(self):
        return f"{self.dtype} of shape {self.shape}"


class NpzFile:
    """An .npz file of at most `limit` bytes opened for checked reading; `headers` maps each array's name to its
    `ArrayHeader`.

    `refuse(problem)` makes the exception raised for a file that cannot be
    read safely (the caller's, which names the file and says what to do);
    every problem becomes one, never a zip or NumPy error.
    """

    def __init__(self, path, refuse, limit):
        self._refuse = refuse
        try:
            self._file = open_regular_file(path, limit, refuse)
        except FileNotFoundError:
            raise refuse("no such file") from None
        try:
            self._zip = zipfile.ZipFile(self._file)
        except _ZIP_ERRORS as exc:
            problem = _zip_problem(self._file, exc)
            self._file.close()
            raise refuse(problem) from None
        try:
            self.headers = self._read_headers()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self._zip.close()
        self._file.close()

    def read(self, name, limit):
        """The array `name` (writable, of its header's dtype and shape), if its data is at most `limit` bytes."""
        header = self.headers[name]
        if header.nbytes > limit:
            raise self._refuse(f"its array {name!r} is {header} ({header.nbytes} bytes), more than the "
                               f"{limit} bytes it may have")
        data = bytearray(header.nbytes)
        try:
            with self._zip.open(name + NPY_SUFFIX) as stream:
                _read_exactly(stream, header.data_offset)
                view = memoryview(data)
                for start in range(0, header.nbytes, _CHUNK):
                    view[start:start + _CHUNK] = _read_exactly(stream, min(_CHUNK, header.nbytes - start))
                stream.read(1)  # at its end: the zip checks the member's CRC-32
        except _ZIP_ERRORS as exc:
            raise self._refuse(f"its array {name!r} cannot be read: {exc}") from None
        order = "F" if header.fortran_order else "C"
        return np.frombuffer(data, dtype=header.dtype).reshape(header.shape, order=order)

    def read_text(self, name, limit):
        """The text in `name`, if at most `limit` bytes: UTF-8 bytes (a uint8 vector, as sgdlab.runs.checkpoint stores
        it), or a 0-d unicode array (how np.savez stores a str, four bytes a character)."""
        header = self.headers[name]
        if header.dtype == np.uint8 and len(header.shape) == 1:
            try:
                return self.read(name, limit).tobytes().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self._refuse(f"its entry {name!r} is not UTF-8 text ({exc})") from None
        if header.dtype.kind != "U" or header.shape != ():
            raise self._refuse(f"its entry {name!r} is {header}, not a text")
        return str(self.read(name, limit)[()])

    def _read_headers(self):
        """Each member's header, checked: a .npy of plain numbers or text, whose data fills the member exactly."""
        infos = self._zip.infolist()
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise self._refuse("it holds two members of the same name")
        declared = sum(info.file_size for info in infos)
        allowed = max(SMALL_ARCHIVE, MAX_EXPANSION * _file_size(self._zip))
        if declared > allowed:
            raise self._refuse(f"its members claim {declared} bytes, more than {MAX_EXPANSION} times the file's "
                               "size: a decompression bomb, or damaged")
        return {info.filename.removesuffix(NPY_SUFFIX): self._read_header(info) for info in infos}

    def _read_header(self, info):
        if not info.filename.endswith(NPY_SUFFIX):
            raise self._refuse(f"its member {info.filename!r} is not a .npy array")
        if info.compress_type not in _METHODS or info.flag_bits & 0x1:
            raise self._refuse(f"its member {info.filename!r} is encrypted or compressed in a way np.savez "
                               "never writes")
        try:
            with self._zip.open(info) as stream:
                start = io.BytesIO(stream.read(min(_HEADER_BYTES, info.file_size)))
            version = np.lib.format.read_magic(start)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {version} is not one np.savez writes for numbers")
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(start)
        except _HEADER_ERRORS as exc:
            raise self._refuse(f"its member {info.filename!r} has no readable .npy header: {exc}") from None
        header = ArrayHeader(dtype, shape, fortran_order, start.tell())
        self._check_header(info, header)
        return header

    def _check_header(self, info, header):
        """Refuse dtypes that are not plain numbers or text, and data longer or shorter than the member."""
        if header.dtype.kind not in _PLAIN_KINDS or header.dtype.fields is not None or header.dtype.subdtype is not None \
                or header.dtype.itemsize == 0:
            raise self._refuse(f"its member {info.filename!r} holds {header.dtype}: only plain numbers and text "
                               "are read (never objects, which would be unpickled)")
        if any(size < 0 for size in header.shape):
            raise self._refuse(f"its member {info.filename!r} declares the shape {header.shape}")
        if info.file_size != header.data_offset + header.nbytes:
            raise self._refuse(f"its member {info.filename!r} is {info.file_size} bytes long, but its header "
                               f"declares {header} ({header.data_offset + header.nbytes} bytes)")


def _read_exactly(stream, size):
    data = stream.read(size)
    if len(data) != size:
        raise EOFError(f"the data ends {size - len(data)} bytes early")
    return data


def _file_size(archive):
    archive.fp.seek(0, io.SEEK_END)
    return archive.fp.tell()


def _zip_problem(handle, exc):
    """Why the file open as `handle` is no zip, as a phrase (a single .npy array said as such)."""
    try:
        handle.seek(0)
        start = handle.read(6)
    except (OSError, ValueError):
        start = b""
    if start == b"\x93NUMPY":
        return "a single .npy array, not a .npz archive"
    if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile):
        return f"cannot be read: {exc.strerror or exc}"
    return NOT_AN_ARCHIVE

