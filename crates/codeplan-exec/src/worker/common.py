# codeplan sandbox worker: a warm interpreter that forks one child per unit of work.
#
# Started by codeplan-exec (Rust) inside the sandbox. It imports the APPS prelude (numpy
# included) once; every sample then runs in a forked child, so the import cost is paid per
# worker, not per test. Rust owns every deadline: it kills this whole worker (and its pid
# namespace) when a request runs past its limit. This file is trusted code; the program under
# test only ever runs in a forked child, after rlimits are set.
#
# Protocol: frames of a 4-byte little-endian length followed by UTF-8 JSON, on fds 3 (in) and
# 4 (out). fds 0/1 are /dev/null and 2 a diagnostics pipe, so a program cannot reach the
# protocol by accident (children also point 0/1/2 at their own files).

import sys
import time
import itertools
from itertools import accumulate, product, permutations, combinations
import collections
from collections import Counter, OrderedDict, deque, defaultdict, ChainMap
from functools import lru_cache
import math
from math import sqrt, sin, cos, tan, ceil, fabs, floor, gcd, exp, log, log2
import fractions
from typing import List, Tuple
import numpy as np
import random
import heapq
from heapq import *

import builtins
import copy
import ctypes
import faulthandler
import io
import json
import os
import resource
import select
import signal
import shutil
import struct
import subprocess
import traceback
import types
from io import StringIO
from unittest.mock import patch, mock_open

PROTO_IN = 3
PROTO_OUT = 4
MAX_CHILD_BYTES = 512 * 1024 * 1024
# Exit status of a strict-mode child whose program does not compile.
EXIT_COMPILE_ERROR = 71
APPS_PRELUDE = (
    "import sys\nimport time\nimport itertools\n"
    "from itertools import accumulate, product, permutations, combinations\n"
    "import collections\n"
    "from collections import Counter, OrderedDict, deque, defaultdict, ChainMap\n"
    "from functools import lru_cache\nimport math\n"
    "from math import sqrt, sin, cos, tan, ceil, fabs, floor, gcd, exp, log, log2\n"
    "import fractions\nfrom typing import List, Tuple\nimport numpy as np\n"
    "import random\nimport heapq\nfrom heapq import *\n"
)


def read_exact(fd, n):
    chunks = []
    while n > 0:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def read_frame(fd):
    head = read_exact(fd, 4)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    body = read_exact(fd, n)
    return None if body is None else json.loads(body)


def write_frame(fd, obj):
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    data = struct.pack("<I", len(body)) + body
    view = memoryview(data)
    while view:
        k = os.write(fd, view)
        view = view[k:]


def tail(text, limit=2000):
    return text if len(text) <= limit else text[-limit:]


def error_text(e):
    """The last line of a traceback: what a user needs to see why a test errored."""
    try:
        return tail("".join(traceback.format_exception_only(type(e), e)).strip(), 500)
    except BaseException:
        return type(e).__name__


def maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ----------------------------------------------------------------------------------------
# Confinement added in each child, between fork and the judged program.
# ----------------------------------------------------------------------------------------

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SYS_CAPSET = 126
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_MAKE_BLOCK = 1 << 11
LANDLOCK_SCOPES = 0b11  # abstract unix sockets, signals


class LandlockRulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


def confine_child():
    """Drop every capability and enter a nested Landlock domain.

    The program runs as root of the sandbox's user namespace; without this it could open the
    worker's /proc/1/fd/* (the protocol pipe) or /proc/1/mem, or signal it. A nested domain
    makes the worker a process of a less restricted domain: no ptrace-style access to it, and
    (Landlock ABI 6+) no signals to it.
    """
    abi = LIBC.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi > 0:
        attr = LandlockRulesetAttr(LANDLOCK_MAKE_BLOCK, 0, LANDLOCK_SCOPES if abi >= 6 else 0)
        size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
        fd = LIBC.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
        if fd < 0 or LIBC.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
        os.close(fd)
    for cap in range(64):
        LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: all empty
    if LIBC.syscall(SYS_CAPSET, header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
