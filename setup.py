"""Build script: everything is in setup.cfg except the native spawn helper.

The helper (`lu_attach/native/lu_spawn.c`) is a tiny shared library that the
injector loads into a target; it is not a Python extension and links against
no libpython, so one build serves every target version, static or shared.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lu_attach._lu_spawn",
            sources=["lu_attach/native/lu_spawn.c"],
            libraries=["pthread", "dl"],
            extra_compile_args=["-O2", "-fvisibility=hidden"],
        )
    ]
)
