"""Build script: everything is in setup.cfg except the two native parts.

The helper (`lu_attach/native/lu_spawn.c`) is a tiny shared library that the
injector loads into a target; it is not a Python extension and links against
no libpython, so one build serves every target version, static or shared.

The compiled timer (`lu_attach/native/lu_accel.c`) is an optional extension
of the payloads, built against the stable ABI of 3.8 (one file for every GIL
build from 3.8 on); lu stages it beside the payloads it injects, and targets
time calls in Python when it is missing.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lu_attach._lu_spawn",
            sources=["lu_attach/native/lu_spawn.c"],
            libraries=["pthread", "dl"],
            extra_compile_args=["-O2", "-fvisibility=hidden"],
        ),
        Extension(
            "lu_payloads._accel",
            sources=["lu_attach/native/lu_accel.c"],
            py_limited_api=True,
            optional=True,
            extra_compile_args=["-O2", "-fvisibility=hidden"],
        ),
    ]
)
