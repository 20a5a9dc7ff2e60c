"""Builds ldem._core with CMake and ninja (see CMakeLists.txt)."""
import os
import re
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "ldem" / "_version.py").read_text()).group(1)


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        # pip builds in a fresh isolated environment each time: a cache that names
        # another environment's cmake/ninja cannot be reused.
        cache = build_dir / "CMakeCache.txt"
        if cache.exists():
            tools = re.findall(r"^CMAKE_(?:MAKE_PROGRAM|COMMAND):\w+=(.*)$", cache.read_text(errors="replace"), re.M)
            if any(not Path(t).exists() for t in tools):
                cache.unlink()
        args = [
            "cmake", str(ROOT), "-G", "Ninja",
            f"-DCMAKE_BUILD_TYPE={os.environ.get('LDEM_BUILD_TYPE', 'Release')}",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DLDEM_VERSION={VERSION}",
        ]
        if "LDEM_WITH_CUDA" in os.environ:
            args.append(f"-DLDEM_WITH_CUDA={os.environ['LDEM_WITH_CUDA']}")
        subprocess.run(args, cwd=build_dir, check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.run(["cmake", "--build", ".", "--target", "_core", "-j", jobs], cwd=build_dir, check=True)


setup(
    version=VERSION,
    ext_modules=[CMakeExtension("ldem._core")],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
