"""The Boost package as the plugins use it: a tiny Boost.Asio program, built with the
host profile (zig or gcc, i386 or x86_64) and run.

    conan test conan/index/recipes/boost/all/test_package boost/1.85.0 \\
        -pr:h conan/profiles/zig -s:h arch=x86 -pr:b conan/profiles/build \\
        -c tools.build.cross_building:can_run=True

(avkit.build.conan.check_boost_package runs it from a copy, for each architecture.)
"""

import os

from conan import ConanFile
from conan.tools.build import can_run
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout

#: Conan's arch setting -> the project's KERIO_ARCH (cmake/architectures.json), which the
#: profiles' toolchain files read
KERIO_ARCHS = {"x86": "i386", "x86_64": "x86_64"}


class BoostTestPackage(ConanFile):
    settings = "os", "arch", "compiler", "build_type"
    generators = "CMakeDeps"
    test_type = "explicit"

    def requirements(self):
        self.requires(self.tested_reference_str)

    def layout(self):
        cmake_layout(self)

    def generate(self):
        toolchain = CMakeToolchain(self)
        toolchain.blocks.remove("libcxx")  # each toolchain file brings its own library
        toolchain.cache_variables["KERIO_ARCH"] = KERIO_ARCHS[str(self.settings.arch)]
        toolchain.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def test(self):
        # i386 runs natively on an x86_64 build machine (libc6:i386), so the cross build
        # may run when the caller says so (tools.build.cross_building:can_run=True).
        if can_run(self):
            self.run(os.path.join(self.cpp.build.bindir, "test_package"), env="conanrun")
