"""Conan recipe of the project: its one requirement (Boost headers) and the
CMake files that let `find_package(Boost CONFIG)` find it.

Boost resolves from the project's own recipe index (conan/index), so builds
work with the central Conan index unreachable; `nox -s build-i386` sets that up.
"""

from conan import ConanFile
from conan.tools.cmake import CMakeDeps, CMakeToolchain


class KerioAvirPlugins(ConanFile):
    name = "kerio-avir-plugins"
    settings = "os", "arch", "compiler", "build_type"

    def requirements(self):
        self.requires("boost/1.85.0")

    def generate(self):
        toolchain = CMakeToolchain(self)
        # Each toolchain brings its own standard library (zig: libc++, gcc: libstdc++);
        # an explicit -stdlib flag is only an unused-argument warning for zig.
        toolchain.blocks.remove("libcxx")
        # CMakePresets.json at the top already names both targets; Conan's own
        # CMakeUserPresets.json would add a second, clashing "conan-release" per build folder.
        toolchain.user_presets_path = False
        toolchain.generate()
        CMakeDeps(self).generate()
