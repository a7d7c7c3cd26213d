"""Minimal GGUF v3 writer and reader (little-endian, alignment 32), as llama.cpp's gguf-py lays files
out: header, key/value pairs, tensor infos, padding, tensor data each aligned to 32 bytes.
Tensor shapes are given numpy-style (outermost first); GGUF stores ne reversed (ne[0] contiguous)."""
import struct

import numpy as np

GGUF_MAGIC = 0x46554747
ALIGNMENT = 32

T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8


def _str(s):
    b = s.encode('utf-8')
    return struct.pack('<Q', len(b)) + b


class Writer:
    def __init__(self):
        self.kv = []       # (key, bytes)
        self.tensors = []  # (name, ggml_type, shape(np order), bytes)

    def _add(self, key, type_, payload):
        assert all(k != key for k, _ in self.kv), key
        self.kv.append((key, _str(key) + struct.pack('<I', type_) + payload))

    def u32(self, k, v): self._add(k, T_U32, struct.pack('<I', v))
    def i32(self, k, v): self._add(k, T_I32, struct.pack('<i', v))
    def f32(self, k, v): self._add(k, T_F32, struct.pack('<f', v))
    def bool(self, k, v): self._add(k, T_BOOL, struct.pack('<B', 1 if v else 0))
    def str(self, k, v): self._add(k, T_STR, _str(v))

    def arr_str(self, k, vs):
        self._add(k, T_ARR, struct.pack('<IQ', T_STR, len(vs)) + b''.join(_str(v) for v in vs))

    def arr_i32(self, k, vs):
        self._add(k, T_ARR, struct.pack('<IQ', T_I32, len(vs)) + np.asarray(vs, '<i4').tobytes())

    def arr_f32(self, k, vs):
        self._add(k, T_ARR, struct.pack('<IQ', T_F32, len(vs)) + np.asarray(vs, '<f4').tobytes())

    def tensor(self, name, array, dtype):
        """array: numpy, shape outermost-first; dtype 'f32' or 'f16'."""
        a = np.ascontiguousarray(array)
        if dtype == 'f32':
            data, t = a.astype('<f4').tobytes(), GGML_F32
        elif dtype == 'f16':
            data, t = a.astype('<f2').tobytes(), GGML_F16
        else:
            raise ValueError(dtype)
        assert all(n != name for n, *_ in self.tensors), name
        self.tensors.append((name, t, tuple(a.shape), data))

    def write(self, path):
        out = bytearray()
        out += struct.pack('<IIQQ', GGUF_MAGIC, 3, len(self.tensors), len(self.kv))
        for _, b in self.kv:
            out += b
        offset = 0
        offsets = []
        for name, t, shape, data in self.tensors:
            ne = list(reversed(shape))
            out += _str(name) + struct.pack('<I', len(ne)) + b''.join(struct.pack('<Q', n) for n in ne)
            out += struct.pack('<IQ', t, offset)
            offsets.append(offset)
            offset += (len(data) + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
        out += b'\0' * ((-len(out)) % ALIGNMENT)
        for (_, _, _, data), off in zip(self.tensors, offsets):
            out += data
            out += b'\0' * ((-len(data)) % ALIGNMENT)
        with open(path, 'wb') as f:
            f.write(out)


def read(path):
    """-> (kv dict, {name: numpy array in np order}) for f32/f16 tensors (others: raw bytes)."""
    buf = open(path, 'rb').read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v if len(v) > 1 else v[0]

    def rstr():
        nonlocal pos
        n = take('<Q')
        s = buf[pos:pos + n].decode('utf-8')
        pos += n
        return s

    scalar = {T_U8: '<B', T_I8: '<b', T_U16: '<H', T_I16: '<h', T_U32: '<I', T_I32: '<i', T_F32: '<f',
              T_BOOL: '<B', T_U64: '<Q', T_I64: '<q', T_F64: '<d'}

    def rval(t):
        if t == T_STR:
            return rstr()
        if t == T_ARR:
            et, n = take('<I'), take('<Q')
            return [rval(et) for _ in range(n)]
        v = take(scalar[t])
        return bool(v) if t == T_BOOL else v

    magic, version, n_t, n_kv = take('<I'), take('<I'), take('<Q'), take('<Q')
    assert magic == GGUF_MAGIC and version == 3
    kv = {}
    for _ in range(n_kv):
        k = rstr()
        kv[k] = rval(take('<I'))
    infos = []
    for _ in range(n_t):
        name = rstr()
        nd = take('<I')
        ne = [take('<Q') for _ in range(nd)]
        t, off = take('<I'), take('<Q')
        infos.append((name, ne, t, off))
    align = kv.get('general.alignment', ALIGNMENT)
    base = (pos + align - 1) // align * align
    tensors = {}
    for name, ne, t, off in infos:
        shape = tuple(reversed(ne))
        n = int(np.prod(shape))
        if t == GGML_F32:
            tensors[name] = np.frombuffer(buf, '<f4', n, base + off).reshape(shape)
        elif t == GGML_F16:
            tensors[name] = np.frombuffer(buf, '<f2', n, base + off).reshape(shape)
        else:
            tensors[name] = (t, shape, off)
    return kv, tensors
